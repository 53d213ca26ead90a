"""The verdict rule (ablations.stats): Student's t, Welch's test and the contrasts the claims are
judged by (the claims themselves: tests/report/test_claims.py)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import t as student_t
from scipy.stats import ttest_ind

from ablations import stats
from ablations.stats import Arm, Verdict


def welch(a: Arm, b: Arm) -> Verdict:
    """Welch's two-sample t-test: the contrast mean(a) - mean(b)."""
    return stats.contrast([a, b], [1.0, -1.0])


# --- Student's t, against printed tables -------------------------------------------------------


@pytest.mark.parametrize(("n", "critical"), [(3, 2.776), (6, 2.228), (16, 2.042)])
def test_the_interval_and_p_value_follow_the_printed_t_table(n, critical):
    # Equal spreads and seed counts: Welch's df is 2(n - 1), the 95% CI's half-width is the
    # printed two-sided 5% critical value of Student's t times the standard error, and an
    # estimate of exactly that many standard errors has p = 0.05.
    low = Arm.of({s: 1.0 + s % 2 for s in range(n)})
    v = welch(Arm.of({s: 10.0 + s % 2 for s in range(n)}), low)
    assert v.df == pytest.approx(2 * (n - 1))
    assert (v.ci[1] - v.ci[0]) / 2 / v.se == pytest.approx(critical, abs=6e-4)
    at_critical = Arm.of({s: x + critical * v.se for s, x in low.values.items()})
    assert welch(at_critical, low).p == pytest.approx(0.05, abs=2e-4)


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
            verdict = welch(Arm.of(errors[a]), Arm.of(errors[b]))
            if math.isnan(verdict.p) or verdict.se == 0:
                continue
            expected = ttest_ind(list(errors[a].values()), list(errors[b].values()),
                                 equal_var=False).pvalue  # fmt: skip
            assert verdict.p == pytest.approx(expected, abs=1e-9)
            checked += 1
    assert checked


def test_welch_by_hand():
    a, b = Arm.of({0: 10.0, 1: 12.0, 2: 14.0}), Arm.of({0: 1.0, 1: 2.0, 2: 3.0})
    v = welch(a, b)
    # means 12 and 2, variances 4 and 1: se = sqrt(4/3 + 1/3), df = se^4 / ((4/3)^2/2 + (1/3)^2/2)
    se = math.sqrt(5 / 3)
    assert (v.estimate, v.se) == (pytest.approx(10.0), pytest.approx(se))
    assert v.df == pytest.approx(se**4 / ((16 / 9) / 2 + (1 / 9) / 2))
    assert v.ci[0] == pytest.approx(10 - student_t.ppf(0.975, v.df) * se)
    assert v.outcome == stats.HOLDS and v.all_agree and v.paired == 3


def test_welch_outcomes():
    low, high = Arm.of({0: 1.0, 1: 1.1, 2: 0.9}), Arm.of({0: 5.0, 1: 5.2, 2: 4.8})
    assert welch(high, low).outcome == stats.HOLDS
    assert welch(low, high).outcome == stats.FAILS
    wide = Arm.of({0: 0.0, 1: 6.0, 2: 3.0})
    assert welch(wide, low).outcome == stats.NOT_RESOLVED
    assert welch(Arm.of({0: 5.0, 1: 5.1}), low).outcome == stats.NOT_RESOLVED
    assert welch(Arm.of({}), low).outcome == stats.NOT_CHECKED
    same = Arm.of({0: 2.0, 1: 2.0, 2: 2.0})
    assert welch(same, same).outcome == stats.NOT_RESOLVED
    assert welch(Arm.of({0: 3.0, 1: 3.0, 2: 3.0}), same).outcome == stats.HOLDS


def test_seed_agreement_counts_per_seed_contrasts():
    a = Arm.of({0: 5.0, 1: 5.0, 2: 1.0, 3: 5.0})
    b = Arm.of({0: 1.0, 1: 1.0, 2: 2.0})  # no seed 3: three paired seeds
    v = welch(a, b)
    assert (v.agree, v.paired, v.all_agree) == (2, 3, False)
