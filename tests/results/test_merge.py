"""`ablate merge` (ablations.results.merge): results made elsewhere come in without losing a row, in
whatever order their tarballs are merged: tables by key (the newer row wins), JSON records when
newer, run directories by how far each got (a finished run is never replaced), checkpoints
only when later. Runs here are real smoke runs stopped and resumed by a time limit."""

from __future__ import annotations

import json
import shutil
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest

from ablations.cli import main
from ablations.config import resolve_config
from ablations.results import collect, schemas
from ablations.results.merge import merge
from ablations.results.table import Schema, read_table, write_table
from ablations.train.run import train

CONFIG = resolve_config("plain20", profile="smoke", device="cpu")


def _tar(folder: Path, archive: Path) -> Path:
    """A tarball with members results/..., as `ablate pack` writes them."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="results")
    return archive


def _row(schema: Schema, **values: object) -> dict:
    blank = {"str": "", "int": 0, "float": 1.0, "bool": False}
    return {**{c: blank[k] for c, k in schema.columns.items()}, **values}


@pytest.mark.parametrize("order", ["older first", "newer first"])
def test_tables_and_records_keep_every_row_and_the_newer_one(tmp_path, order):
    older, newer = tmp_path / "older", tmp_path / "newer"
    for folder, created, bench, speed in (
        (older, "2026-12-01", {"resnet20": 1.0, "resnet56": 2.0}, "resnet20"),
        (newer, "2026-12-05", {"resnet20": 3.0, "plain20": 4.0}, "resnet20"),
    ):
        folder.mkdir()
        rows = [_row(schemas.THROUGHPUT, variant=v, images_per_s=ips, created_at=created)
                for v, ips in bench.items()]  # fmt: skip
        write_table(pd.DataFrame(rows), folder / schemas.THROUGHPUT_FILE, schemas.THROUGHPUT)
        write_table(pd.DataFrame([_row(schemas.STEP_SPEED, variant=speed, created_at=created)]),
                    folder / schemas.STEP_SPEED_FILE, schemas.STEP_SPEED)  # fmt: skip
        (folder / schemas.PROJECTION_FILE).write_text(json.dumps({"created_at": created}))
        pd.DataFrame({"path": ["cpu-decode"], "made": [created]}).to_csv(
            folder / "loader_speed.csv", index=False
        )
    sources = [older, newer] if order == "older first" else [newer, older]
    ours = tmp_path / "results"
    merge([_tar(s, tmp_path / f"{s.name}.tar.gz") for s in sources[:1]], ours, log=lambda _: None)
    merge([sources[1]], ours, log=lambda _: None)  # a folder
    merge([sources[1] / schemas.THROUGHPUT_FILE], ours, log=lambda _: None)  # one table
    bench = read_table(ours / schemas.THROUGHPUT_FILE, schemas.THROUGHPUT)
    # Every setting once; resnet20's measured twice (one key): the later measurement stands.
    assert bench.set_index("variant")["images_per_s"].to_dict() == {
        "resnet20": 3.0, "resnet56": 2.0, "plain20": 4.0
    }  # fmt: skip
    # The step speed table keeps every measurement (its key holds the time).
    speeds = read_table(ours / schemas.STEP_SPEED_FILE, schemas.STEP_SPEED)
    assert sorted(speeds["created_at"]) == ["2026-12-01", "2026-12-05"]
    assert json.loads((ours / schemas.PROJECTION_FILE).read_text())["created_at"] == "2026-12-05"
    assert sorted(pd.read_csv(ours / "loader_speed.csv")["made"]) == ["2026-12-01", "2026-12-05"]


@pytest.mark.slow
def test_runs_come_in_as_far_as_they_got_and_finished_ones_stay(tmp_path, tiny_cifar):
    def run_until(results: Path, *, stop: bool) -> None:
        train(CONFIG, out=results / schemas.RUNS_DIR, data=tiny_cifar, device="cpu",
              show_progress=False, deadline=time.monotonic() if stop else None)  # fmt: skip

    first, second, done = (tmp_path / n for n in ("first", "second", "done"))
    run_until(first, stop=True)  # stopped at its first checkpoint: iteration 4
    shutil.copytree(first, second)
    run_until(second, stop=True)  # resumed, stopped at 8
    shutil.copytree(second, done)
    run_until(done, stop=False)
    collect.record(done / schemas.RUNS_DIR / CONFIG.run_id, done)
    ours = tmp_path / "results"
    run = ours / schemas.RUNS_DIR / CONFIG.run_id

    def progress() -> int:
        return int(pd.read_csv(run / "curves.csv")["iteration"].max())

    assert merge([second], ours, log=lambda _: None) == 0
    assert progress() == 8 and (run / "checkpoint.pt").exists()
    merged: list[str] = []
    merge([first], ours, log=merged.append)  # an older machine's results: nothing goes back
    assert progress() == 8 and "kept our checkpoint (iteration 8)" in merged[0]
    assert merge([_tar(done, tmp_path / "done.tar.gz")], ours, log=lambda _: None) == 1
    assert (run / "summary.json").exists() and not (run / "checkpoint.pt").exists()
    assert read_table(ours / schemas.RUNS_FILE, schemas.RUNS)["status"].tolist() == ["complete"]
    merge([second], ours, log=lambda _: None)  # a finished run is never replaced
    assert (run / "summary.json").exists() and not (run / "checkpoint.pt").exists()


def test_bad_sources_are_refused_in_one_line(tmp_path, capsys):
    assert main(["merge", str(tmp_path / "missing.tar.gz")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("not a tarball")
    assert main(["merge", str(text), "--results", str(tmp_path / "r")]) == 2
    assert "not a results folder or a tarball" in capsys.readouterr().err
