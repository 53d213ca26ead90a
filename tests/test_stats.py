"""The verdict rule (ablations.stats) and the claims built on it, on constructed runs tables."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd
import pytest
from report_rows import MACHINE, response_rows, run_rows
from scipy.stats import ttest_ind

from ablations import stats
from ablations.report import claims
from ablations.stats import Arm

# --- Student's t, against printed tables -------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "critical"),
    [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042), (math.inf, 1.960)],
)
def test_t_quantile_and_p_value_match_the_printed_table(df, critical):
    # Two-sided 5% critical values of Student's t, as every statistics table prints them.
    assert stats.t_quantile(0.975, df) == pytest.approx(critical, abs=6e-4)
    assert stats.two_sided_p(critical, df) == pytest.approx(0.05, abs=2e-4)
    assert stats.two_sided_p(0.0, df) == pytest.approx(1.0)


COMMITTED_RUNS = sorted(Path(__file__).parents[1].glob("results/**/runs.csv"))


@pytest.mark.parametrize("table", COMMITTED_RUNS, ids=lambda p: str(p.parent.name))
def test_welch_on_the_committed_runs_matches_scipys_own_welch_test(table):
    """Every pair of nets with seeds in a committed runs table: the contrast's p-value is the one
    scipy's Welch test gives on the same errors."""
    runs = pd.read_csv(table)
    checked = 0
    for _, nets in runs.groupby(["profile", "dataset"]):
        errors = {v: g.set_index("seed").test_error.dropna().to_dict()
                  for v, g in nets.groupby("variant")}  # fmt: skip
        for a, b in itertools.combinations(sorted(errors), 2):
            verdict = stats.welch(Arm.of(errors[a]), Arm.of(errors[b]))
            if math.isnan(verdict.p) or verdict.se == 0:
                continue
            expected = ttest_ind(list(errors[a].values()), list(errors[b].values()),
                                 equal_var=False).pvalue  # fmt: skip
            assert verdict.p == pytest.approx(expected, abs=1e-9)
            checked += 1
    assert checked


def test_welch_by_hand():
    a, b = Arm.of({0: 10.0, 1: 12.0, 2: 14.0}), Arm.of({0: 1.0, 1: 2.0, 2: 3.0})
    v = stats.welch(a, b)
    # means 12 and 2, variances 4 and 1: se = sqrt(4/3 + 1/3), df = se^4 / ((4/3)^2/2 + (1/3)^2/2)
    se = math.sqrt(5 / 3)
    assert (v.estimate, v.se) == (pytest.approx(10.0), pytest.approx(se))
    assert v.df == pytest.approx(se**4 / ((16 / 9) / 2 + (1 / 9) / 2))
    assert v.ci[0] == pytest.approx(10 - stats.t_quantile(0.975, v.df) * se)
    assert v.outcome == stats.HOLDS and v.all_agree and v.paired == 3


def test_welch_outcomes():
    low, high = Arm.of({0: 1.0, 1: 1.1, 2: 0.9}), Arm.of({0: 5.0, 1: 5.2, 2: 4.8})
    assert stats.welch(high, low).outcome == stats.HOLDS
    assert stats.welch(low, high).outcome == stats.FAILS
    wide = Arm.of({0: 0.0, 1: 6.0, 2: 3.0})
    assert stats.welch(wide, low).outcome == stats.NOT_RESOLVED
    assert stats.welch(Arm.of({0: 5.0, 1: 5.1}), low).outcome == stats.NOT_RESOLVED
    assert stats.welch(Arm.of({}), low).outcome == stats.NOT_CHECKED
    same = Arm.of({0: 2.0, 1: 2.0, 2: 2.0})
    assert stats.welch(same, same).outcome == stats.NOT_RESOLVED
    assert stats.welch(Arm.of({0: 3.0, 1: 3.0, 2: 3.0}), same).outcome == stats.HOLDS


def test_seed_agreement_counts_per_seed_contrasts():
    a = Arm.of({0: 5.0, 1: 5.0, 2: 1.0, 3: 5.0})
    b = Arm.of({0: 1.0, 1: 1.0, 2: 2.0})  # no seed 3: three paired seeds
    v = stats.welch(a, b)
    assert (v.agree, v.paired, v.all_agree) == (2, 3, False)


# --- the claims on constructed runs tables --------------------------------------------------

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
DEGRADATION = ("plain nets degrade", "deeper residual", "benefit grows")


def _outcomes(errors, *, responses=None):
    runs = run_rows(errors, profile="cpu")
    return [c.outcome for c in claims.claims(runs, responses)], runs


def test_claims_hold_when_the_difference_is_clear():
    outcomes, runs = _outcomes(CLEAR)
    assert outcomes[:3] == [stats.HOLDS] * 3
    [plain, *_] = claims.verdicts(runs)
    assert plain.startswith("holds: plain nets degrade with depth: final training error "
                            "plain-56 61.0 ± 1.0% (3 seeds) vs plain-20 30.0 ± 1.0% (3 seeds); "
                            "difference +31.0 points, 95% CI [")  # fmt: skip
    assert plain.endswith("all 3 seeds agree")


def test_claims_fail_when_the_opposite_is_clear():
    outcomes, runs = _outcomes(OPPOSITE)
    assert outcomes[:3] == [stats.FAILS] * 3
    assert claims.verdicts(runs)[1].startswith("fails: deeper residual nets train better:")


def test_a_difference_within_the_seed_spread_is_not_resolved():
    outcomes, runs = _outcomes(WITHIN)
    assert outcomes[:3] == [stats.NOT_RESOLVED] * 3
    line = claims.verdicts(runs)[0]
    assert line.startswith("not resolved at this budget: plain nets degrade with depth:")
    assert "the difference lies within the seed spread" in line


