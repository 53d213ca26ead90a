"""The report's "Published checkpoints" section: checkpoints evaluated by `ablate evaluate`, as
measured on the data named, beside our runs of the same variant and the published errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations.config import STREAM_DATASETS
from ablations.references import AKAMASTER_CIFAR, TABLE6, TORCHVISION_ACCURACY
from ablations.report.tables import DIRTY, Section, markdown_table
from ablations.results import schemas
from ablations.results.table import read_table

PUBLISHED = {"paper": TABLE6, "akamaster README": AKAMASTER_CIFAR}  # short names for the column


def _percent(value: float) -> str:
    return "" if value != value else f"{value * 100:.2f}%"


def _ours(runs: pd.DataFrame, variant: str, dataset: str) -> str:
    """Our runs' final test error (ImageNet: val, centre crop), per profile, over seeds."""
    mine = runs[(runs["variant"] == variant) & (runs["dataset"] == dataset)
                & (runs["status"] == "complete")]  # fmt: skip
    parts = []
    for profile, group in mine.groupby("profile", sort=True):
        errors = group["val_error" if dataset in STREAM_DATASETS else "test_error"] * 100
        n = len(errors)
        spread = f" ± {errors.std():.1f}" if n > 1 else ""
        parts.append(f"{errors.mean():.1f}{spread}% ({profile}, {n} seed{'s' * (n > 1)})")
    return "; ".join(parts)


def _published(variant: str, dataset: str, *, top1: float, top5: float, crops: str) -> str:
    """The published errors; on ImageNet torchvision's V1 and our difference, in points (on
    real ImageNet val it should be within 0.1 of each)."""
    if dataset == "cifar10":
        found = [f"{src.test_error[variant]:.2f}% ({name})"
                 for name, src in PUBLISHED.items() if variant in src.test_error]  # fmt: skip
        return "; ".join(found)
    # torchvision publishes the centre crop's errors: other protocols have none to meet.
    if dataset not in STREAM_DATASETS or crops != "center" or variant not in TORCHVISION_ACCURACY:
        return ""
    e1, e5 = (100 - accuracy for accuracy in TORCHVISION_ACCURACY[variant])
    return (
        f"{e1:.2f}% / {e5:.2f}% (torchvision V1, top-1 / top-5); ours "
        f"{top1 * 100 - e1:+.2f} / {top5 * 100 - e5:+.2f} points"
    )


def evaluations_table(evaluations: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluation: what, how, on which data, the errors, our runs, the published."""
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


def evaluations_section(results: Path) -> Section:
    """The evaluations beside our runs and the published errors; nothing when there are none."""
    evaluations = read_table(results / schemas.EVALUATIONS_FILE, schemas.EVALUATIONS)
    if not len(evaluations):
        return Section("")
    table = evaluations_table(evaluations, read_table(results / schemas.RUNS_FILE, schemas.RUNS))
    text = (
        "## Published checkpoints, evaluated here\n\n"
        "Checkpoints trained elsewhere, loaded into our architecture (akamaster's by a channel "
        "permutation that keeps their logits) and evaluated by our evaluation path with the "
        "preprocessing they were trained with, by `ablate evaluate`. The errors are as measured "
        "on the data named in each row; a gap to the published number also measures how far "
        f"that copy of the data is from the original images.\n\n{markdown_table(table)}\n"
    )
    if dirty := int(table["commit"].str.startswith("**").sum()):
        text += (
            f"\n**{dirty} evaluation(s) above were produced from a dirty tree (uncommitted code); "
            "rerun them from a clean commit.**\n"
        )
    return Section(text)
