"""The paper's degradation claims, judged from the runs of one profile by a stated rule.

Each claim is a pure function of a runs table (RUNS rows of one profile and dataset) and, for
Fig. 7's claim, the responses table. It keeps the complete runs of the paper's CIFAR nets
(plain, and residual with the family's default shortcut and stem), builds one arm per net (its
seeds' final training errors, or mean layer responses), and judges a contrast of the arms with
`ablations.stats` (Welch's t-test, alpha 0.05, at least 3 seeds per net). The verdict says how
many seeds, each net's mean ± std, the difference with its 95% CI and p-value, and whether all
seeds agree; a difference within the seed spread is "not resolved at this budget", never
"holds" or "fails".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from ablations import stats
from ablations.report.nets import paper_name
from ablations.stats import Arm, Verdict
from ablations.variants import FAMILY_DEFAULTS

METRIC = "train_error"  # Fig. 6's training curves: the degradation is an optimisation effect
WORDS = {
    stats.HOLDS: "holds",
    stats.FAILS: "fails",
    stats.NOT_RESOLVED: "not resolved at this budget",
    stats.NOT_CHECKED: "not checked",
}
RULE = (
    f"Welch's t-test on the seeds' values, two-sided, alpha {stats.ALPHA}, at least "
    f"{stats.MIN_SEEDS} seeds per net; a difference of differences (the shortcut's benefit) and "
    "an average over depths (responses) are judged the same way, with Welch-Satterthwaite "
    "degrees of freedom. p < alpha with the claimed sign: holds; with the other sign: fails; "
    'otherwise: not resolved at this budget. "Seeds agree": the same contrast computed seed by '
    "seed has the sign of the mean for every seed"
)


REPLICATION_RULE = (
    "a verdict stands only where every replicate reaches it (`results/replicates/*`: the same "
    "profile's runs made again, on another machine or with another CPU's kernels); where the "
    "replicates differ, the claim is not resolved at this budget"
)


@dataclass(frozen=True)
class Claim:
    statement: str  # the paper's claim
    verdict: Verdict
    text: str  # the report's line
    numbers: str = ""  # the line's evidence, after the verdict and the statement

    @property
    def outcome(self) -> str:
        return self.verdict.outcome


def paper_nets(runs: pd.DataFrame) -> pd.DataFrame:
    """Complete runs of the degradation comparison's nets: CIFAR plain nets and option-A
    residual nets with the k3 stem, so that option B/C or other stems never stand in for them."""
    cifar = FAMILY_DEFAULTS["cifar"]
    default = (
        (runs["family"] == "cifar") & (runs["stem"] == cifar["stem"]) &
        (runs["width"] == cifar["width"]) &
        (runs["shortcut"] == runs["residual"].map({True: cifar["shortcut"], False: "none"}))
    )  # fmt: skip
    return runs[default & (runs["status"] == "complete")]


@dataclass(frozen=True)
class Net:
    """One net's arm: its name and its seeds' values (in percent, or response std)."""

    variant: str
    depth: int
    arm: Arm

    @property
    def name(self) -> str:
        return paper_name(self.variant)


def nets(
    runs: pd.DataFrame, *, residual: bool, column: str = METRIC, scale: float = 100.0
) -> list[Net]:
    """The paper's nets of one kind, by depth, each with its seeds' `column` x `scale`
    (errors in percent by default)."""
    chosen = paper_nets(runs)
    chosen = chosen[chosen["residual"] == residual]
    out = []
    for (variant, depth), group in chosen.groupby(["variant", "depth"]):
        values = dict(zip(group["seed"], group[column] * scale, strict=True))
        out.append(Net(str(variant), int(depth), Arm.of(values)))
    return sorted(out, key=lambda n: n.depth)


def _spread(net: Net, unit: str = "%", digits: int = 1) -> str:
    arm = net.arm
    if arm.n < 2:
        return f"{net.name} {arm.mean:.{digits}f}{unit} (1 seed)"
    return f"{net.name} {arm.mean:.{digits}f} ± {arm.std:.{digits}f}{unit} ({arm.n} seeds)"


def _judgement(v: Verdict, unit: str = "points", digits: int = 1) -> str:
    """ "difference +32.9 points, 95% CI [+30.1, +35.7], p = 0.0001; all 3 seeds agree"."""
    parts = [f"difference {v.estimate:+.{digits}f} {unit}"]
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
    verdict = stats.contrast([Arm.of({})], [1.0])
    return Claim(statement, verdict, f"not checked: {statement} (needs complete runs of {needs})")


def plain_nets_degrade(runs: pd.DataFrame, responses: pd.DataFrame | None = None) -> Claim:
    """The deepest plain net ends with a higher training error than the shallowest."""
    statement = "plain nets degrade with depth"
    plain = nets(runs, residual=False)
    if len(plain) < 2:
        return _missing(statement, "plain nets of two depths")
    shallow, deep = plain[0], plain[-1]
    verdict = stats.welch(deep.arm, shallow.arm)
    numbers = f"final training error {_spread(deep)} vs {_spread(shallow)}; {_judgement(verdict)}"
    return _claim(statement, verdict, numbers)


def residual_nets_gain_from_depth(
    runs: pd.DataFrame, responses: pd.DataFrame | None = None
) -> Claim:
    """The deepest residual net ends with a lower training error than the shallowest."""
    statement = "deeper residual nets train better"
    residual = nets(runs, residual=True)
    if len(residual) < 2:
        return _missing(statement, "residual nets of two depths")
    shallow, deep = residual[0], residual[-1]
    verdict = stats.welch(shallow.arm, deep.arm)  # claimed: shallow - deep > 0
    numbers = (f"final training error {_spread(deep)} vs {_spread(shallow)}; "
               f"{_judgement(verdict)} (shallower minus deeper)")  # fmt: skip
    return _claim(statement, verdict, numbers)


def shortcut_benefit_grows(runs: pd.DataFrame, responses: pd.DataFrame | None = None) -> Claim:
    """The plain-minus-residual gap in final training error is larger at the deepest depth
    where both nets exist than at the shallowest: a difference of differences."""
    statement = "the shortcut's benefit grows with depth"
    plain = {n.depth: n for n in nets(runs, residual=False)}
    residual = {n.depth: n for n in nets(runs, residual=True)}
    common = sorted(plain.keys() & residual.keys())
    if len(common) < 2:
        return _missing(statement, "plain and residual nets at two common depths")
    low, high = common[0], common[-1]
    arms = [plain[high].arm, residual[high].arm, plain[low].arm, residual[low].arm]
    verdict = stats.contrast(arms, [1.0, -1.0, -1.0, 1.0])
    gap_high = plain[high].arm.mean - residual[high].arm.mean
    gap_low = plain[low].arm.mean - residual[low].arm.mean
    numbers = (f"plain - residual final training error = {gap_high:.1f} points at depth {high} "
               f"({_spread(plain[high])}, {_spread(residual[high])}) vs {gap_low:.1f} at depth "
               f"{low} ({_spread(plain[low])}, {_spread(residual[low])}); "
               f"{_judgement(verdict)} (difference of the gaps)")  # fmt: skip
    return _claim(statement, verdict, numbers)


def response_runs(runs: pd.DataFrame, responses: pd.DataFrame) -> pd.DataFrame:
    """Per run of the paper's nets: its seed and the mean over layers of the response std."""
    mean = responses.groupby("run_id", as_index=False)["std"].mean()
    return paper_nets(runs).merge(mean, on="run_id")


