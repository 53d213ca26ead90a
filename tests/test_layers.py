"""The one-way flow, registry -> config -> run -> tables -> report: a stage imports nothing of
the stages after it, and the report reads tables without the training stack (no torch). The
optional capabilities (clusters, GPU-only machinery, streamed data) load only when used."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

TRAINING = ("torch", "torchvision", "ablations.data", "ablations.imagenet", "ablations.train",
            "ablations.measure", "ablations.gpu", "ablations.weights",
            "ablations.cluster")  # fmt: skip
OPTIONAL = ("submitit", "ablations.cluster.submit", "ablations.gpu")
LAYERS = {
    "ablations": TRAINING,  # the registry and the public API
    "ablations.config": TRAINING[2:],
    "ablations.results.schemas": TRAINING,
    "ablations.report.render": TRAINING,
    "ablations.report.readme_blocks": TRAINING,
    # Training in this process needs none of the optional capabilities.
    "ablations.train.trainer": OPTIONAL,
    "ablations.cli": (*OPTIONAL, "ablations.imagenet"),
}


def loaded(module: str) -> list[str]:
    probe = f"import sys, {module}; print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.parametrize(("module", "later"), LAYERS.items())
def test_a_stage_imports_nothing_of_the_stages_after_it(module, later):
    imported = [m for m in loaded(module) if any(m == p or m.startswith(f"{p}.") for p in later)]
    assert imported == [], imported[:10]


def test_no_test_module_imports_another():
    """Shared helpers live in conftest.py or a fixtures module, never in a test module."""
    tests = Path(__file__).parent
    imports = re.compile(r"^\s*(?:from|import) (test_\w+)", re.M)
    found = {p.name: imports.findall(p.read_text()) for p in tests.rglob("test_*.py")}
    assert {name: mods for name, mods in found.items() if mods} == {}
