"""The report's section for streamed runs on image sets other than ImageNet: their own tasks,
never beside the paper's numbers nor judged by its claims."""

from __future__ import annotations

import pandas as pd

from ablations.config import STREAM_DATASETS
from ablations.report.recipes import recipe_runs
from ablations.report.tables import Section, distinct, markdown_table, percent

TITLE = "## Streamed runs on other image sets"


def streamed_section(runs: pd.DataFrame) -> Section:
    """One row per (tree, profile, variant) of complete runs; nothing when there are none."""
    streamed = (runs["stream"] != "") & ~runs["dataset"].isin(STREAM_DATASETS)
    mine = runs[streamed & ~recipe_runs(runs) & (runs["status"] == "complete")]
    if mine.empty:
        return Section("")
    rows = []
    keys = ["data_source", "data_checksum", "profile", "stream", "variant"]
    for (source, checksum, profile, stream, variant), g in mine.groupby(keys, sort=True):
        n, top1, top5 = len(g), g["val_error"], g["val_top5_error"]
        rows.append({
            "data": f"{source} ({str(checksum)[:12]})", "profile": profile, "recipe": stream,
            "variant": variant, "seeds": n,
            "val top-1 error": percent(top1.mean(), top1.std(), seeds=n),
            "val top-5 error": percent(top5.mean(), top5.std(), seeds=n),
            "machine": distinct(g["machine"]),
        })  # fmt: skip
    return Section(
        f"{TITLE}\n\nTrained with an imagenet-* profile on ImageFolder trees that are not "
        "ImageNet (`--dataset imagefolder`): their own tasks, not comparable to the paper's "
        f"numbers (centre-crop val errors, mean ± std over seeds):\n\n"
        f"{markdown_table(pd.DataFrame(rows))}\n"
    )
