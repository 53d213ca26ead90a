"""The training report's sections (ablations.report.training): one per training experiment a
profile ran, generated from the experiment's declaration alone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from report_rows import PROJECTIONS, VERDICT_CASES, run_rows, section, write_results

from ablations.experiments import EXPERIMENTS, Experiment
from ablations.report import claims, training
from ablations.report.tables import Section

CLEAR = {"plain20": [0.30, 0.31, 0.29], "plain56": [0.60, 0.62, 0.61],
         "resnet20": [0.25, 0.26, 0.24], "resnet56": [0.15, 0.16, 0.14]}  # fmt: skip


def _report(tmp_path: Path, *runs: pd.DataFrame) -> Section:
    write_results(tmp_path / "results", pd.concat(runs))
    return training.training_section(tmp_path / "results")


@pytest.fixture
def projections(monkeypatch: pytest.MonkeyPatch) -> Experiment:
    monkeypatch.setitem(EXPERIMENTS, PROJECTIONS.name, PROJECTIONS)
    return PROJECTIONS


@pytest.mark.parametrize(("a", "c", "outcome"), VERDICT_CASES)
def test_a_declared_experiment_gets_a_section(tmp_path, projections, a, c, outcome):
    errors = {"resnet56": a, "resnet56-c": c}
    report = _report(tmp_path, run_rows(errors, profile="cpu", experiments="projections"))
    mine = section(report.markdown, "### Projections")
    assert "Options A and C.\n\nNets: ResNet-56, ResNet-56-c." in mine
    assert "Not run yet: resnet20, resnet20-c." in mine
    assert f"Rule: {claims.RULE}." in mine
    verdict = next(line for line in mine.splitlines() if line.startswith("- "))
    assert verdict.startswith(f"- {outcome}: option C trains better than option A: "
                              "final training error ResNet-56 ")  # fmt: skip
    assert "| net | shortcut | params | MACs | final training error | validation error | " in mine
    assert "![Training and held-out error against iterations](projections_cpu.png)" in mine
    figure = report.figures["projections_cpu"]
    assert [ax.get_title() for ax in figure.axes] == ["residual nets"]
    assert "### Degradation" not in report.markdown and "depth_cpu" not in report.figures


def test_a_claim_whose_nets_are_missing_is_not_checked(tmp_path, projections):
    runs = run_rows({"resnet56": [0.5, 0.4, 0.6]}, profile="cpu", experiments="projections")
    mine = section(_report(tmp_path, runs).markdown, "### Projections")
    assert ("- not checked: option C trains better than option A (needs complete runs of option "
            "A and shortcut c nets of one depth)") in mine  # fmt: skip
    assert "| ResNet-56 | 560,000 | 112.0 M | 50.0 ± 10.0% |" in mine


def test_an_experiment_a_profile_did_not_run_has_no_section(tmp_path, projections):
    report = _report(
        tmp_path,
        run_rows(CLEAR, profile="cpu"),
        run_rows({"resnet56": [0.3], "resnet56-c": [0.2]}, profile="smoke",
                 experiments="projections"),
    )  # fmt: skip
    cpu = section(report.markdown, "## Training: profile `cpu`")
    smoke = section(report.markdown, "## Training: profile `smoke`")
    assert "### Degradation (Fig. 6, Table 6)" in cpu and "### Projections" not in cpu
    assert "### Projections" in smoke and "### Degradation" not in smoke
    for block in (cpu, smoke):
        assert "### Shortcut options" not in block and "### Stems" not in block
        assert "Not run under this profile" not in block
    assert set(report.figures) >= {"degradation_cpu", "depth_cpu", "projections_smoke"}
    assert "degradation_smoke" not in report.figures and "depth_smoke" not in report.figures


def test_shortcuts_and_stems_are_sections_like_any_other(tmp_path):
    report = _report(
        tmp_path,
        run_rows({"resnet56": [0.3], "resnet56-b": [0.28], "resnet56-c": [0.27]},
                 profile="cpu", experiments="degradation,shortcuts"),
        run_rows({"resnet18": [0.4]}, profile="cpu", experiments="stems"),
    )  # fmt: skip
    shortcuts = section(report.markdown, "### Shortcut options")
    assert shortcuts.index("### Shortcut options") < report.markdown.index("### Stems")
    assert "| net | shortcut | params | MACs |" in shortcuts
    assert "| ResNet-56-b | b | 560,000 | 112.0 M | 28.0% | 29.0% | 30.0% |  | 1 |" in shortcuts
    assert "Rule:" not in shortcuts  # it declares no claims
    assert "![Training and held-out error against iterations](shortcuts_cpu.png)" in shortcuts
    stems = section(report.markdown, "### Stems")
    assert "Nets: ResNet-18. Not run yet: resnet18-k3." in stems
    assert {"shortcuts_cpu", "stems_cpu"} <= set(report.figures)
    # The degradation experiment's add-on stays in its own section.
    degradation = section(report.markdown, "### Degradation (Fig. 6, Table 6)")
    assert "![Final errors against depth](depth_cpu.png)" in degradation
    assert "not checked: plain nets degrade with depth" in degradation
    assert "depth_cpu" not in shortcuts + stems
