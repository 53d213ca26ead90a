"""ablations.measure.step_speed (`ablate plan --measure`) on the CPU: a row per distinct run
and step kind, saved as measured; a second measurement takes only what the first left out; the
time limit stops measuring; the projection counts every planned run, and totals the measured
ones; the runs at once are chosen from a measurement; the printed lines say what is left; a
graph step's capture is never timed; a compiled measurement starts dynamo afresh."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
import torch

from ablations.cli import main
from ablations.config import resolve_config
from ablations.data import load_dataset
from ablations.data.prepare import prepare_data
from ablations.measure import step_speed
from ablations.results import schemas
from ablations.results.table import read_table
from ablations.train import trainer as trainers
from ablations.train.steps import GRAPH_WARMUP
from ablations.train.trainer import Trainer

CPU = torch.device("cpu")
MACHINE = "NVIDIA H100 80GB HBM3"


def test_measure_times_the_split_the_profile_evaluates(tiny_cifar):
    """The paper profile holds no validation split (it evaluates on test): measuring it times
    the test pass, not an empty val split."""
    config = resolve_config("plain20", profile="paper", device="cpu", input_size=8)
    data = prepare_data(config, load_dataset("cifar10", data=tiny_cifar), CPU)
    row = step_speed.measure(config, data, CPU, iterations=1, warmup=1)
    assert row["eval_split"] == "test" and row["eval_s"] > 0 and row["step"] == "eager"
    assert row["checkpoint_bytes"] > 0 and row["images_per_s"] > 0


def _graph_kind(monkeypatch) -> list[tuple[Trainer, int]]:
    """Trainers take the "graph" step kind, its steps eager (the CUDA graph needs a GPU; the
    warm-up count is under test); returns each trainer `ready` made, with its iteration then."""
    monkeypatch.setattr(trainers, "resolve_step", lambda *a, **k: ("graph", ""))
    monkeypatch.setattr(trainers, "step_of_kind", lambda step, kind, *, train: step)
    made: list[tuple[Trainer, int]] = []
    ready = step_speed.ready

    def recorded(*args, **kwargs):
        trainer, batches = ready(*args, **kwargs)
        made.append((trainer, trainer.state.iteration))
        return trainer, batches

    monkeypatch.setattr(step_speed, "ready", recorded)
    return made


@pytest.mark.parametrize(("warmup", "expected"), [(0, GRAPH_WARMUP + 1), (1, GRAPH_WARMUP + 1),
                                                  (6, 6)])  # fmt: skip
def test_a_graph_step_is_timed_after_its_capture(tiny_cifar, monkeypatch, warmup, expected):
    """The capture (the call after GRAPH_WARMUP eager ones) synchronises: however few warm-up
    steps are asked for, it is not in the timed window, which is `iterations` steps long."""
    made = _graph_kind(monkeypatch)
    config = resolve_config("plain20", profile="smoke", device="cpu", input_size=8)
    data = prepare_data(config, load_dataset("cifar10", data=tiny_cifar), CPU)
    row = step_speed.measure(config, data, CPU, iterations=2, warmup=warmup)
    [(trainer, warmed)] = made
    assert row["step"] == "graph" and warmed == expected
    assert trainer.state.iteration == expected + 2 and row["iterations"] == 2


def test_a_compiled_measurement_starts_dynamo_afresh(tiny_cifar, monkeypatch, dynamo_resets):
    calls = dynamo_resets
    ready = step_speed.ready
    monkeypatch.setattr(
        step_speed, "ready", lambda *a, **k: calls.append("ready") or ready(*a, **k)
    )
    for compile in (True, False):
        config = resolve_config("plain20", profile="smoke", device="cpu", input_size=8,
                                compile=compile)  # fmt: skip
        data = prepare_data(config, load_dataset("cifar10", data=tiny_cifar), CPU)
        step_speed.measure(config, data, CPU, iterations=1, warmup=0)
    assert calls == ["reset", "ready", "ready"]


def test_a_second_measurement_takes_only_what_the_first_left_out(tmp_path, tiny_cifar):
    configs = [resolve_config(v, profile="smoke", device="cpu", seed=s)
               for v in ("resnet20", "plain20") for s in (0, 1)]  # fmt: skip

    def measure(deadline: float | None) -> dict:
        return step_speed.measure_plan(
            configs, results=tmp_path, data=lambda _config: tiny_cifar, device=CPU,
            iterations=1, warmup=1, deadline=deadline, log=lambda _line: None,
        )  # fmt: skip

    cut = measure(deadline=time.monotonic())  # the limit has passed: nothing is measured
    assert not (tmp_path / schemas.STEP_SPEED_FILE).exists()
    assert cut["runs"] == 4 and "eager_seconds" not in cut
    measure(deadline=time.monotonic() + 600)
    first = read_table(tmp_path / schemas.STEP_SPEED_FILE, schemas.STEP_SPEED)
    # One row per net (the seeds train alike); on a CPU the own step is the eager one.
    assert sorted(first["variant"]) == ["plain20", "resnet20"]
    assert set(first["requested_step"]) == {"auto"} and set(first["step"]) == {"eager"}
    projection = measure(deadline=None)
    pd.testing.assert_frame_equal(
        read_table(tmp_path / schemas.STEP_SPEED_FILE, schemas.STEP_SPEED), first
    )  # measured already here at this commit: nothing new
    assert set(projection["eager_seconds"]) == {c.run_id for c in configs}
    assert projection == json.loads((tmp_path / schemas.PROJECTION_FILE).read_text())
    assert projection["runs_at_once"] == 1 and projection["machine"]


def test_ablate_plan_measure_prints_the_projection(tmp_path, tiny_cifar, capsys):
    results = tmp_path / "results"
    argv = ["plan", "--profile", "smoke", "--experiments", "degradation", "--device", "cpu",
            "--data", str(tiny_cifar), "--results", str(results)]  # fmt: skip
    assert main([*argv, "--measure", "--iterations", "1", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "# projected on" in out and "eager step:" in out and "for 4 run(s)" in out
    table = read_table(results / schemas.STEP_SPEED_FILE, schemas.STEP_SPEED)
    assert len(table) == 4 and (table["iterations"] == 1).all()


def _speed(variant: str, ms_per_step: float, created_at: str = "2026-12-06") -> dict:
    config = resolve_config(variant, profile="paper", device="cpu")
    return {"variant": variant, "step": "graph", "batch_size": config.batch_size,
            "precision": config.precision, "channels_last": config.channels_last,
            "ms_per_step": ms_per_step, "eval_s": 1.0, "created_at": created_at}  # fmt: skip


def test_the_projection_counts_only_the_runs_measured():
    configs = [resolve_config(v, profile="paper", device="cpu", seed=s)
               for v in ("resnet20", "resnet56") for s in (0, 1)]  # fmt: skip
    rows = pd.DataFrame([_speed("resnet20", 3.0, "2026-12-01"), _speed("resnet20", 2.0)])
    projection = step_speed.project(rows, configs, {c.run_id: 391 for c in configs})
    # 64k steps of 2 ms (the newer row); 128 evaluations (every 500 steps) and the final test
    # pass (counted twice) of 1 s each; both seeds of resnet20, neither of resnet56.
    each = pytest.approx(64_000 * 2e-3 + 130 * 1.0)
    assert projection["graph_seconds"] == {configs[0].run_id: each, configs[1].run_id: each}
    assert projection["graph_unmeasured"] == ["resnet56"] and projection["runs"] == 4
    assert projection["graph_total_minutes"] == pytest.approx(2 * (128 + 130) / 60)


def test_a_run_without_its_epoch_length_is_not_projected():
    config = resolve_config("resnet20", profile="paper", device="cpu")
    projection = step_speed.project(pd.DataFrame([_speed("resnet20", 2.0)]), [config], {})
    assert projection["graph_seconds"] == {} and projection["graph_unmeasured"] == ["resnet20"]


def _at_once(rates: dict[int, float], machine: str = MACHINE) -> pd.DataFrame:
    rows = [{"method": "streams", "jobs": k, "images_per_s": v, "machine": machine,
             "created_at": "2026-12-06"} for k, v in rates.items()]  # fmt: skip
    rows.append({**rows[0], "method": "processes", "jobs": 8, "images_per_s": 1e9})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        ({1: 100.0, 2: 180.0, 4: 250.0, 8: 240.0}, (4, 2.5)),  # the best streams K
        ({1: 100.0, 2: 105.0, 4: 108.0}, (1, 1.0)),  # under 10% better: one at a time
        ({2: 180.0, 4: 250.0}, (1, 1.0)),  # no run alone to compare with
    ],
)
def test_runs_at_once_are_chosen_from_the_measurement(rates, expected):
    assert step_speed.best_runs_at_once(_at_once(rates), MACHINE) == expected


def test_another_machines_measurement_chooses_nothing():
    table = _at_once({1: 100.0, 4: 250.0}, machine="another GPU")
    assert step_speed.best_runs_at_once(table, MACHINE) == (1, 1.0)
    assert step_speed.best_runs_at_once(schemas.RUNS_AT_ONCE.empty(), MACHINE) == (1, 1.0)


def test_the_printed_projection_says_what_is_left_and_what_was_not_measured():
    projection = {"runs": 3, "graph_seconds": {"a": 1800.0, "b": 5400.0},
                  "graph_total_minutes": 120.0, "graph_unmeasured": ["resnet110"],
                  "runs_at_once": 4, "combined_speedup": 2.0}  # fmt: skip
    assert step_speed.describe(projection, missing={"b"}) == [
        "graph step: 2.0 h for 2 run(s) one at a time, 1.0 h 4 at once; 1.5 h of it still to "
        "train; not measured: resnet110"
    ]
    assert step_speed.describe({"runs": 1}, missing=set()) == ["nothing measured yet"]
    assert [step_speed.span(s) for s in (42, 90, 7200)] == ["42 s", "1.5 min", "2.0 h"]


def test_rows_are_timed_to_the_millisecond_and_a_repeated_key_keeps_the_table_readable(tmp_path):
    path = tmp_path / schemas.RUNS_AT_ONCE_FILE
    row = {"method": "streams", "mps": False, "jobs": 1, "variant": "resnet20", "step": "eager",
           "precision": "fp32", "channels_last": False, "batch_size": 4, "iterations": 2,
           "seconds": 1.0, "images_per_s": 8.0, "machine": "cpu", "torch": torch.__version__,
           "git_commit": "", "created_at": "2026-01-01T00:00:00.000+00:00"}  # fmt: skip
    assert len(step_speed.now()) == len(row["created_at"])
    step_speed.append_row(path, row, schemas.RUNS_AT_ONCE)
    later = {**row, "created_at": "2026-01-01T00:00:00.001+00:00"}
    step_speed.append_row(path, later, schemas.RUNS_AT_ONCE)
    step_speed.append_row(path, {**row, "seconds": 2.0}, schemas.RUNS_AT_ONCE)  # the same key
    table = read_table(path, schemas.RUNS_AT_ONCE)
    assert len(table) == 2 and table["seconds"].tolist() == [2.0, 1.0]
