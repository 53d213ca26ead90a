"""The nets of a runs table as the report summarises them (ablations.report.tables)."""

from __future__ import annotations

import pytest
from report_rows import run_rows

from ablations.registry import axis_names
from ablations.report.tables import axis_columns, members, paper_name, summarise_runs

ERRORS = {"resnet56": [0.30, 0.32], "resnet56-b": [0.28], "plain56": [0.5]}


def test_a_summary_keeps_every_axis_the_runs_record():
    runs = run_rows(ERRORS, profile="cpu")
    nets = summarise_runs(runs)
    recorded = [a for a in axis_names() if a != "name" and a in runs.columns]
    assert axis_columns(runs) == recorded and {"block", "stride_at", "width"} <= set(recorded)
    assert list(nets["variant"]) == list(ERRORS)  # run order
    assert set(recorded) <= set(nets.columns)
    row = nets.set_index("variant").loc["resnet56"]
    assert (row["seeds"], row["shortcut"], row["train_error_mean"]) == (2, "a", pytest.approx(0.31))


def test_a_summary_of_a_table_without_an_axis_or_with_an_unknown_one():
    runs = run_rows(ERRORS, profile="cpu").drop(columns=["block"]).assign(preact=True)
    nets = summarise_runs(runs)
    assert "block" not in nets.columns and "preact" not in nets.columns
    assert list(nets["seeds"]) == [2, 1, 1]


def test_members_are_the_runs_that_recorded_the_experiment():
    runs = run_rows({"resnet56": [0.3]}, profile="cpu", experiments="degradation,shortcuts")
    assert len(members(runs, "shortcuts")) == len(members(runs, "degradation")) == 1
    assert members(runs, "stems").empty and members(runs, "short").empty


def test_paper_name():
    assert paper_name("plain56") == "plain-56"
    assert paper_name("resnet110") == "ResNet-110"
    assert paper_name("resnet56-b") == "ResNet-56-b"
    assert paper_name("preresnet1001") == "PreResNet-1001"
    assert paper_name("custom") == "custom"
