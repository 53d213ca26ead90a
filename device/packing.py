"""What a GPU runbook call brings back (device/train_gpu.py): the run records, the checkpoints a
later call carries back to resume, and the weights of the runs finished, within what a device
call returns and a later call can carry."""

from __future__ import annotations

import tarfile
from pathlib import Path

from ablations import store
from ablations.runners.checkpoint import progress

# What a device call returns: 8 files of at most 16 MB, 64 MB in all. The log, runs.json and
# results.tar.gz take three files and a few MB; the checkpoint and weight parts share the rest.
PART_BYTES = 15 * 2**20
WEIGHT_PARTS = 5
WEIGHT_BYTES = 56 * 2**20
# What a later call can carry back: 64 MB with the tree (5.7 MB), the CIFAR-10 archive
# (19.6 MB), the wheels and results.tar.gz. A Fig. 6 checkpoint holds weights and momentum in
# fp32, 8 bytes a parameter: 2.2 MB (ResNet-20) to 13.8 MB (ResNet-110), so about 4 fit.
CARRY_BYTES = 34 * 2**20


def pack(results: Path, trained: list[str], out: Path) -> tuple[list[Path], list[str]]:
    """results.tar.gz: results/*.csv, *.json and every run's records (not its weights);
    checkpoints-N.tar.gz: checkpoint.pt of each unfinished run, the furthest along first, within
    CARRY_BYTES (a later call carries them back, beside the tree and the data); weights-N.tar.gz:
    model.pt of each run in `trained` (finished in this call), for the record. Parts under
    PART_BYTES, WEIGHT_PARTS and WEIGHT_BYTES in all. Returns the files written, and a line for
    each file left out."""
    runs = sorted(d for d in (results / store.RUNS_DIR).glob("*") if d.is_dir())
    records = [*sorted(results.glob("*.csv")), *sorted(results.glob("*.json")),
               *(f for d in runs for f in sorted(d.iterdir()) if f.suffix != ".pt")]  # fmt: skip
    resumable = sorted((d for d in runs if (d / "checkpoint.pt").exists()), key=progress,
                       reverse=True)  # fmt: skip
    finished = [f for r in trained if (f := results / store.RUNS_DIR / r / "model.pt").exists()]
    written = [_tar(out / "results.tar.gz", records, results)]
    notes: list[str] = []
    room = {"parts": WEIGHT_PARTS, "bytes": WEIGHT_BYTES}
    for name, files, limit, lost in (
        ("checkpoints", [d / "checkpoint.pt" for d in resumable], CARRY_BYTES,
         "over what a later call can carry: that run restarts"),
        ("weights", finished, WEIGHT_BYTES, "over what a call returns"),
    ):  # fmt: skip
        parts, left_out = _parts(files, room=room, limit=limit)
        written += [_tar(out / f"{name}-{i + 1}.tar.gz", part, results)
                    for i, part in enumerate(parts)]  # fmt: skip
        notes += [f"left out ({lost}): {f.relative_to(results.parent)}" for f in left_out]
    return written, notes


def _parts(files: list[Path], *, room: dict[str, int],
           limit: int) -> tuple[list[list[Path]], list[Path]]:  # fmt: skip
    """`files` in parts of at most PART_BYTES, in order, within `room` (parts and bytes left to
    the call's return, updated) and `limit` bytes; with the files that did not fit."""
    parts: list[list[Path]] = []
    left_out: list[Path] = []
    used = 0
    for f in files:
        size = f.stat().st_size
        joins_last = bool(parts) and sum(p.stat().st_size for p in parts[-1]) + size <= PART_BYTES
        if (size > PART_BYTES or used + size > min(limit, room["bytes"])
                or (not joins_last and room["parts"] == 0)):  # fmt: skip
            left_out.append(f)
            continue
        if not joins_last:
            parts.append([])
            room["parts"] -= 1
        parts[-1].append(f)
        used += size
    room["bytes"] -= used
    return parts, left_out


def _tar(path: Path, files: list[Path], results: Path) -> Path:
    """Members results/..., whatever the folder is called here (`ablate merge` takes them)."""
    with tarfile.open(path, "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=f"results/{f.relative_to(results)}")
    return path
