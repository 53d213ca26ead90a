"""The GPU runbook (device/train_gpu.sh) end to end on the CPU at the smoke budget: measure,
project, train until the time limit, pack; then a second call resumes and finishes the set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _runbook(tmp_path: Path, data: Path, out: str, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OUT": str(tmp_path / out), "ABLATE_DATA": str(data),
                   "OMP_NUM_THREADS": "1", "RESUME_FROM": str(tmp_path / "nothing"),
                   "PYTHON": sys.executable}  # fmt: skip
    return subprocess.run(
        ["bash", str(ROOT / "device" / "train_gpu.sh"), "--smoke",
         "--results", str(tmp_path / "results"), *args],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_runbook_measures_stops_cleanly_packs_and_resumes(tmp_path, tiny_cifar):
    first = _runbook(tmp_path, tiny_cifar, "out1", "--time-limit", "0",
                     "--measure-iterations", "3", "--eager-iterations", "2")  # fmt: skip
    assert first.returncode == 0, first.stdout[-3000:]
    out = tmp_path / "out1"
    speed = pd.read_csv(out / "speed.csv")
    assert set(speed["step"]) == {"eager"} and len(speed) == 8  # 4 nets x (auto, eager) on a CPU
    assert (speed["images_per_s"] > 0).all()
    projection = json.loads((out / "projection.json").read_text())
    assert projection["nets"] == 4 and projection["eager_total_minutes"] > 0
    [stopped] = json.loads((out / "runs.json").read_text())
    assert stopped["status"] == "stopped" and stopped["iterations"] == 4
    assert "stopped cleanly at a checkpoint" in first.stdout
    with tarfile.open(out / "weights-1.tar.gz") as tar:
        assert any(n.endswith("checkpoint.pt") for n in tar.getnames())
    with tarfile.open(out / "results.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.endswith("config.json") for n in names) and not any(".pt" in n for n in names)

    second = _runbook(tmp_path, tiny_cifar, "out2", "--skip-measure")
    assert second.returncode == 0, second.stdout[-3000:]
    runs = json.loads((tmp_path / "out2" / "runs.json").read_text())
    assert [r["status"] for r in runs] == ["complete"] * 4
    assert runs[0]["run_id"] == stopped["run_id"]  # resumed, not restarted elsewhere
    table = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert len(table) == 4 and set(table["status"]) == {"complete"}
