"""The speed runbook (device/speed_gpu.sh) on the CPU with --smoke: its stages write rows that
come back in one tarball; a stage cut by the time limit keeps the rows saved before, and the
script still packs, exits 0 and names the stage to rerun; STAGES / arguments choose stages."""

from __future__ import annotations

import importlib.util
import io
import os
import signal
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_TIMM = importlib.util.find_spec("timm") is not None


@dataclass(frozen=True)
class Ran:
    """A finished runbook call: its exit status, its output and the session it ran in."""

    returncode: int
    stdout: str
    session: int


def _runbook(tmp_path: Path, data: Path, out: str, *args: str, **env: str) -> Ran:
    own = ("STAGES", "TIME_LIMIT", "RESULTS")  # the runbook's own knobs come from the test alone
    environment = {k: v for k, v in os.environ.items() if k not in own}
    environment |= {"OUT": str(tmp_path / out), "ABLATE_DATA": str(data),
                    "OMP_NUM_THREADS": "1", "RESUME_FROM": str(tmp_path / "nothing"),
                    "PYTHON": sys.executable, **env}  # fmt: skip
    # A session of its own (its id is the pid): afterwards, whatever of that session still runs
    # was left behind by a stage.
    with subprocess.Popen(
        ["bash", str(ROOT / "device" / "speed_gpu.sh"), "--smoke", *args], cwd=ROOT,
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    ) as proc:  # fmt: skip
        try:
            stdout, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the stages too, or the test would wait on them
            raise
    return Ran(proc.returncode, stdout, proc.pid)


def _tables(tarball: Path) -> dict[str, pd.DataFrame]:
    """The CSVs packed in `tarball`, by file name; every member must sit under results/."""
    tables: dict[str, pd.DataFrame] = {}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            assert member.name.split("/")[0] == "results", member.name
            handle = tar.extractfile(member)
            if handle is not None:
                tables[Path(member.name).name] = pd.read_csv(io.BytesIO(handle.read()))
    return tables


def _left_running(session: int) -> list[str]:
    """Processes of `session` still alive (zombies, waiting for init to reap them, are dead)."""
    alive: list[str] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        if int(fields[3]) == session and fields[0] != "Z":
            alive.append(stat.parent.name)
    return alive


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_speed_runbook_packs_stages_keeps_rows_when_cut_and_selects(
    tmp_path: Path, tiny_cifar: Path
) -> None:
    results = tmp_path / "results"
    first = _runbook(tmp_path, tiny_cifar, "out1", "--results", str(results),
                     STAGES="train-speed,timm,table")  # fmt: skip
    log = first.stdout
    assert first.returncode == 0, log[-3000:]
    assert "[speed_gpu] train-speed: finished" in log and "[speed_gpu] table: finished" in log
    if HAS_TIMM:
        assert "[speed_gpu] timm: finished" in log
    else:
        assert "[speed_gpu] timm: skipped: timm is not importable" in log
    assert "all stages done" in log
    out = tmp_path / "out1"
    assert sorted(p.name for p in out.iterdir()) == ["speed-results.tar.gz", "speed_gpu.log"]
    assert (out / "speed_gpu.log").read_text().rstrip().endswith("all stages done")
    tables = _tables(out / "speed-results.tar.gz")
    assert set(tables) == {"train_speed.csv", "throughput.csv"} | (
        {"throughput_timm.csv"} if HAS_TIMM else set()
    )
    speed = tables["train_speed.csv"]
    assert sorted(zip(speed["variant"], speed["loop"], strict=True)) == [
        ("resnet20", "conventional"), ("resnet20", "suite"),
        ("resnet56", "conventional"), ("resnet56", "suite"),
    ]  # fmt: skip
    assert (speed["images_per_s"] > 0).all()
    table = tables["throughput.csv"]  # 2 nets (both families) x 2 modes x NCHW/channels_last
    assert len(table) == 8 and set(table["variant"]) == {"resnet20", "resnet18"}
    assert set(table["status"]) == {"ok"}
    assert not _left_running(first.session)

    # A later call, carrying the tarball, with the table chosen by argument and too little time:
    # the stage starts, is cut, and the script still exits 0 with the kept rows packed. (20 s:
    # merging the carried tarball in takes a few seconds of it, the smoke table about 20 alone.)
    second = _runbook(tmp_path, tiny_cifar, "out2", "--results", str(tmp_path / "results2"),
                      "table", TIME_LIMIT="20", RESUME_FROM=str(out))  # fmt: skip
    log = second.stdout
    assert second.returncode == 0, log[-3000:]
    assert "stages: table;" in log and "== train-speed" not in log  # chosen: only the table
    assert "== table: up to" in log and "[speed_gpu] table: cut off by the time limit" in log
    assert "STAGES=table bash device/speed_gpu.sh --smoke" in log
    kept = _tables(tmp_path / "out2" / "speed-results.tar.gz")
    pd.testing.assert_frame_equal(kept["train_speed.csv"], speed)  # carried, not measured again
    # The carried rows, none lost or marked crashed by the cut (a row of a setting measured
    # again replaces the old one).
    assert len(kept["throughput.csv"]) == 8 and set(kept["throughput.csv"]["status"]) == {"ok"}
    assert not _left_running(second.session)


def test_an_unknown_stage_is_refused_before_anything_runs(tmp_path: Path) -> None:
    done = _runbook(tmp_path, tmp_path, "out", STAGES="train-speed,tables")
    assert done.returncode == 2
    assert "unknown stage 'tables'" in done.stdout
    assert not (tmp_path / "out" / "speed-results.tar.gz").exists()
