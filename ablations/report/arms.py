"""A claim's arms: how a metric reads, each run's value of it, and the nets one side of a claim
selects (ablations.claims.Nets), each with its seeds' values. ablations.report.claims judges
the contrast of the arms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from ablations.claims import RESPONSE_STD, VAL_TOP1, Nets
from ablations.report.nets import paper_name
from ablations.results.schemas import VAL_CROPS
from ablations.stats import Arm


@dataclass(frozen=True)
class Net:
    """One net's arm: its name and its seeds' values (in percent, or response std)."""

    variant: str
    depth: int
    arm: Arm

    @property
    def name(self) -> str:
        return paper_name(self.variant)


class Metric(NamedTuple):
    """How a metric reads in a verdict line: its words, scale, units and digits."""

    words: str
    scale: float = 1.0
    unit: str = ""  # after a net's value
    difference: str = ""  # after a difference
    digits: int = 3


ERROR_WORDS = {"train_error": "final training error", "val_error": "validation error",
               "test_error": "test error"}  # fmt: skip
RESPONSES = Metric("mean std of the 3x3 layers' responses", difference="std")


def judged_crops(runs: pd.DataFrame) -> str:
    """The crop protocol ImageNet claims are judged on: the first of VAL_CROPS recorded."""
    for crops, (top1, _) in VAL_CROPS.items():
        if top1 in runs and runs[top1].notna().any():
            return crops
    return "centre crop"


def column_of(name: str, runs: pd.DataFrame) -> str:
    """The runs column a metric reads: VAL_TOP1 resolves to its crop protocol's column."""
    return VAL_CROPS[judged_crops(runs)][0] if name == VAL_TOP1 else name


def metric(name: str, runs: pd.DataFrame) -> Metric | None:
    """The metric's reading, or None where it is neither the responses' std nor a numeric
    column of `runs` (errors, stored as fractions, read in percent)."""
    if name == RESPONSE_STD:
        return RESPONSES
    if name == VAL_TOP1:
        return Metric(f"val top-1 error ({judged_crops(runs)})", 100.0, "%", "points", 1)
    column = runs.get(name)
    if column is None or column.dtype == bool or not pd.api.types.is_numeric_dtype(column):
        return None
    if name.endswith("_error"):
        return Metric(ERROR_WORDS.get(name, name.replace("_", " ")), 100.0, "%", "points", 1)
    return Metric(name.replace("_", " "))


def measured(
    runs: pd.DataFrame, responses: pd.DataFrame | None, name: str, reading: Metric
) -> pd.DataFrame:
    """The complete runs with their value of metric `name` (times its scale) in `value`; runs
    without one (no layer responses, a NaN) are left out."""
    complete = runs[runs["status"] == "complete"]
    if name == RESPONSE_STD:
        stds = responses if responses is not None else pd.DataFrame(columns=["run_id", "std"])
        mean = stds.groupby("run_id")["std"].mean().rename("value")
        complete = complete.merge(mean, left_on="run_id", right_index=True)
    else:
        complete = complete.assign(value=complete[column_of(name, runs)] * reading.scale)
    return complete[complete["value"].notna()]


def select(runs: pd.DataFrame, nets: Nets) -> list[Net]:
    """One side's nets, by depth: the runs with the `where` values, narrowed to the shallowest
    or deepest depth among them; a net's arm is its seeds' `value`."""
    chosen = runs
    for column, value in nets.where.items():
        chosen = chosen[chosen[column] == value]
    if nets.depth is not None and len(chosen):
        depths = chosen["depth"]
        chosen = chosen[depths == (depths.min() if nets.depth == "min" else depths.max())]
    found = []
    for (variant, _), group in chosen.groupby(["variant", "depth"]):
        values = dict(zip(group["seed"], group["value"], strict=True))
        found.append(Net(str(variant), int(group["depth"].iloc[0]), Arm.of(values)))
    return sorted(found, key=lambda n: n.depth)
