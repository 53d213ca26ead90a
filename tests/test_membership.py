"""Each run records the experiments it was planned for; the report selects by that record."""

from __future__ import annotations

import torch
from test_report import render_readme, run_rows, section

from ablations import pipeline, store
from ablations.config import resolve_config
from ablations.runners.train import train

CPU = torch.device("cpu")


def test_a_dispatched_run_becomes_a_member_when_a_plan_needs_it(tmp_path, tiny_cifar):
    config = resolve_config("resnet20", profile="smoke", device=CPU)
    runs_dir = tmp_path / store.RUNS_DIR
    train(config, out=runs_dir, data=tiny_cifar, device=CPU, show_progress=False)  # `ablate train`
    ctx = pipeline.Context(results=tmp_path, data=tiny_cifar, device=CPU)
    assert pipeline.record_unrecorded(ctx) == 1
    assert list(store.load(tmp_path)[0]["experiments"]) == [""]  # planned for nothing yet
    tasks = [t for t in pipeline.plan(["degradation", "shortcuts"], profile="smoke", device=CPU)
             if t.config is not None and t.config.run_id == config.run_id]  # fmt: skip
    assert pipeline.execute(tasks, ctx, log=lambda line: None)["ran"] == 0
    assert store.experiments_of(runs_dir / config.run_id) == ("degradation",)
    assert list(store.load(tmp_path)[0]["experiments"]) == ["degradation"]
    # A second experiment adds to the record; collect rebuilds the column from the directory.
    assert store.mark_experiments(runs_dir / config.run_id, ["stems"])
    assert not store.mark_experiments(runs_dir / config.run_id, ["stems"])
    assert list(store.collect(tmp_path)["experiments"]) == ["degradation,stems"]


def test_stems_section_never_shows_the_fine_tuning_demos_checkpoint(tmp_path):
    # The demo's resnet18 (planned for the recipes experiment) is no run of the k7-vs-k3
    # comparison, though it is a resnet18 of the same profile.
    runs = run_rows({"resnet18": [0.4]}, profile="cpu", experiments="recipes")
    _, readme = render_readme(tmp_path, runs, responses=False)
    stems = section(readme, "### Stems")
    assert "Not run under this profile" in stems and "| resnet18 |" not in stems
    member = run_rows({"resnet18": [0.4]}, profile="cpu", experiments="recipes,stems")
    _, readme = render_readme(tmp_path / "member", member, responses=False)
    assert "| resnet18 | k7 |" in section(readme, "### Stems")
