"""The claims an experiment declares (ablations.claims), judged from its runs by a stated rule.

Each claim is judged from the experiment's complete runs (those that recorded it in runs.csv's
`experiments`) and, for the layer responses, the responses table. A side of a claim is a
selection of those runs (`Nets`); each net on it is one arm, its seeds' values of the claim's
metric. `ablations.stats` judges the contrast of the arms (Welch's t-test, alpha 0.05, at least
3 seeds per net). The verdict says how many seeds, each net's mean ± std, the difference with
its 95% CI and p-value, and whether all seeds agree; a difference within the seed spread is
"not resolved at this budget", never "holds" or "fails".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from ablations import stats
from ablations.claims import RESPONSE_STD, Contrast, GapGrows, Lower, Nets
from ablations.experiments import Experiment
from ablations.report.arms import Metric, Net, measured, metric, select
from ablations.report.nets import members
from ablations.stats import Arm, Verdict

WORDS = {
    stats.HOLDS: "holds",
    stats.FAILS: "fails",
    stats.NOT_RESOLVED: "not resolved at this budget",
    stats.NOT_CHECKED: "not checked",
}
RULE = (
    f"Welch's t-test on the seeds' values, two-sided, alpha {stats.ALPHA}, at least "
    f"{stats.MIN_SEEDS} seeds per net; a difference of differences (a gap that grows with depth) "
    "and an average over depths (nets paired by depth) are judged the same way, with "
    "Welch-Satterthwaite degrees of freedom. A line names the side claimed higher first, and its "
    "difference is that side minus the other. p < alpha with the claimed sign: holds; with the "
    'other sign: fails; otherwise: not resolved at this budget. "Seeds agree": the same contrast '
    "computed seed by seed has the sign of the mean for every seed"
)


REPLICATION_RULE = (
    "a verdict stands only where every replicate reaches it (`results/replicates/*`: the same "
    "profile's runs made again, on another machine or with another CPU's kernels); where the "
    "replicates differ, the claim is not resolved at this budget"
)


@dataclass(frozen=True)
class Claim:
    statement: str  # what the experiment claims
    verdict: Verdict
    text: str  # the report's line
    numbers: str = ""  # the line's evidence, after the verdict and the statement

    @property
    def outcome(self) -> str:
        return self.verdict.outcome


def _spread(net: Net, unit: str = "%", digits: int = 1) -> str:
    arm = net.arm
    if arm.n < 2:
        return f"{net.name} {arm.mean:.{digits}f}{unit} (1 seed)"
    return f"{net.name} {arm.mean:.{digits}f} ± {arm.std:.{digits}f}{unit} ({arm.n} seeds)"


def _judgement(v: Verdict, unit: str = "points", digits: int = 1) -> str:
    """ "difference +32.9 points, 95% CI [+30.1, +35.7], p = 0.0001; all 3 seeds agree"."""
    parts = [f"difference {v.estimate:+.{digits}f}{f' {unit}' if unit else ''}"]
    if v.ci[0] == v.ci[0]:
        parts[0] += (f", 95% CI [{v.ci[0]:+.{digits}f}, {v.ci[1]:+.{digits}f}], "
                     f"p = {v.p:.2g}")  # fmt: skip
    agree = (f"all {v.paired} seeds agree" if v.all_agree
             else f"{v.agree} of {v.paired} seeds agree")  # fmt: skip
    text = f"{'; '.join(parts)}; {agree}" if v.paired else parts[0]
    return f"{text} ({v.reason})" if v.reason else text


def _claim(statement: str, verdict: Verdict, numbers: str) -> Claim:
    return Claim(statement, verdict, f"{WORDS[verdict.outcome]}: {statement}: {numbers}", numbers)


def _missing(statement: str, needs: str) -> Claim:
    return _unjudged(statement, f"needs complete runs of {needs}")


def _unjudged(statement: str, why: str) -> Claim:
    """A claim that cannot be judged, and why."""
    verdict = stats.contrast([Arm.of({})], [1.0])
    return Claim(statement, verdict, f"not checked: {statement} ({why})")


class Unjudged(Exception):
    """A claim its runs cannot judge, with the reason its line gives."""


def _needs(claim: Contrast) -> str:
    """What judging the claim takes, as its "not checked" line says."""
    low, high = claim.lower, claim.higher
    responses = " with layer responses" if claim.metric == RESPONSE_STD else ""
    if isinstance(claim, GapGrows):
        return f"{high.name} and {low.name} nets at two common depths{responses}"
    if low.where == high.where:
        return f"{low.name} nets of two depths{responses}"
    one = " of one depth" if low.depth is None and high.depth is None else ""
    return f"{high.name} and {low.name} nets{one}{responses}"


def _by_depth(side: Nets, nets: list[Net]) -> dict[int, Net]:
    """A side's nets by depth; two nets of one depth cannot be paired."""
    found: dict[int, Net] = {}
    for net in nets:
        if net.depth in found:
            raise Unjudged(f"{side.name} selects two nets of depth {net.depth}: "
                           f"{found[net.depth].name} and {net.name}")  # fmt: skip
        found[net.depth] = net
    return found


