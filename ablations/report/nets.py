"""The nets of a runs table as the report names and summarises them: the paper's spelling of a
net, one row per variant over its seeds, and which runs belong to an experiment."""

from __future__ import annotations

import re

import pandas as pd

from ablations.registry import axis_names

ERROR_COLUMNS = ["train_error", "val_error", "test_error"]
PAPER_PREFIXES = {"preresnet": "PreResNet", "resnet": "ResNet", "plain": "plain"}


def axis_columns(runs: pd.DataFrame) -> list[str]:
    """The registry's axes that the runs table records (the name is its `variant` column)."""
    return [axis for axis in axis_names() if axis != "name" and axis in runs.columns]


def members(runs: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The runs that recorded `experiment` among the experiments they were planned for."""
    planned = runs["experiments"].astype(str).str.split(",")
    return runs[planned.map(lambda names: experiment in names).astype(bool)]  # bool when empty


def paper_name(variant: str) -> str:
    """The papers' spelling of a net: plain56 -> plain-56, resnet56 -> ResNet-56, preresnet56 ->
    PreResNet-56 (a suffix that sets an axis is kept: resnet56-b -> ResNet-56-b)."""
    match = re.fullmatch(r"(preresnet|resnet|plain)(\d+)(.*)", variant)
    return f"{PAPER_PREFIXES[match[1]]}-{match[2]}{match[3]}" if match else variant


def summarise_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant, in run order: every axis the runs record, the seed count, the last
    iteration, the mean cost (params, MACs, images/s) and the mean, std (ddof 1), min and max
    over seeds of each final error (`train_error_mean`, ...)."""
    groups = runs.groupby("variant", sort=False)
    errors = groups[ERROR_COLUMNS].agg(["mean", "std", "min", "max"])
    errors.columns = ["_".join(pair) for pair in errors.columns]
    first = groups[axis_columns(runs)].first()
    cost = groups[["params", "macs", "images_per_s"]].mean()
    seeds = groups["seed"].nunique().rename("seeds")
    last = groups["iterations_done"].max().rename("last_iteration")
    return pd.concat([first, seeds, last, cost, errors], axis=1).reset_index()
