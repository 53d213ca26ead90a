"""Claims declared as data (ablations.claims): the selectors, and every claim an experiment
declares, checked against the registry and the runs table's columns."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ablations import get_variant
from ablations.claims import RESPONSE_STD, VAL_TOP1, GapGrows, Lower, Nets
from ablations.experiments import EXPERIMENTS
from ablations.registry import AblationsError
from ablations.results import schemas

DECLARED = [(e, claim) for e in EXPERIMENTS.values() for claim in e.claims]
NUMERIC = {c for c, kind in schemas.RUNS.columns.items() if kind in ("int", "float")}


def test_a_selection_narrows_to_a_depth_and_names_itself():
    plain = Nets({"residual": False, "stem": "k3"})
    assert plain.at("max") == Nets({"residual": False, "stem": "k3"}, depth="max")
    assert plain.name == "residual False, stem k3"
    assert Nets({"residual": False}, label="plain").at("min").name == "plain"
    assert Nets().name == "all"
    with pytest.raises(AblationsError, match="'min', 'max' or None; got 'deepest'"):
        Nets(depth="deepest")  # type: ignore[arg-type]


def test_the_degradation_experiment_declares_the_papers_four_claims():
    declared = EXPERIMENTS["degradation"].claims
    assert [type(c) for c in declared] == [Lower, Lower, GapGrows, Lower]
    assert [c.statement for c in declared] == [
        "plain nets degrade with depth",
        "deeper residual nets train better",
        "the shortcut's benefit grows with depth",
        "residual responses are smaller than plain ones",
    ]
    assert [c.metric for c in declared] == ["train_error"] * 3 + [RESPONSE_STD]


@pytest.mark.parametrize(("experiment", "claim"), DECLARED,
                         ids=[f"{e.name}: {c.statement}" for e, c in DECLARED])  # fmt: skip
def test_a_declared_claim_names_a_metric_and_selects_the_experiments_nets(experiment, claim):
    assert experiment.kind == "train"
    assert claim.metric in (RESPONSE_STD, VAL_TOP1) or claim.metric in NUMERIC
    variants = {v for names in experiment.variants.values() for v in names}
    for side in (claim.lower, claim.higher):
        assert set(side.where) <= set(schemas.RUNS.columns), side
        chosen = [v for v in variants
                  if all({**get_variant(v).axes(), "variant": v}[k] == value
                         for k, value in side.where.items())]  # fmt: skip
        assert chosen, f"{side.name} selects none of {experiment.name}'s nets"
    assert claim.lower != claim.higher


def test_declaring_claims_loads_neither_pandas_nor_torch():
    probe = "import sys, ablations.experiments; print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = done.stdout.split()
    assert "ablations.claims" in loaded
    assert not {"pandas", "torch"} & set(loaded)
