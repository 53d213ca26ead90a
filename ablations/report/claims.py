"""The claims an experiment declares, judged on its complete runs by the rule of ablations.stats:
how a claim's metric reads, the nets each side selects (an arm of seeds' values each), the
verdict lines, and the same claims over replicates of the runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import pandas as pd

from ablations import stats
from ablations.claims import RESPONSE_STD, VAL_TOP1, Contrast, GapGrows, Nets
from ablations.experiments import Experiment
from ablations.report.tables import members, paper_name
from ablations.results.schemas import VAL_CROPS
from ablations.stats import Arm, Verdict

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


ERROR_WORDS = {"train_error": "final training error", "val_error": "validation error"}


class Unjudged(Exception):
    """A claim its runs cannot judge, with the reason its line gives."""


class Net(NamedTuple):
    """One net (its paper name) and its arm: its seeds' values (in percent, or response std)."""

    name: str
    depth: int
    arm: Arm


class Metric(NamedTuple):
    """How a metric reads in a verdict line: its words, scale, units and digits."""

    words: str
    scale: float = 1.0
    unit: str = ""  # after a net's value
    difference: str = ""  # after a difference, with its space
    digits: int = 3


def judged_crops(runs: pd.DataFrame) -> str:
    """The crop protocol ImageNet claims are judged on: the first of VAL_CROPS recorded."""
    for crops, (top1, _) in VAL_CROPS.items():
        if top1 in runs and runs[top1].notna().any():
            return crops
    return "centre crop"


def metric(name: str, runs: pd.DataFrame) -> Metric:
    """How metric `name` reads: the responses' std, or a numeric column of `runs` (errors,
    stored as fractions, read in percent); Unjudged where it is neither."""
    if name == RESPONSE_STD:
        return Metric("mean std of the 3x3 layers' responses", difference=" std")
    if name == VAL_TOP1:
        return Metric(f"val top-1 error ({judged_crops(runs)})", 100.0, "%", " points", 1)
    column = runs.get(name)
    if column is None or column.dtype == bool or not pd.api.types.is_numeric_dtype(column):
        raise Unjudged(f"no metric {name!r}: {RESPONSE_STD} or a numeric column of runs.csv")
    if name.endswith("_error"):
        return Metric(ERROR_WORDS.get(name, name.replace("_", " ")), 100.0, "%", " points", 1)
    return Metric(name.replace("_", " "))


def measured(
    runs: pd.DataFrame, responses: pd.DataFrame | None, name: str, reading: Metric
) -> pd.DataFrame:
    """The complete runs that have a value of metric `name`, scaled, in `value`."""
    complete = runs[runs["status"] == "complete"]
    if name == RESPONSE_STD:
        stds = responses if responses is not None else pd.DataFrame(columns=["run_id", "std"])
        mean = stds.groupby("run_id")["std"].mean().rename("value")
        complete = complete.merge(mean, left_on="run_id", right_index=True)
    else:  # VAL_TOP1 reads its crop protocol's column
        column = VAL_CROPS[judged_crops(runs)][0] if name == VAL_TOP1 else name
        complete = complete.assign(value=complete[column] * reading.scale)
    return complete[complete["value"].notna()]


def select(runs: pd.DataFrame, nets: Nets) -> list[Net]:
    """One side's nets, by depth, each with its seeds' `value` as its arm."""
    for column, value in nets.where.items():
        if column not in runs:
            raise Unjudged(f"runs.csv has no column {column!r}")
        runs = runs[runs[column] == value]
    if nets.depth is not None and len(runs):
        depths = runs["depth"]
        runs = runs[depths == (depths.min() if nets.depth == "min" else depths.max())]
    found = []
    for variant, group in runs.groupby("variant"):
        values = dict(zip(group["seed"], group["value"], strict=True))
        found.append(Net(paper_name(str(variant)), int(group["depth"].iloc[0]), Arm.of(values)))
    return sorted(found, key=lambda n: n.depth)