def residual_responses_smaller(runs: pd.DataFrame, responses: pd.DataFrame | None = None) -> Claim:
    """Fig. 7: plain nets' layer responses are larger than their residual twins', on average
    over the depths where both were measured (mean over layers of each run's response std)."""
    statement = "residual responses are smaller than plain ones"
    needs = "plain and residual nets of one depth with layer responses"
    if responses is None or responses.empty:
        return _missing(statement, needs)
    measured = response_runs(runs, responses)
    plain = {n.depth: n for n in nets(measured, residual=False, column="std", scale=1.0)}
    residual = {n.depth: n for n in nets(measured, residual=True, column="std", scale=1.0)}
    common = sorted(plain.keys() & residual.keys())
    if not common:
        return _missing(statement, needs)
    arms, weights = [], []
    for depth in common:
        arms += [plain[depth].arm, residual[depth].arm]
        weights += [1 / len(common), -1 / len(common)]
    verdict = stats.contrast(arms, weights)
    pairs = "; ".join(f"{_spread(plain[d], '', 3)} vs {_spread(residual[d], '', 3)}"
                      for d in common)  # fmt: skip
    numbers = (f"mean std of the 3x3 layers' responses {pairs}; "
               f"{_judgement(verdict, 'std', 3)} "
               "(plain minus residual, averaged over depths)")  # fmt: skip
    return _claim(statement, verdict, numbers)


