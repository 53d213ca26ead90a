"""The report's "Published checkpoints" section: checkpoints evaluated by `ablate evaluate`
(results/evaluations.csv), beside our own runs of the same variant and the published errors of
ablations.references. Pure: DataFrames in, Markdown out.

Every number is shown as measured, with the data it was measured on (file name, format, sha256)
and the preprocessing; a row produced from uncommitted code says so in bold.
"""

from __future__ import annotations

import pandas as pd

from ablations.config import STREAM_DATASETS
from ablations.references import AKAMASTER_CIFAR, TABLE6, TORCHVISION_ACCURACY
from ablations.report.provenance import DIRTY
from ablations.report.tables import markdown_table

PUBLISHED = {"paper": TABLE6, "akamaster README": AKAMASTER_CIFAR}  # short names for the column


def _percent(value: float) -> str:
    return "" if value != value else f"{value * 100:.2f}%"


def _ours(runs: pd.DataFrame, variant: str, dataset: str) -> str:
    """Our runs' final test error (ImageNet: val, centre crop) of `variant` on `dataset`: per
    profile, mean ± std over seeds."""
    if not len(runs):
        return ""
    mine = runs[(runs["variant"] == variant) & (runs["dataset"] == dataset)
                & (runs["status"] == "complete")]  # fmt: skip
    parts = []
    for profile, group in mine.groupby("profile", sort=True):
        errors = group["val_error" if dataset in STREAM_DATASETS else "test_error"] * 100
        n = len(errors)
        spread = f" ± {errors.std():.1f}" if n > 1 else ""
        parts.append(f"{errors.mean():.1f}{spread}% ({profile}, {n} seed{'s' * (n > 1)})")
    return "; ".join(parts)


def _torchvision(variant: str, top1: float, top5: float) -> str:
    """torchvision's published V1 errors and our difference from them, in points (on real
    ImageNet val it should be within 0.1 of each)."""
    if variant not in TORCHVISION_ACCURACY:
        return ""
    acc1, acc5 = TORCHVISION_ACCURACY[variant]
    e1, e5 = 100 - acc1, 100 - acc5
    return (f"{e1:.2f}% / {e5:.2f}% (torchvision V1, top-1 / top-5); ours "
            f"{top1 * 100 - e1:+.2f} / {top5 * 100 - e5:+.2f} points")  # fmt: skip


def _published(
    variant: str, dataset: str, *, top1: float = 0.0, top5: float = 0.0, crops: str = "center"
) -> str:  # fmt: skip
    if dataset in STREAM_DATASETS:
        # torchvision publishes the centre crop's errors: other protocols have none to meet.
        return _torchvision(variant, top1, top5) if crops == "center" else ""
    if dataset != "cifar10":
        return ""
    found = [f"{src.test_error[variant]:.2f}% ({name})"
             for name, src in PUBLISHED.items() if variant in src.test_error]  # fmt: skip
    return "; ".join(found)


def evaluations_table(evaluations: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluation, as shown: what was evaluated, how, on which data, the errors, and
    beside them our runs and the published numbers."""
    rows = []
    for e in evaluations.to_dict("records"):
        dirty = str(e["git_commit"]).endswith(DIRTY)
        rows.append({
            "variant": e["variant"],
            "weights": f"{e['weights']} ({e['weights_format']})",
            "preprocessing": e["preprocessing"]
            + ("" if e["crops"] == "center" else f", {e['crops']}"),
            "data": f"{e['dataset']} {e['split']}: {e['data_source']} ({e['data_format']}, "
                    f"sha256 {str(e['data_checksum'])[:12]})",
            "images": int(e["images"]),
            "top-1 error": _percent(e["top1_error"]),
            "top-5 error": _percent(e["top5_error"]),
            "our runs (test error)": _ours(runs, e["variant"], e["dataset"]),
            "published": _published(e["variant"], e["dataset"], top1=e["top1_error"],
                                    top5=e["top5_error"], crops=e["crops"]),
            "commit": f"**{e['git_commit']} (dirty tree)**" if dirty else str(e["git_commit"]),
        })  # fmt: skip
    return pd.DataFrame(rows)


def evaluations_section(evaluations: pd.DataFrame, runs: pd.DataFrame) -> str:
    """The section's Markdown; "" when nothing has been evaluated."""
    if not len(evaluations):
        return ""
    table = evaluations_table(evaluations, runs)
    lines = [
        "## Published checkpoints, evaluated here",
        "",
        "Checkpoints trained elsewhere, loaded into our architecture (akamaster's by a channel "
        "permutation that keeps their logits) and evaluated by our evaluation path with the "
        "preprocessing they were trained with, by `ablate evaluate`. The errors are as measured "
        "on the data named in each row; a gap to the published number also measures how far "
        "that copy of the data is from the original images.",
        "",
        markdown_table(table),
    ]
    dirty = int(table["commit"].str.startswith("**").sum())
    if dirty:
        lines += ["", f"**{dirty} evaluation(s) above were produced from a dirty tree "
                      "(uncommitted code); rerun them from a clean commit.**"]  # fmt: skip
    return "\n".join(lines) + "\n"
