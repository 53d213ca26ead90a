"""Declared claims judged on runs tables (ablations.report.claims): the paper's four on
constructed runs and on the committed ones, a user's own claims, their replicates, and
ImageNet's val top-1 metric read from the best crop protocol recorded."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from report_rows import MACHINE, PROJECTIONS, VERDICT_CASES, response_rows, run_rows
from scipy.stats import ttest_ind

from ablations import stats
from ablations.claims import VAL_TOP1, GapGrows, Lower, Nets
from ablations.experiments import EXPERIMENTS
from ablations.report import claims
from ablations.report.profile_results import load_profiles, of_runs

DEGRADATION = EXPERIMENTS["degradation"]
PLAIN_DEGRADES, RESIDUAL_GAINS, BENEFIT_GROWS, RESPONSES_SMALLER = DEGRADATION.claims

CLEAR = {  # the paper's shape, seeds tight: every claim holds
    "plain20": [0.30, 0.31, 0.29], "plain56": [0.60, 0.62, 0.61],
    "resnet20": [0.25, 0.26, 0.24], "resnet56": [0.15, 0.16, 0.14],
}  # fmt: skip
OPPOSITE = {  # every claim fails, seeds tight
    "plain20": [0.60, 0.61, 0.62], "plain56": [0.30, 0.31, 0.29],
    "resnet20": [0.15, 0.16, 0.14], "resnet56": [0.45, 0.46, 0.44],
}  # fmt: skip
WITHIN = {  # the means say "degrades", the seeds overlap: not resolved
    "plain20": [0.40, 0.60, 0.50], "plain56": [0.45, 0.65, 0.52],
    "resnet20": [0.30, 0.50, 0.40], "resnet56": [0.35, 0.55, 0.42],
}  # fmt: skip


def _lines(experiment, runs, responses=None):
    return [claim.text for claim in claims.claims(experiment, runs, responses)]


def _outcomes(errors, *, responses=None):
    runs = run_rows(errors, profile="cpu")
    return [c.outcome for c in claims.claims(DEGRADATION, runs, responses)], runs


# --- the paper's four claims ------------------------------------------------------------------


def test_claims_hold_when_the_difference_is_clear():
    outcomes, runs = _outcomes(CLEAR)
    assert outcomes[:3] == [stats.HOLDS] * 3
    [plain, *_] = _lines(DEGRADATION, runs)
    assert plain.startswith("holds: plain nets degrade with depth: final training error "
                            "plain-56 61.0 ± 1.0% (3 seeds) vs plain-20 30.0 ± 1.0% (3 seeds); "
                            "difference +31.0 points, 95% CI [")  # fmt: skip
    assert plain.endswith("all 3 seeds agree")


def test_claims_fail_when_the_opposite_is_clear():
    outcomes, runs = _outcomes(OPPOSITE)
    assert outcomes[:3] == [stats.FAILS] * 3
    # The side claimed higher first: the shallower net, which trains better here.
    assert _lines(DEGRADATION, runs)[1].startswith(
        "fails: deeper residual nets train better: final training error ResNet-20 15.0 ± 1.0% "
        "(3 seeds) vs ResNet-56 45.0 ± 1.0% (3 seeds); difference -30.0 points"
    )


def test_a_difference_within_the_seed_spread_is_not_resolved():
    outcomes, runs = _outcomes(WITHIN)
    assert outcomes[:3] == [stats.NOT_RESOLVED] * 3
    line = _lines(DEGRADATION, runs)[0]
    assert line.startswith("not resolved at this budget: plain nets degrade with depth:")
    assert "the difference lies within the seed spread" in line


def test_a_single_seed_is_never_a_verdict():
    # One seed per net can say "holds" for a claim that another CPU overturns: never a verdict.
    one = {"plain20": [0.555], "plain56": [0.885], "resnet20": [0.440], "resnet56": [0.649]}
    outcomes, runs = _outcomes(one)
    assert outcomes[:3] == [stats.NOT_RESOLVED] * 3
    assert all("fewer than 3 seeds per net" in line
               for line in _lines(DEGRADATION, runs)[:3])  # fmt: skip
    two = {name: [0.1 * i, 0.1 * i + 0.001] for i, name in enumerate(CLEAR, start=1)}
    assert _outcomes(two)[0][:3] == [stats.NOT_RESOLVED] * 3


def test_missing_runs_are_not_checked():
    outcomes, runs = _outcomes({"plain20": [0.3, 0.31, 0.29], "resnet20": [0.2, 0.21, 0.19]})
    assert outcomes == [stats.NOT_CHECKED] * 4
    assert _lines(DEGRADATION, runs) == [
        "not checked: plain nets degrade with depth (needs complete runs of plain nets of two "
        "depths)",
        "not checked: deeper residual nets train better (needs complete runs of residual nets "
        "of two depths)",
        "not checked: the shortcut's benefit grows with depth (needs complete runs of plain and "
        "residual nets at two common depths)",
        "not checked: residual responses are smaller than plain ones (needs complete runs of "
        "plain and residual nets of one depth with layer responses)",
    ]
    diverged = run_rows(CLEAR, profile="cpu")
    diverged.loc[diverged["variant"] == "plain56", "status"] = "diverged"
    assert claims.judge(PLAIN_DEGRADES, diverged).outcome == stats.NOT_CHECKED


def test_the_benefit_claim_is_a_difference_of_differences():
    # Both gaps are large (plain worse everywhere) but equal: the benefit does not grow.
    equal = {"plain20": [0.50, 0.52, 0.48], "plain56": [0.70, 0.72, 0.68],
             "resnet20": [0.30, 0.32, 0.28], "resnet56": [0.50, 0.52, 0.48]}  # fmt: skip
    claim = claims.judge(BENEFIT_GROWS, run_rows(equal, profile="cpu"))
    assert claim.outcome == stats.NOT_RESOLVED
    assert claim.verdict.estimate == pytest.approx(0.0, abs=1e-9)
    assert "20.0 points at depth 56" in claim.text and "vs 20.0 at depth 20" in claim.text


def test_other_shortcuts_and_stems_never_stand_in():
    runs = run_rows({**OPPOSITE, "resnet56-b": [0.01, 0.01, 0.01], "resnet18": [0.01] * 3},
                    profile="cpu")  # fmt: skip
    assert claims.judge(RESIDUAL_GAINS, runs).outcome == stats.FAILS


def test_runs_of_other_experiments_are_not_judged():
    runs = run_rows(CLEAR, profile="cpu", experiments="shortcuts")
    assert {c.outcome for c in claims.claims(DEGRADATION, runs)} == {stats.NOT_CHECKED}


def test_residual_responses_claim_from_responses():
    runs = run_rows(CLEAR, profile="cpu")
    responses = response_rows(runs)  # residual responses are half the plain ones, every seed
    claim = claims.judge(RESPONSES_SMALLER, runs, responses)
    assert claim.outcome == stats.HOLDS and claim.verdict.all_agree
    assert "(3 seeds)" in claim.text
    assert claim.text.endswith("(plain minus residual, averaged over depths)")
    assert claims.judge(RESPONSES_SMALLER, runs, None).outcome == stats.NOT_CHECKED
    swapped = responses.assign(residual=~responses["residual"])
    flipped = runs.assign(residual=~runs["residual"],
                          shortcut=runs["residual"].map({True: "none", False: "a"}))  # fmt: skip
    assert claims.judge(RESPONSES_SMALLER, flipped, swapped).outcome == stats.FAILS


# --- the committed runs -----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
# The cpu profile's verdicts and p-values in the committed reports/README.md.
COMMITTED = {
    "plain nets degrade with depth": "holds (p = 2.9e-05)",
    "deeper residual nets train better": "fails (p = 4.8e-07)",
    "the shortcut's benefit grows with depth": "holds (p = 0.014)",
    "residual responses are smaller than plain ones": "holds (p = 0.037)",
}


@pytest.fixture(scope="module")
def committed_cpu():
    [cpu] = [p for p in load_profiles(ROOT / "results") if p.profile == "cpu"]
    runs, _ = cpu.experiment("degradation")
    return runs, of_runs(cpu.responses, runs)


def test_the_declared_claims_give_the_committed_verdicts(committed_cpu):
    runs, responses = committed_cpu
    judged = claims.claims(DEGRADATION, runs, responses)
    got = {c.statement: f"{c.outcome} (p = {c.verdict.p:.2g})" for c in judged}
    assert got == COMMITTED
    report = (ROOT / "reports" / "README.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| the committed runs |"))
    assert row.endswith(" | ".join(COMMITTED.values()) + " |")


@pytest.mark.parametrize(
    ("claim", "higher", "lower"),
    [(PLAIN_DEGRADES, "plain56", "plain20"), (RESIDUAL_GAINS, "resnet20", "resnet56")],
)
def test_a_claim_on_two_nets_is_scipys_welch_test(committed_cpu, claim, higher, lower):
    runs, _ = committed_cpu
    errors = [runs.loc[runs["variant"] == v, "train_error"] * 100 for v in (higher, lower)]
    verdict = claims.judge(claim, runs).verdict
    assert verdict.p == pytest.approx(ttest_ind(*errors, equal_var=False).pvalue, rel=1e-9)
    assert verdict.estimate == pytest.approx(errors[0].mean() - errors[1].mean())


# --- a claim of one's own ---------------------------------------------------------------------


def _projections(a: list[float], c: list[float], *, depths=(56,)) -> list[claims.Claim]:
    errors = {}
    for depth in depths:
        errors |= {f"resnet{depth}": a, f"resnet{depth}-c": c}
    return claims.claims(PROJECTIONS, run_rows(errors, profile="cpu", experiments="projections"))


@pytest.mark.parametrize(("a", "c", "outcome"), VERDICT_CASES)
def test_a_declared_claim_reaches_every_verdict(a, c, outcome):
    [claim] = _projections(a, c)
    assert claim.outcome == outcome
    assert claim.text.startswith(f"{outcome}: option C trains better than option A: "
                                 "final training error ResNet-56 ")  # fmt: skip
    assert " vs ResNet-56-c " in claim.text


def test_nets_on_both_sides_are_paired_by_depth():
    [claim] = _projections([0.50, 0.51, 0.49], [0.30, 0.31, 0.29], depths=(20, 56))
    assert claim.outcome == stats.HOLDS
    assert claim.verdict.estimate == pytest.approx(20.0)  # the mean of the paired differences
    assert "ResNet-20 50.0 ± 1.0% (3 seeds) vs ResNet-20-c 30.0 ± 1.0% (3 seeds); " in claim.text
    assert claim.text.endswith("(option A minus shortcut c, averaged over depths)")


def test_a_side_with_two_nets_of_one_depth_is_not_paired():
    claim = Lower("projections help", lower=Nets({"residual": True}),
                  higher=Nets({"residual": False}))  # fmt: skip
    runs = run_rows({"plain56": [0.5] * 3, "resnet56": [0.3] * 3, "resnet56-b": [0.3] * 3,
                     "plain20": [0.4] * 3, "resnet20": [0.2] * 3}, profile="cpu")  # fmt: skip
    assert claims.judge(claim, runs).text == (
        "not checked: projections help (residual True selects two nets of depth 56: ResNet-56 "
        "and ResNet-56-b)"
    )


@pytest.mark.parametrize(
    ("claim", "why"),
    [(Lower("x", lower=Nets({"shortcut": "c"}), higher=Nets({"shortcut": "a"}), metric="acc"),
      "no metric 'acc': response_std or a numeric column of runs.csv"),
     (Lower("x", lower=Nets({"shortcut": "c"}), higher=Nets({"shortcut": "a"}), metric="stem"),
      "no metric 'stem': response_std or a numeric column of runs.csv"),
     (Lower("x", lower=Nets({"preact": True}), higher=Nets({"shortcut": "a"})),
      "runs.csv has no column 'preact'"),
     (Lower("x", lower=Nets({"shortcut": "z"}), higher=Nets({"shortcut": "a"})),
      "needs complete runs of shortcut a and shortcut z nets of one depth"),
     (GapGrows("x", lower=Nets({"shortcut": "c"}), higher=Nets({"shortcut": "a"})),
      "needs complete runs of shortcut a and shortcut c nets at two common depths")],
)  # fmt: skip
def test_a_claim_its_runs_cannot_judge_says_why(claim, why):
    runs = run_rows({"resnet56": [0.5] * 3, "resnet56-c": [0.3] * 3}, profile="cpu")
    judged = claims.judge(claim, runs)
    assert judged.outcome == stats.NOT_CHECKED and judged.text == f"not checked: x ({why})"


def test_any_numeric_column_is_a_metric():
    runs = run_rows({"resnet56": [0.5] * 3, "resnet56-c": [0.3] * 3}, profile="cpu")
    test = Lower("x", lower=Nets({"shortcut": "c"}), higher=Nets({"shortcut": "a"}),
                 metric="test_error")  # fmt: skip
    assert "test error ResNet-56 52.0% " in claims.judge(test, runs).text.replace(" ± 0.0", "")
    loss = Lower("x", lower=Nets({"shortcut": "c"}), higher=Nets({"shortcut": "a"}),
                 metric="train_loss")  # fmt: skip
    assert claims.judge(loss, runs).text.startswith("not resolved at this budget: x: train loss ")


# --- replication: the same claims from replicates of the runs ---------------------------------


def _replicated(experiment, sets):
    return [claim.text for claim in claims.replicated(experiment, sets)]


def _set(name, errors, **columns):
    runs = run_rows(errors, profile="cpu").assign(**columns)
    return claims.Replicate(name, runs, response_rows(runs))


def test_a_verdict_every_replicate_reaches_stands():
    sets = [_set("the committed runs", CLEAR), _set("replicate avx2", CLEAR)]
    lines = _replicated(DEGRADATION, sets)
    plain = _lines(DEGRADATION, sets[0].runs, sets[0].responses)
    assert lines[:3] == [f"{line}; the same in replicate avx2" for line in plain[:3]]
    assert _replicated(DEGRADATION, sets[:1]) == plain  # no replicate: plain


def test_replicates_that_disagree_leave_the_claim_not_resolved():
    sets = [_set("the committed runs", CLEAR), _set("replicate avx2", WITHIN)]
    line = _replicated(DEGRADATION, sets)[0]
    assert line.startswith(
        "not resolved at this budget: plain nets degrade with depth: the replicates disagree "
        "(holds in the committed runs (p = "
    )
    assert "; not resolved at this budget in replicate avx2 (p = " in line
    assert "In the committed runs: final training error plain-56 61.0 ± 1.0%" in line
    table = claims.replication_table(DEGRADATION, sets)
    assert list(table["runs"]) == ["the committed runs", "replicate avx2"]
    assert table.iloc[0]["plain nets degrade with depth"].startswith("holds (p = ")
    assert table.iloc[1]["plain nets degrade with depth"].startswith("not resolved")
    assert list(table["seeds"]) == ["3 per net", "3 per net"]


def test_a_replicate_that_cannot_judge_a_claim_does_not_overturn_it():
    partial = {k: v for k, v in WITHIN.items() if k.endswith("20")}  # no depth-56 nets
    sets = [_set("the committed runs", CLEAR), _set("replicate small", partial)]
    lines = _replicated(DEGRADATION, sets)
    plain = _lines(DEGRADATION, sets[0].runs, sets[0].responses)
    assert lines[:3] == plain[:3]


def test_replicates_are_judged_per_experiment():
    sets = [_set("the committed runs", CLEAR), _set("replicate avx2", OPPOSITE)]
    assert _replicated(PROJECTIONS, sets) == [
        "not checked: option C trains better than option A (needs complete runs of option A and "
        "shortcut c nets of one depth)"
    ]
    assert list(claims.replication_table(PROJECTIONS, sets)["seeds"]) == ["none", "none"]


def test_a_replicate_names_where_it_ran():
    s = _set("replicate avx2", CLEAR, cpu_kernels="aten AVX2, onednn AVX2", torch_threads=2)
    assert s.setting == f"{MACHINE}; aten AVX2, onednn AVX2; torch 2.15.0; 2 threads"
    assert _set("x", CLEAR, cpu_kernels="", torch_threads=0).setting.endswith(
        "kernels not recorded; torch 2.15.0"
    )


def _crop_runs(*, ten_crop: bool) -> pd.DataFrame:
    rows = []
    for variant, error in (("plain34", 0.30), ("plain18", 0.28)):
        for seed in range(3):
            rows.append({"run_id": f"{variant}_s{seed}", "variant": variant, "depth": 18,
                         "seed": seed, "status": "complete", "val_error": error + seed / 1000,
                         "ten_crop_val_error": error - 0.02 if ten_crop else math.nan,
                         "multi_scale_val_error": math.nan})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("ten_crop", "crops", "plain34"),
    [(True, "10-crop", "plain-34 28.0 ± 0.0%"), (False, "centre crop", "plain-34 30.1 ± 0.1%")],
)
def test_val_top1_reads_10_crop_where_recorded_else_the_centre_crop(ten_crop, crops, plain34):
    runs = _crop_runs(ten_crop=ten_crop)
    assert claims.judged_crops(runs) == crops
    assert claims.metric(VAL_TOP1, runs).words == f"val top-1 error ({crops})"
    claim = Lower("plain-34 is worse", lower=Nets(where={"variant": "plain18"}),
                  higher=Nets(where={"variant": "plain34"}), metric=VAL_TOP1)  # fmt: skip
    text = claims.judge(claim, runs).text
    assert text.startswith(f"holds: plain-34 is worse: val top-1 error ({crops}) {plain34} (3 ")
