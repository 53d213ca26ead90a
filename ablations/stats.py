"""Seed statistics and the verdict rule, as pure functions (no I/O, no pandas).

A claim of the paper compares the final errors of a few nets, each trained with several seeds.
Its estimate is a linear contrast of the nets' mean errors (A - B for "A is worse than B"; a
difference of differences for "the gap grows with depth"), and the rule that turns it into a
verdict is Welch's t-test, stated once here and used by the report's claims and figures:

- an arm with no runs: the claim is **not checked**;
- an arm with fewer than MIN_SEEDS seeds: **not resolved** (no spread to judge it by);
- otherwise the contrast's standard error is sqrt(sum c_i^2 s_i^2 / n_i) (s_i: sample std,
  ddof 1), its degrees of freedom Welch-Satterthwaite's, and the claim **holds** when the
  two-sided p-value is below ALPHA with the claimed sign, **fails** when it is below ALPHA with
  the other sign, and is **not resolved** otherwise (the difference lies within the seed
  spread). p < ALPHA is the same statement as "the 95% CI of the contrast excludes 0".

Whether all seeds agree is reported beside it: the contrast computed seed by seed (seed i of
every arm), and how many of those per-seed contrasts have the sign of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t

ALPHA = 0.05
MIN_SEEDS = 3

HOLDS, FAILS, NOT_RESOLVED, NOT_CHECKED = "holds", "fails", "not resolved", "not checked"


@dataclass(frozen=True)
class Arm:
    """The values of one net over its seeds (seed -> value), NaNs dropped."""

    values: Mapping[int, float]

    @classmethod
    def of(cls, values: Mapping[int, float]) -> Arm:
        return cls({int(s): float(v) for s, v in values.items() if v == v})

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values.values()) / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof 1); NaN below two values."""
        if self.n < 2:
            return math.nan
        m = self.mean
        return math.sqrt(math.fsum((v - m) ** 2 for v in self.values.values()) / (self.n - 1))


@dataclass(frozen=True)
class Verdict:
    """A contrast of arm means judged by the rule; `estimate` > 0 is the direction claimed."""

    outcome: str  # HOLDS | FAILS | NOT_RESOLVED | NOT_CHECKED
    estimate: float
    se: float
    df: float
    p: float
    ci: tuple[float, float]  # 1 - ALPHA confidence interval of the estimate
    seeds: tuple[int, ...]  # seeds per arm, in the contrast's order
    agree: int  # per-seed contrasts with the sign of the estimate
    paired: int  # seeds present in every arm (per-seed contrasts computed)
    reason: str = ""  # why a claim is not checked or not resolved

    @property
    def all_agree(self) -> bool:
        return self.paired > 0 and self.agree == self.paired


def contrast(arms: Sequence[Arm], weights: Sequence[float]) -> Verdict:
    """Judge sum(w_i * mean_i) > 0 by the module's rule (Welch's t-test, two-sided)."""
    if len(arms) != len(weights):
        raise ValueError("one weight per arm")
    seeds = tuple(a.n for a in arms)
    nan = math.nan
    if min(seeds) == 0:
        return Verdict(NOT_CHECKED, nan, nan, nan, nan, (nan, nan), seeds, 0, 0,
                       reason="runs missing")  # fmt: skip
    estimate = math.fsum(w * a.mean for a, w in zip(arms, weights, strict=True))
    agree, paired = _agreement(arms, weights, estimate)
    if min(seeds) < MIN_SEEDS:
        reason = f"fewer than {MIN_SEEDS} seeds per net"
        return Verdict(NOT_RESOLVED, estimate, nan, nan, nan, (nan, nan), seeds, agree, paired,
                       reason=reason)  # fmt: skip
    terms = [w * w * a.std**2 / a.n for a, w in zip(arms, weights, strict=True)]
    se = math.sqrt(math.fsum(terms))
    if se == 0:  # every seed gave the same value: the sign alone decides
        df, p = math.inf, (0.0 if estimate else 1.0)
    else:
        df = se**4 / math.fsum(t * t / (a.n - 1) for t, a in zip(terms, arms, strict=True) if t)
        p = two_sided_p(estimate / se, df)
    half = t_quantile(1 - ALPHA / 2, df) * se if se else 0.0
    if p < ALPHA:
        outcome = HOLDS if estimate > 0 else FAILS
        reason = ""
    else:
        outcome, reason = NOT_RESOLVED, "the difference lies within the seed spread"
    return Verdict(outcome, estimate, se, df, p, (estimate - half, estimate + half), seeds,
                   agree, paired, reason=reason)  # fmt: skip


def _agreement(arms: Sequence[Arm], weights: Sequence[float], estimate: float) -> tuple[int, int]:
    """(per-seed contrasts with the estimate's sign, seeds present in every arm)."""
    common = set.intersection(*(set(a.values) for a in arms))
    sign = math.copysign(1.0, estimate) if estimate else 0.0
    per_seed = [
        math.fsum(w * a.values[s] for a, w in zip(arms, weights, strict=True)) for s in common
    ]
    return sum(1 for v in per_seed if v * sign > 0), len(common)


def two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom (normal for df = inf)."""
    return float(2 * student_t.sf(abs(t), df))


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t with `df` degrees of freedom (normal for df = inf)."""
    return float(student_t.ppf(q, df))
