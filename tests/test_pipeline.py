from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pandas as pd
import pytest
import torch

from ablations import pipeline
from ablations.cli import main
from ablations.cli.options import TRAIN_OVERRIDES
from ablations.cli.parser import build_parser
from ablations.config import resolve_config
from ablations.experiments import EXPERIMENTS, parse
from ablations.measure import throughput
from ablations.profiles import PROFILES
from ablations.registry import AblationsError
from ablations.results import collect, schemas
from ablations.results.table import read_table
from ablations.tasks import ORDER, Context, Task, plan, train_command

CPU = torch.device("cpu")


def _ctx(tmp_path, data=None):
    return Context(results=tmp_path, data=data, device=CPU)


def test_plan_follows_the_profile_and_shares_runs_between_experiments():
    tasks = plan(["degradation", "shortcuts"], profile="cpu", seeds=1, device=CPU)
    train = [t for t in tasks if t.kind == "train"]
    names = [t.config.variant for t in train]
    assert names == ["plain20", "plain56", "resnet20", "resnet56", "resnet56-b", "resnet56-c"]
    shared = next(t for t in train if t.config.variant == "resnet56")
    assert shared.experiments == ("degradation", "shortcuts")
    paper = plan(["degradation"], profile="paper", seeds=1, device=CPU)
    assert len(paper) == len(EXPERIMENTS["degradation"].variants_for("paper")) == 9


def test_seeds_multiply_training_runs():
    tasks = plan(["degradation"], profile="cpu", seeds=3, device=CPU)
    assert sorted({t.config.seed for t in tasks}) == [0, 1, 2] and len(tasks) == 12


def test_tasks_run_in_dependency_order():
    tasks = plan(
        ["throughput", "responses", "degradation", "complexity"], profile="cpu", device=CPU
    )
    kinds = [t.kind for t in tasks]
    assert kinds == sorted(kinds, key=ORDER.__getitem__)
    assert kinds[0] == "complexity" and kinds[-1] == "throughput"


def test_profile_default_experiments_and_unknown_names():
    assert parse(None, profile="cpu") == ["complexity", "degradation", "responses", "throughput"]
    assert parse("degradation, stems", profile="cpu") == ["degradation", "stems"]
    with pytest.raises(AblationsError, match="unknown experiment 'fig6'; choose from"):
        parse("degradation,fig6", profile="cpu")


@pytest.mark.parametrize("variant", ["resnet20", "resnet110", "resnet18-k3"])
@pytest.mark.parametrize("profile", ["paper", "cpu"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])  # planning for a GPU needs none here
def test_dispatch_commands_reproduce_the_config_exactly(variant, profile, device):
    config = resolve_config(variant, profile=profile, seed=2, device=device)
    command = train_command(config, results=Path("results"))
    args = build_parser().parse_args(shlex.split(command)[1:])
    overrides = {k: getattr(args, k) for k in TRAIN_OVERRIDES if hasattr(args, k)}
    again = resolve_config(
        args.variant, profile=args.profile, seed=args.seed, device=args.device, **overrides
    )
    assert again == config and "--precision" in command and f"--device {device}" in command


def test_throughput_task_is_done_when_this_machine_measured_its_settings(tmp_path):
    settings = tuple(
        throughput.grid(["resnet20"], modes=["infer"], device="cpu", warmup=1, repeats=1, steps=1)
    )
    task = Task("throughput", "t", ("throughput",), settings=settings)
    assert not pipeline.is_done(task, _ctx(tmp_path))
    throughput.run(settings, out=tmp_path / schemas.THROUGHPUT_FILE, show_progress=False)
    assert pipeline.is_done(task, _ctx(tmp_path))
    table = read_table(tmp_path / schemas.THROUGHPUT_FILE, schemas.THROUGHPUT)
    table["machine"] = "another machine"
    table.to_csv(tmp_path / schemas.THROUGHPUT_FILE, index=False)
    assert not pipeline.is_done(task, _ctx(tmp_path))  # another machine's rows do not count


@pytest.mark.parametrize("jobs", [1, 3])  # 3: runs at once in this process (ablations.gpu.streams)
def test_training_runs_are_recorded_and_collected(tmp_path, tiny_cifar, jobs):
    tasks = plan(["degradation"], profile="smoke", device=CPU)
    ctx = _ctx(tmp_path, tiny_cifar)
    counts = pipeline.execute(tasks, ctx, log=lambda line: None, jobs=jobs)
    assert counts["ran"] == 4
    runs, curves, _ = schemas.load(tmp_path)
    assert sorted(runs["variant"]) == ["plain20", "plain56", "resnet20", "resnet56"]
    assert (
        set(runs["status"]) == {"complete"}
        and (runs["macs"] > 0).all()
        and (runs["params"] > 0).all()
    )
    assert set(curves["run_id"]) == set(runs["run_id"])
    assert set(runs["experiments"]) == {"degradation"}  # membership, rebuilt by collect below
    # The step each took and how many shared the device (4 runs, 3 at a time: at most 3).
    assert set(runs["step"]) == {"eager"} and set(runs["runs_at_once"]) == {jobs}
    again = pipeline.execute(tasks, ctx, log=lambda line: None, jobs=jobs)
    assert again["ran"] == 0 and again["done"] == 4
    (tmp_path / schemas.RUNS_FILE).unlink()
    (tmp_path / schemas.CURVES_FILE).unlink()
    rebuilt = collect.collect(tmp_path)
    pd.testing.assert_frame_equal(rebuilt.sort_values("run_id").reset_index(drop=True),
                                  runs.sort_values("run_id").reset_index(drop=True))  # fmt: skip


