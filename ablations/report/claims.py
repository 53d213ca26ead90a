"""The paper's degradation claims, checked against the runs of one profile.

Each claim is a pure function of a runs table (RUNS rows of one profile and dataset): it keeps
the complete runs of the paper's CIFAR nets (plain, and residual with the family's default
shortcut and stem), averages the final training error over seeds, and returns a verdict line,
or None when the runs it needs are missing. A claim that fails is said as plainly as one that
holds: the report exists to show which parts of the paper a budget reproduces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from ablations.report.figures import paper_name
from ablations.variants import FAMILY_DEFAULTS


@dataclass(frozen=True)
class Claim:
    text: str
    held: bool


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


def final_train_error(runs: pd.DataFrame, *, residual: bool) -> pd.DataFrame:
    """(variant, depth, error in %): mean final training error over seeds, by depth."""
    nets = paper_nets(runs)
    nets = nets[nets["residual"] == residual]
    mean = nets.groupby(["variant", "depth"], as_index=False)["train_error"].mean()
    return mean.assign(error=mean["train_error"] * 100).sort_values("depth")


def _extremes(runs: pd.DataFrame, *, residual: bool) -> tuple[pd.Series, pd.Series] | None:
    """(deepest, shallowest) net, or None with fewer than two depths."""
    nets = final_train_error(runs, residual=residual)
    if nets["depth"].nunique() < 2:
        return None
    return nets.iloc[-1], nets.iloc[0]


def _net(row: pd.Series) -> str:
    return paper_name(str(row["variant"]))


def plain_nets_degrade(runs: pd.DataFrame) -> Claim | None:
    """The deepest plain net ends with a higher training error than the shallowest."""
    pair = _extremes(runs, residual=False)
    if pair is None:
        return None
    deep, shallow = pair
    numbers = f"{_net(deep)} final training error {deep['error']:.1f}%"
    if deep["error"] > shallow["error"]:
        return Claim(f"holds: plain nets degrade: {numbers} > {_net(shallow)} "
                     f"{shallow['error']:.1f}%", held=True)  # fmt: skip
    return Claim(f"does not hold: plain nets do not degrade: {numbers} <= {_net(shallow)} "
                 f"{shallow['error']:.1f}%", held=False)  # fmt: skip


def residual_nets_gain_from_depth(runs: pd.DataFrame) -> Claim | None:
    """The deepest residual net ends with a lower training error than the shallowest."""
    pair = _extremes(runs, residual=True)
    if pair is None:
        return None
    deep, shallow = pair
    if deep["error"] < shallow["error"]:
        return Claim(f"holds: residual nets gain from depth: {_net(deep)} {deep['error']:.1f}% "
                     f"< {_net(shallow)} {shallow['error']:.1f}%", held=True)  # fmt: skip
    worse = "trains worse" if deep["error"] > shallow["error"] else "trains no better"
    return Claim(f"does not hold at this budget: {_net(deep)} {deep['error']:.1f}% vs "
                 f"{_net(shallow)} {shallow['error']:.1f}% (the deeper residual net {worse})",
                 held=False)  # fmt: skip


def shortcut_benefit_grows(runs: pd.DataFrame) -> Claim | None:
    """The plain-minus-residual gap in final training error is larger at the deepest depth
    where both nets exist than at the shallowest."""
    plain = final_train_error(runs, residual=False).set_index("depth")["error"]
    residual = final_train_error(runs, residual=True).set_index("depth")["error"]
    gap = (plain - residual).dropna().sort_index()
    if len(gap) < 2:
        return None
    shallow, small, deep, large = gap.index[0], gap.iloc[0], gap.index[-1], gap.iloc[-1]
    numbers = (f"plain - residual = {large:.1f} points at depth {deep} vs {small:.1f} at "
               f"depth {shallow}")  # fmt: skip
    if large > small:
        return Claim(f"holds: the shortcut's benefit grows with depth: {numbers}", held=True)
    return Claim(f"does not hold: the shortcut's benefit does not grow with depth: {numbers}",
                 held=False)  # fmt: skip


class ClaimCheck(NamedTuple):
    statement: str  # the paper's claim, for the line saying it could not be checked
    needs: str  # the runs it needs
    check: Callable[[pd.DataFrame], Claim | None]


CLAIMS: tuple[ClaimCheck, ...] = (
    ClaimCheck("plain nets degrade with depth", "plain nets of two depths", plain_nets_degrade),
    ClaimCheck("deeper residual nets are better", "residual nets of two depths",
               residual_nets_gain_from_depth),
    ClaimCheck("shortcuts rescue depth", "plain and residual nets at two common depths",
               shortcut_benefit_grows),
)  # fmt: skip


def verdicts(runs: pd.DataFrame) -> list[str]:
    """One line per claim: its verdict, or that it could not be checked and what it needs."""
    lines = []
    for statement, needs, check in CLAIMS:
        claim = check(runs)
        lines.append(
            claim.text if claim else f"not checked: {statement} (needs complete runs of {needs})"
        )
    return lines
