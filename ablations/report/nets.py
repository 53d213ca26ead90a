"""The nets of a runs table as the report names and summarises them: the paper's spelling of a
net, and one row per variant over its seeds. The tables and claims use them as the figures do."""

from __future__ import annotations

import re

import pandas as pd

ERROR_COLUMNS = ("train_error", "val_error", "test_error")


def paper_name(variant: str) -> str:
    """The paper's spelling of a net: plain56 -> plain-56, resnet56 -> ResNet-56 (a suffix that
    sets an axis is kept: resnet56-b -> ResNet-56-b)."""
    match = re.fullmatch(r"(resnet|plain)(\d+)(.*)", variant)
    if not match:
        return variant
    prefix, depth, suffix = match.groups()
    return f"{'ResNet' if prefix == 'resnet' else 'plain'}-{depth}{suffix}"


def summarise_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: its axes, the seed count, and the mean, std (ddof 1), min and max
    over seeds of each final error, with the mean cost (MACs, images/s); in run order."""
    groups = runs.groupby("variant", sort=False)
    stats = groups[list(ERROR_COLUMNS)].agg(["mean", "std", "min", "max"])
    stats.columns = ["_".join(pair) for pair in stats.columns]  # train_error_mean, ...
    first = groups[["family", "depth", "residual", "shortcut", "stem"]].first()
    cost = groups[["params", "macs", "images_per_s"]].mean()
    seeds = groups["seed"].nunique().rename("seeds")
    last = groups["iterations_done"].max().rename("last_iteration")
    return pd.concat([first, seeds, last, cost, stats], axis=1).reset_index()