def test_a_run_finished_elsewhere_is_recorded(tmp_path, tiny_cifar):
    from ablations.train.run import train

    config = resolve_config("resnet20", profile="smoke", device=CPU)
    train(config, out=tmp_path / schemas.RUNS_DIR, data=tiny_cifar, device=CPU, show_progress=False)
    assert pipeline.record_unrecorded(_ctx(tmp_path)) == 1
    assert list(schemas.load(tmp_path)[0]["run_id"]) == [config.run_id]


def test_cli_plan_lists_missing_runs_as_commands(tmp_path, capsys):
    code = main(
        ["plan", "--profile", "cpu", "--experiments", "degradation", "--results", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "20 missing training run(s)" in out  # 4 nets x the cpu profile's 5 seeds
    command = (f"ablate train plain20 --profile cpu --seed 0 --device cpu --out {tmp_path}/runs "
               "--precision fp32")  # fmt: skip
    assert command in out


def test_cli_run_rejects_an_unknown_experiment_in_one_line(tmp_path, capsys):
    assert main(["run", "--experiments", "fig6", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("ablate: error: unknown experiment 'fig6'")


def test_responses_follow_the_trained_degradation_runs(tmp_path, tiny_cifar, monkeypatch):
    # On the profile's own subset of the test images (smoke measures all 256 by default).
    smoke = dataclasses.replace(PROFILES["smoke"], response_images=100)
    monkeypatch.setitem(PROFILES, "smoke", smoke)
    tasks = plan(["degradation", "responses"], profile="smoke", device=CPU)
    ctx = _ctx(tmp_path, tiny_cifar)
    pipeline.execute(tasks, ctx, log=lambda line: None)
    _, _, responses = schemas.load(tmp_path)
    layers = responses.groupby("variant")["layer"].max().to_dict()
    assert layers == {"plain20": 19, "plain56": 55, "resnet20": 19, "resnet56": 55}
    assert set(responses["images"]) == {100}
    assert pipeline.execute(tasks, ctx, log=lambda line: None)["ran"] == 0


def test_a_missing_data_path_is_refused_even_with_nothing_to_run(tmp_path, capsys):
    from ablations.cli import main

    results, reports = str(tmp_path / "results"), str(tmp_path / "reports")
    argv = ["run", "--experiments", "complexity", "--data", str(tmp_path / "nope"),
            "--results", results, "--reports", reports]  # fmt: skip
    assert main(argv) == 2
    assert "does not exist; point it at CIFAR-10" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_a_time_limit_stops_the_runs_and_the_same_command_resumes(tmp_path, tiny_cifar, capsys):
    """`ablate run --time-limit`: a run stops at its first checkpoint past the limit, none
    starts after it (the first always does), the command exits 0 and renders nothing; the same
    command goes on from the checkpoint. Once with runs at once, once one after another."""
    results, reports = tmp_path / "results", tmp_path / "reports"
    argv = ["run", "--profile", "smoke", "--experiments", "degradation", "--device", "cpu",
            "--data", str(tiny_cifar), "--results", str(results),
            "--reports", str(reports)]  # fmt: skip
    assert main([*argv, "--time-limit", "0", "--jobs", "2"]) == 0
    assert "stopped at the time limit with 4 task(s) left" in capsys.readouterr().err
    [stopped] = [d for d in (results / schemas.RUNS_DIR).iterdir()]
    assert (stopped / "checkpoint.pt").exists() and not (stopped / "summary.json").exists()
    assert not (results / schemas.RUNS_FILE).exists() and not reports.exists()
    assert main([*argv, "--time-limit", "0s"]) == 0  # resumes that run, starts no other
    err = capsys.readouterr().err
    assert "plain20 seed 0 (smoke): stopped at a checkpoint (time limit)" in err
    assert "plain56 seed 0 (smoke): not started (time limit)" in err
    assert main(argv) == 0
    runs = read_table(results / schemas.RUNS_FILE, schemas.RUNS)
    assert sorted(runs["variant"]) == ["plain20", "plain56", "resnet20", "resnet56"]
    starts = pd.read_json(stopped / "env.json")["from_iteration"].tolist()
    assert starts == [0, 4, 8] and (reports / "README.md").exists()


def test_a_time_limit_in_another_form_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--time-limit", "soon", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert "expected a duration such as 90s, 45m, 1.5h or a number of minutes" in err
    assert main(["run", "--executor", "local", "--time-limit", "1h", "--experiments",
                 "degradation", "--profile", "smoke", "--results", str(tmp_path)]) == 2  # fmt: skip
    assert "--slurm-time" in capsys.readouterr().err