def test_a_single_seed_is_never_a_verdict():
    # One seed per net can say "holds" for a claim that another CPU overturns: never a verdict.
    one = {"plain20": [0.555], "plain56": [0.885], "resnet20": [0.440], "resnet56": [0.649]}
    outcomes, runs = _outcomes(one)
    assert outcomes[:3] == [stats.NOT_RESOLVED] * 3
    assert all("fewer than 3 seeds per net" in line for line in claims.verdicts(runs)[:3])
    two = {name: [0.1 * i, 0.1 * i + 0.001] for i, name in enumerate(CLEAR, start=1)}
    assert _outcomes(two)[0][:3] == [stats.NOT_RESOLVED] * 3


def test_missing_runs_are_not_checked():
    outcomes, runs = _outcomes({"plain20": [0.3, 0.31, 0.29], "resnet20": [0.2, 0.21, 0.19]})
    assert outcomes == [stats.NOT_CHECKED] * 4
    assert claims.verdicts(runs)[2] == (
        "not checked: the shortcut's benefit grows with depth (needs complete runs of plain and "
        "residual nets at two common depths)"
    )
    diverged = run_rows(CLEAR, profile="cpu")
    diverged.loc[diverged["variant"] == "plain56", "status"] = "diverged"
    assert claims.plain_nets_degrade(diverged).outcome == stats.NOT_CHECKED


def test_the_benefit_claim_is_a_difference_of_differences():
    # Both gaps are large (plain worse everywhere) but equal: the benefit does not grow.
    equal = {"plain20": [0.50, 0.52, 0.48], "plain56": [0.70, 0.72, 0.68],
             "resnet20": [0.30, 0.32, 0.28], "resnet56": [0.50, 0.52, 0.48]}  # fmt: skip
    claim = claims.shortcut_benefit_grows(run_rows(equal, profile="cpu"))
    assert claim.outcome == stats.NOT_RESOLVED
    assert claim.verdict.estimate == pytest.approx(0.0, abs=1e-9)
    assert "20.0 points at depth 56" in claim.text and "vs 20.0 at depth 20" in claim.text


def test_other_shortcuts_and_stems_never_stand_in():
    runs = run_rows({**OPPOSITE, "resnet56-b": [0.01, 0.01, 0.01], "resnet18": [0.01] * 3},
                    profile="cpu")  # fmt: skip
    assert claims.residual_nets_gain_from_depth(runs).outcome == stats.FAILS


def test_residual_responses_claim_from_responses():
    runs = run_rows(CLEAR, profile="cpu")
    responses = response_rows(runs)  # residual responses are half the plain ones, every seed
    claim = claims.residual_responses_smaller(runs, responses)
    assert claim.outcome == stats.HOLDS and claim.verdict.all_agree
    assert "(3 seeds)" in claim.text
    assert claims.residual_responses_smaller(runs, None).outcome == stats.NOT_CHECKED
    swapped = responses.assign(residual=~responses["residual"])
    flipped = runs.assign(residual=~runs["residual"],
                          shortcut=runs["residual"].map({True: "none", False: "a"}))  # fmt: skip
    assert claims.residual_responses_smaller(flipped, swapped).outcome == stats.FAILS


# --- replication: the same claims from replicates of the runs ---------------------------------


def _set(name, errors, **columns):
    runs = run_rows(errors, profile="cpu").assign(**columns)
    return claims.Replicate(name, runs, response_rows(runs))


def test_a_verdict_every_replicate_reaches_stands():
    sets = [_set("the committed runs", CLEAR), _set("replicate avx2", CLEAR)]
    lines = claims.replicated_verdicts(sets)
    plain = claims.verdicts(sets[0].runs, sets[0].responses)
    assert lines[:3] == [f"{line}; the same in replicate avx2" for line in plain[:3]]
    assert claims.replicated_verdicts(sets[:1]) == plain  # no replicate: the plain verdicts


def test_replicates_that_disagree_leave_the_claim_not_resolved():
    sets = [_set("the committed runs", CLEAR), _set("replicate avx2", WITHIN)]
    line = claims.replicated_verdicts(sets)[0]
    assert line.startswith(
        "not resolved at this budget: plain nets degrade with depth: the replicates disagree "
        "(holds in the committed runs (p = "
    )
    assert "; not resolved at this budget in replicate avx2 (p = " in line
    assert "In the committed runs: final training error plain-56 61.0 ± 1.0%" in line
    table = claims.replication_table(sets)
    assert list(table["runs"]) == ["the committed runs", "replicate avx2"]
    assert table.iloc[0]["plain nets degrade with depth"].startswith("holds (p = ")
    assert table.iloc[1]["plain nets degrade with depth"].startswith("not resolved")


def test_a_replicate_that_cannot_judge_a_claim_does_not_overturn_it():
    partial = {k: v for k, v in WITHIN.items() if k.endswith("20")}  # no depth-56 nets
    sets = [_set("the committed runs", CLEAR), _set("replicate small", partial)]
    lines = claims.replicated_verdicts(sets)
    plain = claims.verdicts(sets[0].runs, sets[0].responses)
    assert lines[:3] == plain[:3]


def test_a_replicate_names_where_it_ran():
    s = _set("replicate avx2", CLEAR, cpu_kernels="aten AVX2, onednn AVX2", torch_threads=2)
    assert s.setting == f"{MACHINE}; aten AVX2, onednn AVX2; torch 2.15.0; 2 threads"
    assert _set("x", CLEAR, cpu_kernels="", torch_threads=0).setting.endswith(
        "kernels not recorded; torch 2.15.0"
    )
