"""ablations.measure.runs_at_once (`ablate runs-at-once`) on the CPU: every method measures and
appends its rows; the numbers mean little on a CPU, the code path is what is checked."""

from __future__ import annotations

import pytest
import torch

from ablations.cli import main
from ablations.config import resolve_config
from ablations.measure import runs_at_once
from ablations.results import schemas
from ablations.results.table import read_table


@pytest.mark.slow
def test_every_method_measures_on_the_cpu(tmp_path, tiny_cifar, capsys):
    argv = ["runs-at-once", "resnet20", "--profile", "smoke", "--device", "cpu", "--data",
            str(tiny_cifar), "--results", str(tmp_path), "--iterations", "2",
            "--warmup", "1"]  # fmt: skip
    assert main([*argv, "--streams", "1,2", "--processes", "2"]) == 0
    assert "3 row(s) appended" in capsys.readouterr().out
    table = read_table(tmp_path / schemas.RUNS_AT_ONCE_FILE, schemas.RUNS_AT_ONCE)
    assert list(zip(table["method"], table["jobs"], strict=True)) == [
        ("processes", 2), ("streams", 1), ("streams", 2)
    ]  # fmt: skip
    assert (table["images_per_s"] > 0).all() and set(table["step"]) == {"eager"}
    assert not table["mps"].any() and (table["machine"] != "").all()
    assert main([*argv, "--streams", "1", "--processes", ""]) == 0  # rows are added, never lost
    assert len(read_table(tmp_path / schemas.RUNS_AT_ONCE_FILE, schemas.RUNS_AT_ONCE)) == 4


def test_an_unknown_net_is_refused_in_one_line(tmp_path, capsys):
    assert main(["runs-at-once", "resnet21", "--results", str(tmp_path)]) == 2
    assert "no registered variant matches 'resnet21'" in capsys.readouterr().err


def test_processes_measure_before_this_process_holds_any_data(tmp_path, monkeypatch):
    calls = []

    def method(name):
        return lambda *a, jobs, **kw: calls.append((name, jobs)) or (1.0, "eager")

    monkeypatch.setattr(runs_at_once, "prepare_data", lambda *a: calls.append("data") or object())
    monkeypatch.setattr(runs_at_once, "streams", method("streams"))
    monkeypatch.setattr(runs_at_once, "processes", method("processes"))
    config = resolve_config("resnet20", profile="smoke", device="cpu")
    rows = runs_at_once.measure(
        config, results=tmp_path, data=None, device=torch.device("cpu"),
        counts={"streams": [1, 2], "processes": [2, 4]}, iterations=1, warmup=0, log=print,
    )  # fmt: skip
    assert calls == [("processes", 2), ("processes", 4), "data", ("streams", 1), ("streams", 2)]
    assert [(r["method"], r["jobs"]) for r in rows] == [c for c in calls if c != "data"]
    calls.clear()
    runs_at_once.measure(config, results=tmp_path, data=None, device=torch.device("cpu"),
                         counts={"processes": [2]}, iterations=1, warmup=0, log=print)  # fmt: skip
    assert calls == [("processes", 2)]  # no data prepared here for processes alone