class ClaimCheck(NamedTuple):
    statement: str
    check: Callable[[pd.DataFrame, pd.DataFrame | None], Claim]


CLAIMS: tuple[ClaimCheck, ...] = (
    ClaimCheck("plain nets degrade with depth", plain_nets_degrade),
    ClaimCheck("deeper residual nets train better", residual_nets_gain_from_depth),
    ClaimCheck("the shortcut's benefit grows with depth", shortcut_benefit_grows),
    ClaimCheck("residual responses are smaller", residual_responses_smaller),
)


def claims(runs: pd.DataFrame, responses: pd.DataFrame | None = None) -> list[Claim]:
    return [check(runs, responses) for _, check in CLAIMS]


def verdicts(runs: pd.DataFrame, responses: pd.DataFrame | None = None) -> list[str]:
    """One line per claim: its verdict with its spread, or that it could not be checked."""
    return [claim.text for claim in claims(runs, responses)]


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


def replicated_verdicts(sets: Sequence[Replicate]) -> list[str]:
    """One line per claim under REPLICATION_RULE: sets[0]'s line where every set that could
    judge the claim agrees, else "not resolved" naming each set's verdict and p."""
    lines = []
    for each in zip(*(claims(s.runs, s.responses) for s in sets), strict=True):
        claim = each[0]
        judged = [(s, c) for s, c in zip(sets, each, strict=True)
                  if c.outcome != stats.NOT_CHECKED]  # fmt: skip
        if len({c.outcome for _, c in judged}) <= 1:
            also = [s.name for s, _ in judged[1:]]
            lines.append(claim.text + (f"; the same in {', '.join(also)}" if also else ""))
            continue
        verdicts = "; ".join(f"{WORDS[c.outcome]} in {s.name} (p = {c.verdict.p:.2g})"
                             for s, c in judged)  # fmt: skip
        lines.append(f"{WORDS[stats.NOT_RESOLVED]}: {claim.statement}: the replicates "
                     f"disagree ({verdicts}). In {sets[0].name}: {claim.numbers}")  # fmt: skip
    return lines


def replication_table(sets: Sequence[Replicate]) -> pd.DataFrame:
    """One row per set: where it ran, its seeds, and each claim's verdict and p there."""
    rows = []
    for s in sets:
        row = {"runs": s.name, "setting": s.setting, "seeds": _seeds(s.runs)}
        for claim in claims(s.runs, s.responses):
            p = claim.verdict.p
            row[claim.statement] = WORDS[claim.outcome] + (f" (p = {p:.2g})" if p == p else "")
        rows.append(row)
    return pd.DataFrame(rows)


def _seeds(runs: pd.DataFrame) -> str:
    counts = paper_nets(runs).groupby("variant")["seed"].nunique()
    return "-".join(str(n) for n in sorted(set(counts))) + " per net" if len(counts) else "none"
