"""The report's speed comparisons as Markdown ("" where a table has nothing to show): the
run-to-run spread of `ablate bench --runs N`, ours against timm's benchmark.py, and this suite's
training loop against the conventional one (`ablate train-speed`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations.report.tables import distinct, markdown_table, memory_format
from ablations.results import schemas
from ablations.results.schemas import OURS, REFERENCE_FILE, THROUGHPUT, THROUGHPUT_FILE
from ablations.results.table import read_table

SETTING = ["variant", "mode", "machine", "precision", "channels_last", "compile", "batch_size",
           "input_size"]  # fmt: skip


def of_peak(fraction: float) -> str:
    """A fraction of the datasheet peak as a percent; "n/a" where the peak is unknown."""
    return "n/a" if fraction != fraction else f"{fraction:.1%}"


def fidelity(table: pd.DataFrame) -> str:
    """The spread of images/s (`spread`) of each setting measured more than once."""
    stats = spread(table)
    stats = stats[stats["count"] > 1]
    if stats.empty:
        return ""
    shown = pd.DataFrame({
        "variant": stats["variant"], "mode": stats["mode"], "measured by": stats["reference"],
        "precision": stats["precision"], "memory": stats["channels_last"].map(memory_format),
        "batch": stats["batch_size"], "runs": stats["count"],
        "median images/s": stats["median"].map("{:,.1f}".format),
        "spread": stats["spread"].map("{:.1%}".format),
    })  # fmt: skip
    return (
        "Run-to-run spread of images/s, (max - min) / median over runs (`--runs N`, each run a "
        f"fresh process):\n\n{markdown_table(shown)}\n"
    )


def against_timm(table: pd.DataFrame) -> str:
    """Ours / timm's benchmark.py, median images/s over runs of the same setting."""
    ok = table[table["status"] == "ok"]
    if not {OURS, "timm"} <= set(ok["reference"]):
        return ""
    medians = ok.groupby([*SETTING, "reference"])["images_per_s"].median().unstack("reference")
    ours = ok[ok["reference"] == OURS].groupby(SETTING)
    facts = ours["fraction_of_peak"].median().to_frame().join(ours["step"].first())
    medians = medians.dropna(subset=[OURS, "timm"]).join(facts).reset_index()
    if medians.empty:
        return ""
    shown = pd.DataFrame({
        "variant": medians["variant"], "mode": medians["mode"],
        "precision": medians["precision"], "memory": medians["channels_last"].map(memory_format),
        "batch": medians["batch_size"], "our step": medians["step"],
        "ours images/s": medians[OURS].map("{:,.1f}".format),
        "timm images/s": medians["timm"].map("{:,.1f}".format),
        "ours / timm": (medians[OURS] / medians["timm"]).map("{:.2f}x".format),
        "ours, of datasheet peak": medians["fraction_of_peak"].map(of_peak),
    })  # fmt: skip
    return (
        "Ours against timm's own `benchmark.py` (vendored, run as published) on "
        f"{distinct(ok['machine'])}, same settings, one command (`ablate bench ... --reference "
        "timm`); median over runs. "
        "timm synchronises after every step, ours times windows of steps with CUDA events "
        "(`protocol` column); timm's training step is eager, ours the step `ablate train` "
        f"takes (`our step`: a CUDA graph on a GPU):\n\n{markdown_table(shown)}\n"
    )


def loop_speed(table: pd.DataFrame) -> str:
    """This suite's training loop against the conventional one, with both loops' settings."""
    if table.empty:
        return ""
    keys = ["variant", "machine", "batch_size", "input_size"]
    ours, theirs = (table[table["loop"] == loop] for loop in ("suite", "conventional"))
    both = ours.merge(theirs, on=keys, suffixes=("_ours", "_conv"))
    if both.empty:
        return ""
    flags = both.apply(lambda r: f"cudnn.benchmark {r['cudnn_benchmark_ours']}, TF32 "
                       f"{r['tf32_cudnn_ours']}/{r['tf32_cudnn_conv']}", axis=1)  # fmt: skip
    shown = pd.DataFrame({
        "variant": both["variant"], "batch": both["batch_size"],
        "precision (ours / conv.)": both["precision_ours"] + " / " + both["precision_conv"],
        "memory (ours / conv.)": both["channels_last_ours"].map(memory_format) + " / "
        + both["channels_last_conv"].map(memory_format),
        "step, optimizer (ours / conv.)": both["step_ours"] + ", " + both["optimizer_ours"]
        + " / " + both["step_conv"] + ", " + both["optimizer_conv"],
        "conv. workers": both["workers_conv"], "flags": flags,
        "conventional images/s": both["images_per_s_conv"].map("{:,.0f}".format),
        "ours images/s": both["images_per_s_ours"].map("{:,.0f}".format),
        "speed-up": (both["images_per_s_ours"] / both["images_per_s_conv"]).map("{:.2f}x".format),
    })  # fmt: skip
    return (
        f"This suite's training loop against the conventional one (`ablate train-speed`, "
        f"{distinct(both['machine'])}; settings of both loops in every row of "
        f"`{schemas.TRAIN_SPEED_FILE}`):\n\n"
        f"{markdown_table(shown)}\n"
    )


def extras(results: Path) -> str:
    """The three comparisons that have results, as Markdown paragraphs."""
    timm = read_table(results / REFERENCE_FILE, THROUGHPUT)
    parts = [
        fidelity(read_table(results / THROUGHPUT_FILE, THROUGHPUT)),
        against_timm(timm),
        fidelity(timm),
        loop_speed(read_table(results / schemas.TRAIN_SPEED_FILE, schemas.TRAIN_SPEED)),
    ]
    return "\n".join(part for part in parts if part)


def spread(table: pd.DataFrame) -> pd.DataFrame:
    """Run-to-run spread of images/s, (max - min) / median, per setting and reference."""
    keys = [k for k in THROUGHPUT.key if k != "run"]
    ok = table[table["status"] == "ok"]
    stats = ok.groupby(keys)["images_per_s"].agg(["count", "median", "min", "max"]).reset_index()
    stats["spread"] = (stats["max"] - stats["min"]) / stats["median"]
    return stats
