"""`ablate pack OUT`: a results folder as tarballs to take elsewhere (docs/clusters.md). Always
results.tar.gz (the tables and run records), then checkpoints-N.tar.gz (the unfinished runs'
checkpoints, the furthest along first) and weights-N.tar.gz (the finished runs' weights, the
newest first) within the limits given. Members are results/..., as `ablate merge` expects."""

from __future__ import annotations

import math
import tarfile
from pathlib import Path

from ablations import rundir
from ablations.results import schemas

ARCHIVE_BYTES = 1024  # a tarball's own end blocks and compression header, at most
OWN = ("results.tar.gz", "checkpoints-*.tar.gz", "weights-*.tar.gz")


def size_text(size: int) -> str:
    """12 kB, 2.1 MB (powers of 1024, as --max-mb counts)."""
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.0f} kB"


def cost(size: int) -> int:
    """At most what a file of `size` bytes adds to a gzipped tarball: its data (incompressible
    at worst, with deflate's block headers), a 512-byte header and padding to 512 bytes."""
    return size + size // 1000 + 1024


def pack(
    results: Path, out: Path, *, max_bytes: int | None = None, part_bytes: int | None = None
) -> tuple[list[Path], list[str]]:
    """Write the tarballs into `out` (replacing an earlier pack's), the whole within `max_bytes`
    and each within `part_bytes`; returns the files written, and a line for each left out."""
    out.mkdir(parents=True, exist_ok=True)
    for old in [p for pattern in OWN for p in out.glob(pattern)]:
        old.unlink()
    runs = sorted(d for d in (results / schemas.RUNS_DIR).glob("*") if d.is_dir())
    records = [*sorted(f for f in results.iterdir() if f.suffix in (".csv", ".json")),
               *(f for d in runs for f in sorted(d.iterdir()) if f.suffix != ".pt")]  # fmt: skip
    plain = [f for f in records if f.is_file() and not f.is_symlink()]  # a job's log link: out
    written = [_tar(out / "results.tar.gz", plain, results, level=6)]
    unfinished = [d for d in runs if rundir.checkpoint(d).exists() and not rundir.is_finished(d)]
    unfinished.sort(key=rundir.progress, reverse=True)
    finished = [d for d in runs if rundir.is_finished(d) and rundir.weights(d).exists()]
    finished.sort(key=lambda d: str(rundir.summary(d).get("finished_at", "")), reverse=True)
    room = math.inf if max_bytes is None else max_bytes - written[0].stat().st_size
    part_limit = math.inf if part_bytes is None else part_bytes
    left_out: list[str] = []
    for name, files in (("checkpoints", [rundir.checkpoint(d) for d in unfinished]),
                        ("weights", [rundir.weights(d) for d in finished])):  # fmt: skip
        parts, room = _parts(files, results, room=room, part_bytes=part_limit, left_out=left_out)
        written += [_tar(out / f"{name}-{i}.tar.gz", part, results, level=1)
                    for i, part in enumerate(parts, start=1)]  # fmt: skip
    return written, left_out


def _parts(
    files: list[Path], results: Path, *, room: float, part_bytes: float, left_out: list[str]
) -> tuple[list[list[Path]], float]:
    """`files` in order, in parts within `part_bytes`, and the room left; the rest to `left_out`."""
    parts: list[list[Path]] = []
    filled = 0  # the last part's bytes
    for f in files:
        size = f.stat().st_size
        joins = bool(parts) and filled + cost(size) <= part_bytes
        needed = cost(size) if joins else cost(size) + ARCHIVE_BYTES
        over_part = cost(size) + ARCHIVE_BYTES > part_bytes
        if over_part or needed > room:
            why = "over --part-mb" if over_part else "over --max-mb"
            left_out.append(f"left out ({why}): {_member(f, results)} ({size_text(size)})")
            continue
        if not joins:
            parts.append([])
            filled = ARCHIVE_BYTES
        parts[-1].append(f)
        filled += cost(size)
        room -= needed
    return parts, room


def _member(path: Path, results: Path) -> str:
    return f"results/{path.relative_to(results).as_posix()}"


def _tar(path: Path, files: list[Path], results: Path, *, level: int) -> Path:
    """A gzipped tarball; weights compress little, so they take the fastest `level`."""
    with tarfile.open(path, "w:gz", compresslevel=level) as tar:
        for f in files:
            tar.add(f, arcname=_member(f, results))
    return path
