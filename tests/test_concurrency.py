"""The measurement of runs at once (device/concurrency_gpu.py) on the CPU, and how GPU training
picks its number of runs at once from it (device/train_gpu.py choose_jobs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _measure(out: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "device" / "concurrency_gpu.py"), "--smoke", "--out",
         str(out), "--data", str(data), "--variant", "resnet20", "--iterations", "2", *extra],
        env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_every_method_measures_on_the_cpu(tmp_path, tiny_cifar, capsys, device_script):
    out = tmp_path / "concurrency.csv"
    done = _measure(out, tiny_cifar, "--jobs", "1,2", "--process-jobs", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(out)
    assert list(zip(table["method"], table["jobs"], strict=True)) == [
        ("streams", 1), ("streams", 2), ("processes", 2)
    ]  # fmt: skip
    assert (table["images_per_s"] > 0).all() and set(table["step"]) == {"eager"}
    assert not table["mps"].any() and table["machine"].notna().all()

    # A second run with --if-missing measures only what this device has no rows of (here, in
    # this process: the processes method is the one that needs the script's own process).
    concurrency = device_script("concurrency_gpu")
    argv = ["--smoke", "--out", str(out), "--data", str(tiny_cifar), "--variant", "resnet20"]
    assert concurrency.main([*argv, "--methods", "streams", "--if-missing"]) == 0
    assert "measured on this device already" in capsys.readouterr().err
    assert len(pd.read_csv(out)) == 3
    with pytest.raises(SystemExit) as bad:
        concurrency.main([*argv, "--methods", "threads"])
    assert bad.value.code == 2


def _table(path: Path, rates: dict[int, float]) -> Path:
    rows = [{"method": "streams", "jobs": k, "images_per_s": v} for k, v in rates.items()]
    rows.append({"method": "processes", "jobs": 8, "images_per_s": 10 * max(rates.values())})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("rates", "requested", "expected"),
    [
        ({1: 100.0, 2: 180.0, 4: 250.0, 8: 240.0}, "auto", (4, 2.5)),  # the best streams K
        ({1: 100.0, 2: 105.0, 4: 108.0}, "auto", (1, 1.0)),  # under 10% better: one at a time
        ({1: 100.0, 2: 180.0}, "2", (2, 1.8)),  # asked for: taken, with its measured gain
        ({1: 100.0, 2: 180.0}, "3", (3, 1.0)),  # not measured: no gain claimed
    ],
)
def test_runs_at_once_are_chosen_from_the_measurement(
    tmp_path, rates, requested, expected, device_script
):
    train_gpu = device_script("train_gpu")
    assert train_gpu.choose_jobs(requested, _table(tmp_path / "c.csv", rates)) == expected


def test_nothing_measured_means_one_run_at_a_time(tmp_path, device_script):
    train_gpu = device_script("train_gpu")
    assert train_gpu.choose_jobs("auto", tmp_path / "missing.csv") == (1, 1.0)
