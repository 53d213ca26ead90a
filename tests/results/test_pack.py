"""ablations.results.pack (`ablate pack`): the tables and run records always; then the unfinished
runs' checkpoints, the furthest along first, and the finished runs' weights, the newest first,
within --max-mb in parts of --part-mb; what is left out is named. `ablate merge` takes the tarballs
back, and a run stopped by a time limit resumes from the packed checkpoint."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path

import pandas as pd

from ablations.cli import main
from ablations.config import resolve_config
from ablations.results import schemas
from ablations.results.pack import cost, pack
from ablations.train.run import train


def _names(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


def _results(tmp_path: Path) -> Path:
    """Runs a, b, c unfinished (checkpoints of 120, 60 and 50 kB at iterations 10, 30, 20) and
    d, e, f finished (weights of 90, 40 and 30 kB, d the newest); a table and a log link."""
    results = tmp_path / "results"
    runs = results / schemas.RUNS_DIR
    files = {"a": ("checkpoint.pt", 120, 10), "b": ("checkpoint.pt", 60, 30),
             "c": ("checkpoint.pt", 50, 20), "d": ("model.pt", 90, 3), "e": ("model.pt", 40, 2),
             "f": ("model.pt", 30, 1)}  # fmt: skip
    for run, (name, kb, at) in files.items():
        (runs / run).mkdir(parents=True)
        (runs / run / name).write_bytes(bytes(kb * 1024))
        pd.DataFrame({"iteration": [at]}).to_csv(runs / run / "curves.csv", index=False)
        if name == "model.pt":
            (runs / run / "summary.json").write_text(json.dumps({"finished_at": f"2026-12-0{at}"}))
    (runs / "d" / "best.pt").write_bytes(bytes(10))  # never packed
    (runs / "d" / "logs").symlink_to(tmp_path)  # a job's log folder: a link, left out
    pd.DataFrame({"x": [1]}).to_csv(results / "runs.csv", index=False)
    return results


def test_pack_stays_within_the_limits_and_names_what_it_left_out(tmp_path):
    results = _results(tmp_path)
    kb = 1024
    # No room: the tables alone, and everything else named.
    [tables], left_out = pack(results, tmp_path / "out", max_bytes=0)
    assert tables.name == "results.tar.gz" and len(left_out) == 6
    # The tables, then room for b + c in one part and d in another; a is over the part size,
    # e and f would pass the limit once d is in.
    part = cost(60 * kb) + cost(50 * kb) + 1024
    limit = tables.stat().st_size + part + cost(90 * kb) + 1024
    written, left_out = pack(results, tmp_path / "out", max_bytes=limit, part_bytes=part)
    assert [p.name for p in written] == [
        "results.tar.gz", "checkpoints-1.tar.gz", "weights-1.tar.gz"
    ]  # fmt: skip
    assert sum(p.stat().st_size for p in written) <= limit
    assert [_names(p) for p in written[1:]] == [
        ["results/runs/b/checkpoint.pt", "results/runs/c/checkpoint.pt"],
        ["results/runs/d/model.pt"],
    ]  # fmt: skip
    assert left_out == [
        "left out (over --part-mb): results/runs/a/checkpoint.pt (120 kB)",
        "left out (over --max-mb): results/runs/e/model.pt (40 kB)",
        "left out (over --max-mb): results/runs/f/model.pt (30 kB)",
    ]
    records = _names(written[0])
    assert "results/runs.csv" in records and "results/runs/d/summary.json" in records
    assert not any(n.endswith((".pt", "logs")) for n in records)

    # No total limit: every file, in parts of at most --part-mb; a file over it stays out.
    written, left_out = pack(results, tmp_path / "out", part_bytes=cost(60 * kb) + 1024)
    assert [_names(p) for p in written[1:]] == [
        ["results/runs/b/checkpoint.pt"], ["results/runs/c/checkpoint.pt"],
        ["results/runs/e/model.pt"], ["results/runs/f/model.pt"],
    ]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)
    assert left_out == [
        "left out (over --part-mb): results/runs/a/checkpoint.pt (120 kB)",
        "left out (over --part-mb): results/runs/d/model.pt (90 kB)",
    ]


def test_ablate_pack_says_what_it_wrote_and_left_out(tmp_path, capsys):
    results = _results(tmp_path)
    out = tmp_path / "out"
    (out / "weights-7.tar.gz").parent.mkdir()
    (out / "weights-7.tar.gz").write_bytes(b"an earlier pack's part")
    assert main(["pack", str(out), "--results", str(results), "--max-mb", "0.2"]) == 0
    printed = capsys.readouterr()
    assert f"{out / 'results.tar.gz'}:" in printed.out
    assert "left out (over --max-mb): results/runs/" in printed.err
    assert not (out / "weights-7.tar.gz").exists()  # replaced by this pack's own
    assert main(["pack", str(out), "--results", str(tmp_path / "none")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_a_packed_run_merges_elsewhere_and_resumes_from_its_checkpoint(tmp_path, tiny_cifar):
    config = resolve_config("plain20", profile="smoke", device="cpu")
    here = tmp_path / "here"
    stopped = train(config, out=here / schemas.RUNS_DIR, data=tiny_cifar, device="cpu",
                    show_progress=False, deadline=time.monotonic())  # fmt: skip
    assert stopped.status == "stopped" and stopped.summary["iterations"] == 4
    written, left_out = pack(here, tmp_path / "packed")
    assert not left_out and [p.name for p in written] == ["results.tar.gz", "checkpoints-1.tar.gz"]
    elsewhere = tmp_path / "elsewhere"
    assert main(["merge", *map(str, written), "--results", str(elsewhere)]) == 0
    done = train(config, out=elsewhere / schemas.RUNS_DIR, data=tiny_cifar, device="cpu",
                 show_progress=False)  # fmt: skip
    starts = json.loads((done.run_dir / "env.json").read_text())
    assert done.status == "complete" and [s["from_iteration"] for s in starts] == [0, 4]