def _lower(claim: Lower, lower: list[Net], higher: list[Net], m: Metric) -> Claim:
    """One net per side: higher minus lower. Several: the mean over the depths both sides have
    of the paired differences (weights 1/k, -1/k)."""
    if len(lower) == 1 and len(higher) == 1:
        h, lo = higher[0], lower[0]
        verdict = stats.contrast([h.arm, lo.arm], [1.0, -1.0])
        numbers = (f"{m.words} {_spread(h, m.unit, m.digits)} vs {_spread(lo, m.unit, m.digits)}; "
                   f"{_judgement(verdict, m.difference, m.digits)}")  # fmt: skip
        return _claim(claim.statement, verdict, numbers)
    highs, lows = _by_depth(claim.higher, higher), _by_depth(claim.lower, lower)
    common = sorted(highs.keys() & lows.keys())
    if not common:
        raise Unjudged(f"needs complete runs of {_needs(claim)}")
    arms, weights = [], []
    for depth in common:
        arms += [highs[depth].arm, lows[depth].arm]
        weights += [1 / len(common), -1 / len(common)]
    verdict = stats.contrast(arms, weights)
    pairs = "; ".join(f"{_spread(highs[d], m.unit, m.digits)} vs "
                      f"{_spread(lows[d], m.unit, m.digits)}" for d in common)  # fmt: skip
    averaged = (f" ({claim.higher.name} minus {claim.lower.name}, averaged over depths)"
                if len(common) > 1 else "")  # fmt: skip
    numbers = f"{m.words} {pairs}; {_judgement(verdict, m.difference, m.digits)}{averaged}"
    return _claim(claim.statement, verdict, numbers)


def _gap_grows(claim: GapGrows, lower: list[Net], higher: list[Net], m: Metric) -> Claim:
    """(higher - lower) at the deepest common depth minus the same at the shallowest."""
    highs, lows = _by_depth(claim.higher, higher), _by_depth(claim.lower, lower)
    common = sorted(highs.keys() & lows.keys())
    if len(common) < 2:
        raise Unjudged(f"needs complete runs of {_needs(claim)}")
    low, high = common[0], common[-1]
    arms = [highs[high].arm, lows[high].arm, highs[low].arm, lows[low].arm]
    verdict = stats.contrast(arms, [1.0, -1.0, -1.0, 1.0])
    gap_high = highs[high].arm.mean - lows[high].arm.mean
    gap_low = highs[low].arm.mean - lows[low].arm.mean
    d, unit = m.digits, f" {m.difference}" if m.difference else ""

    def both(depth: int) -> str:
        return (f"{_spread(highs[depth], m.unit, d)}, "
                f"{_spread(lows[depth], m.unit, d)}")  # fmt: skip

    numbers = (f"{claim.higher.name} - {claim.lower.name} {m.words} = {gap_high:.{d}f}{unit} at "
               f"depth {high} ({both(high)}) vs {gap_low:.{d}f} at depth {low} ({both(low)}); "
               f"{_judgement(verdict, m.difference, d)} (difference of the gaps)")  # fmt: skip
    return _claim(claim.statement, verdict, numbers)


def judge(claim: Contrast, runs: pd.DataFrame, responses: pd.DataFrame | None = None) -> Claim:
    """One declared claim, judged on the complete runs of `runs` (and their layer responses,
    for the responses' std); "not checked", with the reason, where they cannot judge it."""
    reading = metric(claim.metric, runs)
    try:
        if reading is None:
            raise Unjudged(f"no metric {claim.metric!r}: {RESPONSE_STD} or a numeric column of "
                           "runs.csv")  # fmt: skip
        unknown = [c for s in (claim.lower, claim.higher) for c in s.where if c not in runs]
        if unknown:
            raise Unjudged(f"runs.csv has no column {unknown[0]!r}")
        values = measured(runs, responses, claim.metric, reading)
        lower, higher = select(values, claim.lower), select(values, claim.higher)
        if not lower or not higher or {n.variant for n in lower} & {n.variant for n in higher}:
            raise Unjudged(f"needs complete runs of {_needs(claim)}")
        if isinstance(claim, GapGrows):
            return _gap_grows(claim, lower, higher, reading)
        return _lower(claim, lower, higher, reading)
    except Unjudged as why:
        return _unjudged(claim.statement, str(why))


