"""The report's planning section: each net's training speed by step kind, the planned set's
projected time beside the time its paper-profile GPU runs took, and several runs at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ablations.report import tables
from ablations.report.tables import Section, distinct, markdown_table
from ablations.results import schemas
from ablations.results.table import read_table

TITLE = "## Planning: training speed, the set's time, runs at once"


def _newest(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The last measurement of each `by` (a machine may measure again)."""
    return table.sort_values("created_at").groupby(by, sort=False).tail(1)


def speed_table(speed: pd.DataFrame) -> str:
    """Per machine, each net's img/s by step kind, and the graph step over the eager."""
    parts = []
    for machine, rows in _newest(speed, ["machine", "variant", "step"]).groupby("machine"):
        by = rows.pivot_table(index="variant", columns="step", values="images_per_s",
                              sort=False)  # fmt: skip
        main = "graph" if "graph" in by.columns else str(by.columns[0])  # the one runs take
        fast = rows[rows["step"] == main].set_index("variant").reindex(by.index)
        table = pd.DataFrame({
            "net": [tables.paper_name(v) for v in by.index],
            **{f"img/s, {step} step": by[step].map("{:,.0f}".format) for step in by.columns},
            f"ms/step, {main}": fast["ms_per_step"].map("{:.2f}".format),
            "eval s": fast["eval_s"].map("{:.2f}".format),
            "checkpoint MB": (fast["checkpoint_bytes"] / 2**20).map("{:.1f}".format),
        })  # fmt: skip
        if {"graph", "eager"} <= set(by.columns):
            table["graph / eager"] = (by["graph"] / by["eager"]).map("{:.2f}x".format).values
        first = fast.iloc[0]
        parts.append(
            f"{machine}, {first['precision']}, "
            f"{tables.memory_format(first['channels_last'])}, batch "
            f"{first['batch_size']}, torch {first['torch']}, commit {first['git_commit']}; "
            f"{first['iterations']:,} timed steps of the {main} step after warm-up (evaluation: "
            f"one pass over the {first['eval_split']} split):\n\n{markdown_table(table)}\n"
        )
    return "\n".join(parts)


def set_time_lines(projection: dict[str, Any] | None, runs: pd.DataFrame) -> list[str]:
    """Bullets: the planned set's projected wall time (`ablate plan --measure`), and the GPU
    time the Fig. 6 set's paper-profile runs took (seed 0; each run's share of its GPU)."""
    lines: list[str] = []
    if projection is not None:
        at_once = projection.get("runs_at_once", 1)
        for key, minutes in projection.items():
            if key.endswith("_total_minutes"):
                step = key.removesuffix("_total_minutes")
                shared = (f", {minutes / projection.get('combined_speedup', 1):.1f} min "
                          f"{at_once} at once" if at_once > 1 else "")  # fmt: skip
                planned = projection.get("runs", 0)
                missing = projection.get(f"{step}_unmeasured", [])
                counted = len(projection.get(f"{step}_seconds", {}))
                count = (f"{counted} of {planned} runs: "
                         f"{', '.join(map(tables.paper_name, missing))} not measured" if missing
                         else f"{planned} runs")  # fmt: skip
                lines.append(
                    f"- projected, {step} step: {minutes:.1f} min one at a time{shared}"
                    f" ({count}; {projection.get('machine')})"
                )
    done = tables.members(runs, "degradation")
    done = done[(done["profile"] == "paper") & (done["device"] == "cuda") & (done["seed"] == 0)
                & (done["status"] == "complete")]  # fmt: skip
    if not done.empty:
        share = (done["train_s"] / done["runs_at_once"].clip(lower=1)).sum() / 60
        nets = ", ".join(tables.paper_name(v) for v in done["variant"])
        lines.append(
            f"- measured: {share:.1f} min of GPU time for the {len(done)} nets trained so far "
            f"(seed 0: {nets}), each run's training seconds over the runs that shared its GPU "
            f"({distinct(done['machine'])}; `results/{schemas.RUNS_FILE}`)"
        )
    return lines


def concurrency_table(table: pd.DataFrame) -> str:
    """Combined img/s of K runs at once, by method, over one run alone (streams K = 1)."""
    if table.empty:
        return ""
    parts = []
    for machine, rows in _newest(table, ["machine", "method", "mps", "jobs"]).groupby("machine"):
        alone = rows[(rows["method"] == "streams") & (rows["jobs"] == 1)]["images_per_s"]
        method = rows["method"] + rows["mps"].map({True: " (MPS)", False: ""})
        shown = pd.DataFrame({
            "method": method, "runs at once": rows["jobs"],
            "img/s in all": rows["images_per_s"].map("{:,.0f}".format),
            "over one alone": (rows["images_per_s"] / alone.iloc[0]).map("{:.2f}x".format)
            if len(alone) else "n/a",
        })  # fmt: skip
        first = rows.iloc[0]
        parts.append(f"Several runs at once on {machine} ({tables.paper_name(first['variant'])}, "
                     f"`ablate runs-at-once`, `results/{schemas.RUNS_AT_ONCE_FILE}`):\n\n"
                     f"{markdown_table(shown)}\n")  # fmt: skip
    return "\n".join(parts)


def planning_section(results: Path) -> Section:
    """The section, or the line that says how to measure what it shows."""
    speed = read_table(results / schemas.STEP_SPEED_FILE, schemas.STEP_SPEED)
    at_once = read_table(results / schemas.RUNS_AT_ONCE_FILE, schemas.RUNS_AT_ONCE)
    runs = read_table(results / schemas.RUNS_FILE, schemas.RUNS)
    projection = results / schemas.PROJECTION_FILE
    planned = json.loads(projection.read_text()) if projection.exists() else None
    took = "\n".join(set_time_lines(planned, runs))
    parts = [
        "" if speed.empty else (f"Training img/s by step kind (`ablate plan --measure`, "
                                f"`results/{schemas.STEP_SPEED_FILE}`):\n\n{speed_table(speed)}"),
        f"The planned set, each run at its full budget:\n\n{took}\n" if took else "",
        concurrency_table(at_once),
    ]  # fmt: skip
    body = "\n".join(p for p in parts if p)
    if not body:
        body = (
            "Not measured yet. `ablate plan --measure` times a few steps of each planned run "
            f"(`results/{schemas.STEP_SPEED_FILE}`) and projects the set's time "
            f"(`results/{schemas.PROJECTION_FILE}`); `ablate runs-at-once` measures several "
            f"runs at once (`results/{schemas.RUNS_AT_ONCE_FILE}`). This section shows them.\n"
        )
    return Section(f"{TITLE}\n\n{body}")