@dataclass(frozen=True)
class Claim:
    statement: str  # what the experiment claims
    verdict: Verdict
    text: str  # the report's line
    numbers: str = ""  # the line's evidence, after the verdict and the statement

    @property
    def outcome(self) -> str:
        return self.verdict.outcome


def _spread(net: Net, m: Metric) -> str:
    """ "plain-56 61.0 ± 1.0% (3 seeds)"."""
    arm, d = net.arm, m.digits
    if arm.n < 2:
        return f"{net.name} {arm.mean:.{d}f}{m.unit} (1 seed)"
    return f"{net.name} {arm.mean:.{d}f} ± {arm.std:.{d}f}{m.unit} ({arm.n} seeds)"


def _judgement(v: Verdict, m: Metric) -> str:
    """ "difference +32.9 points, 95% CI [+30.1, +35.7], p = 0.0001; all 3 seeds agree"."""
    d = m.digits
    text = f"difference {v.estimate:+.{d}f}{m.difference}"
    if v.ci[0] == v.ci[0]:
        text += f", 95% CI [{v.ci[0]:+.{d}f}, {v.ci[1]:+.{d}f}], p = {v.p:.2g}"
    if v.paired:
        text += f"; {'all' if v.all_agree else f'{v.agree} of'} {v.paired} seeds agree"
    return f"{text} ({v.reason})" if v.reason else text


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
            names = f"{found[net.depth].name} and {net.name}"
            raise Unjudged(f"{side.name} selects two nets of depth {net.depth}: {names}")
        found[net.depth] = net
    return found


def _pairs(claim: Contrast, lower: list[Net], higher: list[Net]) -> list[tuple[Net, Net]]:
    """(higher, lower): one net per side, or the nets of each depth both sides have."""
    if len(lower) == len(higher) == 1 and not isinstance(claim, GapGrows):
        return [(higher[0], lower[0])]
    highs, lows = _by_depth(claim.higher, higher), _by_depth(claim.lower, lower)
    common = sorted(highs.keys() & lows.keys())
    if len(common) < (2 if isinstance(claim, GapGrows) else 1):  # a gap grows over two depths
        raise Unjudged(f"needs complete runs of {_needs(claim)}")
    return [(highs[depth], lows[depth]) for depth in common]


def _lower(claim: Contrast, pairs: list[tuple[Net, Net]], m: Metric) -> tuple[Verdict, str]:
    """Higher minus lower, averaged over the pairs (weights 1/k, -1/k)."""
    k = len(pairs)
    verdict = stats.contrast([net.arm for pair in pairs for net in pair], [1 / k, -1 / k] * k)
    shown = "; ".join(f"{_spread(high, m)} vs {_spread(low, m)}" for high, low in pairs)
    numbers = f"{m.words} {shown}; {_judgement(verdict, m)}"
    if k > 1:
        numbers += f" ({claim.higher.name} minus {claim.lower.name}, averaged over depths)"
    return verdict, numbers


def _gap_grows(claim: Contrast, pairs: list[tuple[Net, Net]], m: Metric) -> tuple[Verdict, str]:
    """(higher - lower) at the deepest common depth minus the same at the shallowest."""
    (high, low), (shallow_high, shallow_low) = pairs[-1], pairs[0]
    arms = [high.arm, low.arm, shallow_high.arm, shallow_low.arm]
    verdict = stats.contrast(arms, [1.0, -1.0, -1.0, 1.0])

    def gap(high: Net, low: Net, unit: str = "") -> str:  # the unit follows the first gap only
        nets = f"{_spread(high, m)}, {_spread(low, m)}"
        return f"{high.arm.mean - low.arm.mean:.{m.digits}f}{unit} at depth {high.depth} ({nets})"

    numbers = (
        f"{claim.higher.name} - {claim.lower.name} {m.words} = {gap(high, low, m.difference)} vs "
        f"{gap(shallow_high, shallow_low)}; {_judgement(verdict, m)} (difference of the gaps)"
    )
    return verdict, numbers


