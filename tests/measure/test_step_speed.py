"""ablations.measure.step_speed (`ablate plan --measure`) on the CPU: a row per distinct run
and step kind, saved as measured; a second measurement takes only what the first left out; the
time limit stops measuring; the projection counts every planned run."""

from __future__ import annotations

import json
import time

import pandas as pd
import torch

from ablations.cli import main
from ablations.config import resolve_config
from ablations.data import load_dataset
from ablations.data.prepare import prepare_data
from ablations.measure import step_speed
from ablations.results import schemas
from ablations.results.table import read_table

CPU = torch.device("cpu")


def test_measure_times_the_split_the_profile_evaluates(tiny_cifar):
    """The paper profile holds no validation split (it evaluates on test): measuring it times
    the test pass, not an empty val split."""
    config = resolve_config("plain20", profile="paper", device="cpu", input_size=8)
    data = prepare_data(config, load_dataset("cifar10", data=tiny_cifar), CPU)
    row = step_speed.measure(config, data, CPU, iterations=1, warmup=1)
    assert row["eval_split"] == "test" and row["eval_s"] > 0 and row["step"] == "eager"
    assert row["checkpoint_bytes"] > 0 and row["images_per_s"] > 0


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
