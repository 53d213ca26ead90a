"""The report's section for streamed runs on image sets other than ImageNet (`--dataset
imagefolder` with an imagenet-* profile): their own task, so never beside the paper's numbers
and never judged by its claims; one row per (tree, profile, variant) with the val errors over
seeds. Pure: a DataFrame in, Markdown out."""

from __future__ import annotations

import pandas as pd

from ablations.config import STREAM_DATASETS
from ablations.report.recipes import recipe_runs
from ablations.report.tables import Section, distinct, markdown_table, percent

TITLE = "## Streamed runs on other image sets"


def streamed_section(runs: pd.DataFrame) -> Section:
    """Complete runs streamed from a tree that is not ImageNet; nothing at all when there are
    none (most users never make one)."""
    streamed = (runs["stream"] != "") & ~runs["dataset"].isin(STREAM_DATASETS)
    mine = runs[streamed & ~recipe_runs(runs) & (runs["status"] == "complete")]
    if mine.empty:
        return Section("")
    rows = []
    keys = ["data_source", "data_checksum", "profile", "stream", "variant"]
    for (source, checksum, profile, stream, variant), g in mine.groupby(keys, sort=True):
        n = len(g)
        rows.append({
            "data": f"{source} ({str(checksum)[:12]})", "profile": profile, "recipe": stream,
            "variant": variant, "seeds": n,
            "val top-1 error": percent(g["val_error"].mean(), g["val_error"].std(), seeds=n),
            "val top-5 error": percent(g["val_top5_error"].mean(), g["val_top5_error"].std(),
                                       seeds=n),
            "machine": distinct(g["machine"]),
        })  # fmt: skip
    return Section(
        f"{TITLE}\n\nTrained with an imagenet-* profile on ImageFolder trees that are not "
        "ImageNet (`--dataset imagefolder`): their own tasks, not comparable to the paper's "
        f"numbers (centre-crop val errors, mean ± std over seeds):\n\n"
        f"{markdown_table(pd.DataFrame(rows))}\n"
    )
