"""The report's ImageNet section: the imagenet experiments' val errors beside He et al. 2016's
Tables 2-4 (full budgets only: a class subset is another task), Fig. 4's curves, and their
claims judged; and the section of streamed runs on other image sets, their own tasks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations.config import STREAM_DATASETS
from ablations.experiments import EXPERIMENTS
from ablations.profiles import PROFILES
from ablations.protocol import IMAGENET_CHOICES
from ablations.references import (
    PAPER_IMAGENET,
    PAPER_MULTI_SCALE,
    TABLE3,
    TORCHVISION_ACCURACY,
    ImageNetErrors,
)
from ablations.report import claims, figures, tables
from ablations.report.claims import judged_crops
from ablations.report.profile_results import profile_heading
from ablations.report.recipes import recipe_runs
from ablations.report.tables import Section, bullets, distinct, markdown_table
from ablations.results import schemas
from ablations.results.table import read_table

TITLE = "## ImageNet (He et al. 2016: Fig. 4, Tables 2-4)"
EXPERIMENT_NAMES = ("imagenet-degradation", "imagenet-shortcuts", "imagenet-bottleneck")
FIRST = ("imagenet-paper", "imagenet-torchvision")  # full budgets first, then the others
# The paper's numbers by crop protocol: Tables 2-3 test with 10 crops, Table 4 at 5 scales.
PAPER_TABLES: dict[str, tuple[ImageNetErrors, ...]] = {
    "10-crop": PAPER_IMAGENET, "multi-scale": PAPER_MULTI_SCALE,
}  # fmt: skip


def _paper(variant: str, *, top5: bool, crops: str) -> str:
    for ref in PAPER_TABLES[crops]:
        values = ref.top5 if top5 else ref.top1
        if variant in values:
            return f"{values[variant]:.2f}%"
    return ""


def errors_table(runs: pd.DataFrame, *, published: bool) -> pd.DataFrame:
    """One row per net: seeds, val top-1 / top-5 error per crop protocol recorded, and where
    `published` the paper's (10-crop, multi-scale where the runs tested so) and torchvision's."""
    rows = []
    for variant, group in runs.groupby("variant", sort=False):
        n = group["seed"].nunique()
        row: dict[str, object] = {"net": tables.paper_name(str(variant)), "seeds": n}
        for crops, (top1, top5_column) in schemas.VAL_CROPS.items():
            if runs[top1].notna().any():
                for label, column in (("top-1", top1), ("top-5", top5_column)):
                    values = group[column]
                    row[f"{label} {crops}"] = tables.percent(values.mean(), values.std(), seeds=n)
        if published:
            for crops in PAPER_TABLES:
                if crops == "10-crop" or runs[schemas.VAL_CROPS[crops][0]].notna().any():
                    for label, top5 in (("top-1", False), ("top-5", True)):
                        row[f"paper {label} ({crops})"] = _paper(str(variant), top5=top5,
                                                                 crops=crops)  # fmt: skip
            accuracy = TORCHVISION_ACCURACY.get(str(variant))
            errors = f"{100 - accuracy[0]:.2f} / {100 - accuracy[1]:.2f}%" if accuracy else ""
            row["torchvision V1 top-1 / top-5 (centre)"] = errors
        rows.append(row)
    return pd.DataFrame(rows)


def profile_section(profile: str, runs: pd.DataFrame, curves: pd.DataFrame) -> Section:
    """One profile's ImageNet runs: claims, Fig. 4's curves, and a table per experiment."""
    known = PROFILES.get(profile)
    reduced = known is None or known.reduced
    choices = IMAGENET_CHOICES if profile == "imagenet-paper" else ()
    heading = profile_heading(profile, reduced=reduced, choices=choices)
    verdicts = bullets(claim.text for name in EXPERIMENT_NAMES
                       for claim in claims.claims(EXPERIMENTS[name], runs))  # fmt: skip
    parts = [f"### Profile `{profile}`\n\n{heading}\n",
             f"{bullets(tables.run_facts(runs))}\n",
             f"The paper's ImageNet claims, judged on the final val top-1 error "
             f"({judged_crops(runs)}). Rule: {claims.RULE}.\n\n{verdicts}\n"]  # fmt: skip
    figs = {}
    degradation = tables.members(runs, "imagenet-degradation")
    shown = curves[curves["run_id"].isin(set(degradation["run_id"]))]
    if len(shown):
        name = f"imagenet_degradation_{profile}"
        figs[name] = figures.curves_figure(degradation, shown, kinds=(False, True))
        parts.append(f"![Fig. 4: training and val error (centre crop) against iterations]"
                     f"({name}.png)\n")  # fmt: skip
    for experiment in EXPERIMENT_NAMES:
        mine = tables.members(runs, experiment)
        title = f"#### {EXPERIMENTS[experiment].description}"
        if mine.empty:
            command = f"ablate run --experiments {experiment} --profile {profile}"
            parts.append(f"{title}\n\nNot run under this profile: `{command}`.\n")
            continue
        table = markdown_table(errors_table(mine, published=not reduced))
        parts.append(f"{title}\n\n{table}\n")
    if not reduced:
        parts.append(
            f"Paper: {TABLE3.source.split(', Table')[0]}, Tables 2-3 (10-crop, val) "
            "and Table 4 (multi-scale, val); Table 2's ResNets are option A, Table 3's "
            "bottleneck nets option B with the stride on the first 1x1 conv (-v1). "
            "torchvision: its published V1 accuracies as errors, centre crop.\n"
        )
    return Section("\n".join(parts), figs)


def imagenet_section(results: Path) -> Section:
    """The whole section, of the complete experiment runs (not recipes) on a streamed dataset;
    one line when there are none."""
    runs, curves, _ = schemas.load(results)
    chosen = runs["dataset"].isin(STREAM_DATASETS) & ~recipe_runs(runs)
    mine = runs[chosen & (runs["status"] == "complete")]
    if mine.empty:
        return Section(
            f"{TITLE}\n\nNo ImageNet runs in runs.csv: `ablate run --experiments "
            "imagenet-degradation --profile imagenet-paper --data DIR` (docs/imagenet.md).\n"
        )
    order = sorted(set(mine["profile"]), key=lambda p: ((*FIRST, p).index(p), p))
    sections = [profile_section(p, mine[mine["profile"] == p], curves) for p in order]
    joined = tables.join(sections)
    return Section(f"{TITLE}\n\n{joined.markdown}", joined.figures)


def streamed_section(results: Path) -> Section:
    """Streamed runs on image sets other than ImageNet, one row per (tree, profile, variant) of
    complete runs; nothing when there are none."""
    runs = read_table(results / schemas.RUNS_FILE, schemas.RUNS)
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
            "val top-1 error": tables.percent(top1.mean(), top1.std(), seeds=n),
            "val top-5 error": tables.percent(top5.mean(), top5.std(), seeds=n),
            "machine": distinct(g["machine"]),
        })  # fmt: skip
    return Section(
        "## Streamed runs on other image sets\n\nTrained with an imagenet-* profile on "
        "ImageFolder trees that are not ImageNet (`--dataset imagefolder`): their own tasks, not "
        "comparable to the paper's numbers (centre-crop val errors, mean ± std over seeds):\n\n"
        f"{markdown_table(pd.DataFrame(rows))}\n"
    )