def judge(claim: Contrast, runs: pd.DataFrame, responses: pd.DataFrame | None = None) -> Claim:
    """One declared claim, judged on the complete runs of `runs` (and their layer responses,
    for the responses' std); "not checked", with the reason, where they cannot judge it."""
    try:
        reading = metric(claim.metric, runs)
        values = measured(runs, responses, claim.metric, reading)
        lower, higher = select(values, claim.lower), select(values, claim.higher)
        if not lower or not higher or {n.name for n in lower} & {n.name for n in higher}:
            raise Unjudged(f"needs complete runs of {_needs(claim)}")
        rule = _gap_grows if isinstance(claim, GapGrows) else _lower
        verdict, numbers = rule(claim, _pairs(claim, lower, higher), reading)
    except Unjudged as why:
        unjudged = Verdict(stats.NOT_CHECKED, reason=str(why))
        return Claim(claim.statement, unjudged, f"{stats.NOT_CHECKED}: {claim.statement} ({why})")
    line = f"{verdict.outcome}: {claim.statement}: {numbers}"
    return Claim(claim.statement, verdict, line, numbers)


def claims(
    experiment: Experiment, runs: pd.DataFrame, responses: pd.DataFrame | None = None
) -> list[Claim]:
    """Each claim the experiment declares, judged on its runs (those that recorded it)."""
    mine = members(runs, experiment.name)
    return [judge(claim, mine, responses) for claim in experiment.claims]


class Replicate(NamedTuple):
    """One set of runs of a profile (the committed runs, or a replicate of them)."""

    name: str
    runs: pd.DataFrame
    responses: pd.DataFrame

    @property
    def setting(self) -> str:
        """Where and how it ran, from its rows: machine, CPU kernels, torch, threads."""

        def values(column: str, unknown: str) -> str:
            return ", ".join(sorted({str(v) for v in self.runs[column] if v})) or unknown

        words = [
            values("machine", "machine not recorded"),
            values("cpu_kernels", "kernels not recorded"),
            f"torch {values('torch', '?')}",
        ]
        threads = sorted({int(t) for t in self.runs["torch_threads"] if int(t) > 0})
        if threads:
            words.append(f"{'/'.join(map(str, threads))} thread{'s' * (threads != [1])}")
        return "; ".join(words)


def replicated(experiment: Experiment, sets: Sequence[Replicate]) -> list[Claim]:
    """Each claim under REPLICATION_RULE: sets[0]'s where every set that could judge it agrees,
    else not resolved, its line naming each set's verdict and p."""
    found = []
    for each in zip(*(claims(experiment, s.runs, s.responses) for s in sets), strict=True):
        claim = each[0]
        judged = [(s, c) for s, c in zip(sets, each, strict=True) if c.outcome != stats.NOT_CHECKED]
        if len({c.outcome for _, c in judged}) <= 1:
            also = [s.name for s, _ in judged[1:]]
            same = f"; the same in {', '.join(also)}" if also else ""
            found.append(replace(claim, text=claim.text + same))
            continue
        verdicts = "; ".join(f"{c.outcome} in {s.name} (p = {c.verdict.p:.2g})" for s, c in judged)
        line = (
            f"{stats.NOT_RESOLVED}: {claim.statement}: the replicates disagree "
            f"({verdicts}). In {sets[0].name}: {claim.numbers}"
        )
        disagree = replace(claim.verdict, outcome=stats.NOT_RESOLVED, reason="replicates disagree")
        found.append(Claim(claim.statement, disagree, line, claim.numbers))
    return found


def replication_table(experiment: Experiment, sets: Sequence[Replicate]) -> pd.DataFrame:
    """One row per set: where it ran, its seeds, and each claim's verdict and p there."""
    rows = []
    for s in sets:
        complete = members(s.runs[s.runs["status"] == "complete"], experiment.name)
        counts = sorted(set(complete.groupby("variant")["seed"].nunique()))
        seeds = "-".join(map(str, counts)) + " per net" if counts else "none"
        row = {"runs": s.name, "setting": s.setting, "seeds": seeds}
        for claim in claims(experiment, s.runs, s.responses):
            p = claim.verdict.p
            row[claim.statement] = claim.outcome + (f" (p = {p:.2g})" if p == p else "")
        rows.append(row)
    return pd.DataFrame(rows)
