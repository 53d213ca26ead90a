"""Experiments: the built-in ones name registered nets, and a user's own experiment, added with
`register_experiment`, flows through plan, run and the report without edits inside the package."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from readme_snippets import snippet_and_command

from ablations import (
    Experiment,
    Lower,
    Nets,
    derive,
    register_experiment,
    register_variant,
    unregister_experiment,
)  # fmt: skip
from ablations.experiments import EXPERIMENTS, KINDS
from ablations.pipeline import execute
from ablations.profiles import PROFILES
from ablations.registry import (
    REGISTRY,
    AblationsError,
    UnknownVariantError,
    get_variant,
    list_variants,
)
from ablations.report.training import training_section
from ablations.tasks import Context, plan

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_names_registered_nets_under_every_profile(name):
    experiment = EXPERIMENTS[name]
    assert experiment.kind in KINDS
    for profile in PROFILES:
        for variant in experiment.variants_for(profile):
            get_variant(variant)


@pytest.fixture
def wide_net():
    """A derived net under a name no other test owns, removed afterwards."""
    variant = register_variant(derive("resnet20", name="resnet20-exp-wide", width=24))
    yield variant.name
    REGISTRY.unregister(variant.name)


def _experiment(net: str) -> Experiment:
    return Experiment(
        name="wider-trains-better", kind="train", title="Width",
        description="ResNet-20 at 16 and 24 channels",
        variants={"*": ("resnet20", net)},
        claims=(Lower("the wider net trains better", lower=Nets(where={"width": 24}),
                      higher=Nets(where={"width": 16})),),
    )  # fmt: skip


def test_a_registered_experiment_is_planned_then_removed(wide_net):
    register_experiment(_experiment(wide_net))
    try:
        tasks = plan(["wider-trains-better"], profile="smoke", seeds=2, device=CPU)
        assert sorted((t.config.variant, t.config.seed) for t in tasks) == [
            ("resnet20", 0), ("resnet20", 1), (wide_net, 0), (wide_net, 1)]  # fmt: skip
        with pytest.raises(AblationsError, match="already registered; choose another name"):
            register_experiment(_experiment(wide_net))
    finally:
        unregister_experiment("wider-trains-better")
    assert "wider-trains-better" not in EXPERIMENTS


def test_an_experiment_of_unknown_nets_or_kind_is_refused_where_it_is_written():
    with pytest.raises(UnknownVariantError, match="closest: resnet20"):
        register_experiment(Experiment(name="typo", kind="train", description="",
                                       variants={"*": ("resnet20x",)}))  # fmt: skip
    with pytest.raises(AblationsError, match="unknown experiment kind 'training'"):
        register_experiment(Experiment(name="typo", kind="training", description=""))
    assert "typo" not in EXPERIMENTS


@pytest.mark.slow
def test_a_users_experiment_runs_and_gets_its_report_section(tmp_path, tiny_cifar, wide_net):
    register_experiment(_experiment(wide_net))
    try:
        tasks = plan(["wider-trains-better"], profile="smoke", seeds=3, device=CPU)
        ctx = Context(results=tmp_path, data=tiny_cifar, device=CPU)
        assert execute(tasks, ctx, log=lambda line: None)["ran"] == 6
        text = training_section(tmp_path).markdown
    finally:
        unregister_experiment("wider-trains-better")
    section = text[text.index("### Width") :]
    assert "ResNet-20 at 16 and 24 channels" in section
    # The verdict line: an outcome of the rule, the claim, then its evidence from 3 seeds a side.
    [line] = [s for s in section.splitlines() if "the wider net trains better" in s]
    assert line.split(":")[0] in ("- holds", "- fails", "- not resolved at this budget")
    assert "(3 seeds)" in line
    assert "| width |" in section  # the axis that differs between the nets is a column


def test_the_readme_ablation_file_plans_its_experiment(tmp_path):
    snippet, command = snippet_and_command("### Adding a block and an experiment")
    words = shlex.split(command)
    [file] = [w for w in words if w.endswith(".py")]
    (tmp_path / file).write_text(snippet)
    # The README runs it; planning shows the same tasks without training them here.
    words[words.index("run")] = "plan"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ABLATE_PLUGINS", None)
    done = subprocess.run([sys.executable, "-m", "ablations", *words[1:]], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    [block] = re.findall(r'register_block\("([^"]+)"', snippet)
    [listed] = re.findall(r'variants=\{"\*": \(([^)]*)\)', snippet)
    nets = [n for n in re.findall(r'"([^"]+)"', listed) if n not in list_variants()]
    assert len(nets) == 2, listed
    for net in nets:
        assert all(f"{net} seed {seed} (smoke)" in done.stdout for seed in range(3)), done.stdout
    others = [p for p in (ROOT / "tests").rglob("*.py") if p.resolve() != Path(__file__).resolve()]
    owners = [p.name for p in others if any(f'"{n}"' in p.read_text() for n in (block, *nets))]
    assert not owners, f"a user who pastes the file would clash with {owners}"
