"""Seed statistics and the verdict rule: Welch's t-test (Student's t from scipy.stats) on a
linear contrast of the nets' mean values. docs/methodology.md states the rule in words."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from scipy.stats import t as student_t

ALPHA = 0.05
MIN_SEEDS = 3

HOLDS, FAILS, NOT_CHECKED = "holds", "fails", "not checked"
NOT_RESOLVED = "not resolved at this budget"  # the difference lies within the seed spread
OUTCOMES = (HOLDS, FAILS, NOT_RESOLVED, NOT_CHECKED)


@dataclass(frozen=True)
class Arm:
    """One net's values over its seeds (seed -> value, NaNs dropped), their count, mean and
    sample standard deviation (ddof 1; NaN below two values)."""

    values: Mapping[int, float]
    n: int
    mean: float
    std: float

    @classmethod
    def of(cls, values: Mapping[int, float]) -> Arm:
        kept = {int(s): float(v) for s, v in values.items() if v == v}
        mean = statistics.fmean(kept.values()) if kept else math.nan
        std = statistics.stdev(kept.values()) if len(kept) > 1 else math.nan
        return cls(kept, len(kept), mean, std)


@dataclass(frozen=True)
class Verdict:
    """A contrast of arm means judged by the rule; `estimate` > 0 is the direction claimed."""

    outcome: str  # HOLDS | FAILS | NOT_RESOLVED | NOT_CHECKED
    estimate: float = math.nan
    agree: int = 0  # per-seed contrasts with the sign of the estimate
    paired: int = 0  # seeds present in every arm (per-seed contrasts computed)
    se: float = math.nan
    df: float = math.nan
    p: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)  # 1 - ALPHA confidence interval
    reason: str = ""  # why a claim is not checked or not resolved

    @property
    def all_agree(self) -> bool:
        return self.paired > 0 and self.agree == self.paired


def contrast(arms: Sequence[Arm], weights: Sequence[float]) -> Verdict:
    """Judge sum(w_i * mean_i) > 0: an arm without values leaves it not checked, one with fewer
    than MIN_SEEDS not resolved; else Welch's t-test, two-sided, at ALPHA."""
    pairs = list(zip(arms, weights, strict=True))
    fewest = min(a.n for a in arms)
    if fewest == 0:
        return Verdict(NOT_CHECKED, reason="runs missing")
    estimate = math.fsum(w * a.mean for a, w in pairs)
    # Whether all seeds agree: the contrast computed seed by seed (seed i of every arm).
    common = set.intersection(*(set(a.values) for a in arms))
    per_seed = [math.fsum(w * a.values[s] for a, w in pairs) for s in common]
    sign = math.copysign(1.0, estimate) if estimate else 0.0
    agree = sum(1 for v in per_seed if v * sign > 0)
    verdict = Verdict(NOT_RESOLVED, estimate, agree, len(common))
    if fewest < MIN_SEEDS:
        return replace(verdict, reason=f"fewer than {MIN_SEEDS} seeds per net")
    terms = [(w * w * a.std**2 / a.n, a.n) for a, w in pairs]
    se = math.sqrt(math.fsum(term for term, _ in terms))
    if se == 0:  # every seed gave the same value: the sign alone decides
        df, p = math.inf, (0.0 if estimate else 1.0)
    else:  # Welch-Satterthwaite
        df = se**4 / math.fsum(term * term / (n - 1) for term, n in terms if term)
        p = float(2 * student_t.sf(abs(estimate) / se, df))  # two-sided
    half = float(student_t.ppf(1 - ALPHA / 2, df)) * se  # Student's t is normal at df = inf
    verdict = replace(verdict, se=se, df=df, p=p, ci=(estimate - half, estimate + half))
    if p < ALPHA:
        return replace(verdict, outcome=HOLDS if estimate > 0 else FAILS)
    return replace(verdict, reason="the difference lies within the seed spread")
