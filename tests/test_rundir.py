"""Each run records the experiments it was planned for; the report selects by that record."""

from __future__ import annotations

import pandas as pd
import torch
from report_rows import render_readme, run_rows, section

from ablations import pipeline, rundir
from ablations.config import resolve_config
from ablations.results import collect, schemas
from ablations.tasks import Context, plan
from ablations.train.run import train

CPU = torch.device("cpu")


def test_a_dispatched_run_becomes_a_member_when_a_plan_needs_it(tmp_path, tiny_cifar):
    config = resolve_config("resnet20", profile="smoke", device=CPU)
    runs_dir = tmp_path / schemas.RUNS_DIR
    train(config, out=runs_dir, data=tiny_cifar, device=CPU, show_progress=False)  # `ablate train`
    ctx = Context(results=tmp_path, data=tiny_cifar, device=CPU)
    assert pipeline.record_unrecorded(ctx) == 1
    assert list(schemas.load(tmp_path)[0]["experiments"]) == [""]  # planned for nothing yet
    tasks = [t for t in plan(["degradation", "shortcuts"], profile="smoke", device=CPU)
             if t.config is not None and t.config.run_id == config.run_id]  # fmt: skip
    assert pipeline.execute(tasks, ctx, log=lambda line: None)["ran"] == 0
    assert rundir.experiments(runs_dir / config.run_id) == ("degradation",)
    assert list(schemas.load(tmp_path)[0]["experiments"]) == ["degradation"]
    # A second experiment adds to the record; collect rebuilds the column from the directory.
    assert rundir.add_experiments(runs_dir / config.run_id, ["stems"])
    assert not rundir.add_experiments(runs_dir / config.run_id, ["stems"])
    assert list(collect.collect(tmp_path)["experiments"]) == ["degradation,stems"]


def test_stems_section_never_shows_the_fine_tuning_demos_checkpoint(tmp_path):
    # The demo's resnet18 (planned for the recipes experiment) is no run of the k7-vs-k3
    # comparison, though it is a resnet18 of the same profile.
    other = run_rows({"resnet20": [0.4]}, profile="cpu")  # so that the profile has a block
    demo = run_rows({"resnet18": [0.4]}, profile="cpu", experiments="recipes")
    _, readme = render_readme(tmp_path, pd.concat([other, demo]), responses=False)
    assert "### Stems" not in readme  # no run of the experiment: no section
    member = run_rows({"resnet18": [0.4]}, profile="cpu", experiments="recipes,stems")
    _, readme = render_readme(tmp_path / "member", member, responses=False)
    assert "| ResNet-18 |" in section(readme, "### Stems")


def test_the_fine_tuning_demos_checkpoint_is_counted_with_the_recipes(tmp_path):
    # Its source net is an ordinary cpu-profile resnet18 run planned for the recipes alone: the
    # profile's counts and cost table leave it out, the overview counts it among the recipes'.

    runs = pd.concat([
        run_rows({"resnet20": [0.4, 0.41], "resnet56": [0.3, 0.31]}, profile="cpu"),
        run_rows({"resnet18": [0.4]}, profile="cpu", experiments="recipes"),
    ])  # fmt: skip
    _, readme = render_readme(tmp_path, runs, responses=False)
    assert "4 runs (4 complete, 0 diverged) of 2 variants" in section(readme, "### What was run")
    assert "| resnet18 |" not in section(readme, "### Cost and accuracy")
    assert "And 1 runs of the tutorial recipes" in readme
    also_stems = run_rows({"resnet18": [0.4]}, profile="cpu", experiments="recipes,stems")
    _, readme = render_readme(tmp_path / "stems", pd.concat([runs[:4], also_stems]),
                              responses=False)  # fmt: skip
    assert "5 runs (5 complete, 0 diverged) of 3 variants" in section(readme, "### What was run")