def claims(
    experiment: Experiment, runs: pd.DataFrame, responses: pd.DataFrame | None = None
) -> list[Claim]:
    """Each claim the experiment declares, judged on its runs (those that recorded it)."""
    mine = members(runs, experiment.name)
    return [judge(claim, mine, responses) for claim in experiment.claims]


def verdicts(
    experiment: Experiment, runs: pd.DataFrame, responses: pd.DataFrame | None = None
) -> list[str]:
    """One line per claim: its verdict with its spread, or that it could not be checked."""
    return [claim.text for claim in claims(experiment, runs, responses)]


class Replicate(NamedTuple):
    """One set of runs of a profile (the committed runs, or a replicate of them): its name, its
    runs and their layer responses."""

    name: str
    runs: pd.DataFrame
    responses: pd.DataFrame

    @property
    def setting(self) -> str:
        """Where and how it ran, from its rows: machine, CPU kernels, torch, threads."""

        def values(column: str, unknown: str) -> str:
            found = sorted({str(v) for v in self.runs[column] if v})
            return ", ".join(found) if found else unknown

        threads = sorted({int(t) for t in self.runs["torch_threads"] if int(t) > 0})
        words = [values("machine", "machine not recorded"),
                 values("cpu_kernels", "kernels not recorded"),
                 f"torch {values('torch', '?')}"]  # fmt: skip
        if threads:
            words.append(f"{'/'.join(map(str, threads))} thread{'s' * (threads != [1])}")
        return "; ".join(words)


class Replicated(NamedTuple):
    """A claim under REPLICATION_RULE: its statement, the outcome every set agrees on (else not
    resolved), and the report's line."""

    statement: str
    outcome: str
    line: str


def replicated(experiment: Experiment, sets: Sequence[Replicate]) -> list[Replicated]:
    """Each claim under REPLICATION_RULE: sets[0]'s line where every set that could judge the
    claim agrees, else "not resolved" naming each set's verdict and p."""
    found = []
    judged_sets = [claims(experiment, s.runs, s.responses) for s in sets]
    for each in zip(*judged_sets, strict=True):
        claim = each[0]
        judged = [(s, c) for s, c in zip(sets, each, strict=True)
                  if c.outcome != stats.NOT_CHECKED]  # fmt: skip
        if len({c.outcome for _, c in judged}) <= 1:
            also = [s.name for s, _ in judged[1:]]
            line = claim.text + (f"; the same in {', '.join(also)}" if also else "")
            found.append(Replicated(claim.statement, claim.outcome, line))
            continue
        verdicts = "; ".join(f"{WORDS[c.outcome]} in {s.name} (p = {c.verdict.p:.2g})"
                             for s, c in judged)  # fmt: skip
        line = (f"{WORDS[stats.NOT_RESOLVED]}: {claim.statement}: the replicates disagree "
                f"({verdicts}). In {sets[0].name}: {claim.numbers}")  # fmt: skip
        found.append(Replicated(claim.statement, stats.NOT_RESOLVED, line))
    return found


def replicated_verdicts(experiment: Experiment, sets: Sequence[Replicate]) -> list[str]:
    """One line per claim under REPLICATION_RULE (`replicated`)."""
    return [claim.line for claim in replicated(experiment, sets)]


def replication_table(experiment: Experiment, sets: Sequence[Replicate]) -> pd.DataFrame:
    """One row per set: where it ran, its seeds, and each claim's verdict and p there."""
    rows = []
    for s in sets:
        row = {"runs": s.name, "setting": s.setting, "seeds": _seeds(experiment, s.runs)}
        for claim in claims(experiment, s.runs, s.responses):
            p = claim.verdict.p
            row[claim.statement] = WORDS[claim.outcome] + (f" (p = {p:.2g})" if p == p else "")
        rows.append(row)
    return pd.DataFrame(rows)


def _seeds(experiment: Experiment, runs: pd.DataFrame) -> str:
    complete = members(runs[runs["status"] == "complete"], experiment.name)
    counts = complete.groupby("variant")["seed"].nunique()
    return "-".join(str(n) for n in sorted(set(counts))) + " per net" if len(counts) else "none"
