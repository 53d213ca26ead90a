"""A claim's arms: how its metric reads, each complete run's value of it, and the nets one side
(ablations.claims.Nets) selects, each with its seeds' values. report.claims judges them."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from ablations.claims import RESPONSE_STD, VAL_TOP1, Nets
from ablations.report.nets import paper_name
from ablations.results.schemas import VAL_CROPS
from ablations.stats import Arm

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
