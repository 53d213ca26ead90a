"""The GPU runbook's measurements in the report (issues 10 and 11): whether the GPU tests passed,
the Fig. 6 nets' training speed on a GPU by step kind, the whole set's projected time beside the
time its runs took, and several runs at once by method. All of it from results/ alone (the
tables of ablations.runbook, and runs.csv); until a GPU has run the runbook the section says so,
and how to run it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ablations import runbook, store
from ablations.report.figures import paper_name
from ablations.report.tables import Section, markdown_table
from ablations.report.training import members
from ablations.results import read_table

TITLE = "## Speed on a GPU: the Fig. 6 set"
RUNBOOK = '`bash device/train_gpu.sh` (README "On a GPU")'


def _newest(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The last measurement of each `by` (a later GPU session measures again)."""
    return table.sort_values("created_at").groupby(by, sort=False).tail(1)


def tests_line(record: dict[str, Any] | None) -> str:
    if record is None:
        return ""
    ended = "passed" if record.get("passed") else f"FAILED (exit {record.get('exit')})"
    return (
        f'GPU tests (`device/gpu_tests.py`, `-k "{record.get("selection", "")}"`): {ended} on '
        f"{record.get('machine')} (torch {record.get('torch')}, commit "
        f"{record.get('git_commit')}): {record.get('ran_and_passed', 0)} ran and passed, "
        f"{record.get('skipped', 0)} skipped, {record.get('failed', 0)} failed.\n"
    )


def speed_table(speed: pd.DataFrame) -> str:
    """Per machine, each Fig. 6 net's img/s by step kind, and the graph step over the eager."""
    parts = []
    for machine, rows in _newest(speed, ["machine", "variant", "step"]).groupby("machine"):
        by = rows.pivot_table(index="variant", columns="step", values="images_per_s",
                              sort=False)  # fmt: skip
        main = "graph" if "graph" in by.columns else str(by.columns[0])  # the one runs take
        fast = rows[rows["step"] == main].set_index("variant").reindex(by.index)
        table = pd.DataFrame({
            "net": [paper_name(v) for v in by.index],
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
            f"{'channels_last' if first['channels_last'] else 'NCHW'}, batch "
            f"{first['batch_size']}, torch {first['torch']}, commit {first['git_commit']}; "
            f"{first['iterations']:,} timed steps of the {main} step after warm-up (evaluation: "
            f"one pass over the {first['eval_split']} split):\n\n{markdown_table(table)}\n"
        )
    return "\n".join(parts)


def set_time(projection: dict[str, Any] | None, runs: pd.DataFrame) -> str:
    """The Fig. 6 set's projected wall time beside what its runs took, as a paragraph."""
    lines = set_time_lines(projection, runs)
    return ("The whole Fig. 6 set, each net at its full budget:\n\n" + "\n".join(lines) + "\n"
            if lines else "")  # fmt: skip


def set_time_lines(projection: dict[str, Any] | None, runs: pd.DataFrame) -> list[str]:
    """Bullets: the Fig. 6 set's projected wall time, and what its paper-profile GPU runs took:
    each run's training seconds over the runs that shared its GPU (its share), seed 0 of each
    net."""
    lines: list[str] = []
    if projection is not None:
        at_once = projection.get("runs_at_once", 1)
        for key, minutes in projection.items():
            if key.endswith("_total_minutes"):
                step = key.removesuffix("_total_minutes")
                shared = (f", {minutes / projection.get('combined_speedup', 1):.1f} min "
                          f"{at_once} at once" if at_once > 1 else "")  # fmt: skip
                nets, missing = projection.get("nets", 0), projection.get(f"{step}_unmeasured", [])
                count = (f"{nets - len(missing)} of {nets} nets: "
                         f"{', '.join(map(paper_name, missing))} not measured" if missing
                         else f"{nets} nets")  # fmt: skip
                lines.append(
                    f"- projected, {step} step: {minutes:.1f} min one at a time{shared}"
                    f" ({count}; {projection.get('machine')})"
                )
    done = members(runs, "degradation")
    done = done[(done["profile"] == "paper") & (done["device"] == "cuda") & (done["seed"] == 0)
                & (done["status"] == "complete")]  # fmt: skip
    if not done.empty:
        share = (done["train_s"] / done["runs_at_once"].clip(lower=1)).sum() / 60
        nets = ", ".join(paper_name(v) for v in done["variant"])
        lines.append(
            f"- measured: {share:.1f} min of GPU time for the {len(done)} nets trained so far "
            f"(seed 0: {nets}), each run's training seconds over the runs that shared its GPU "
            f"({', '.join(sorted(set(done['machine'])))}; `results/{store.RUNS_FILE}`)"
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
        parts.append(f"Several runs at once on {machine} ({paper_name(first['variant'])}, "
                     f"`device/concurrency_gpu.py`, `results/{runbook.CONCURRENCY_FILE}`):\n\n"
                     f"{markdown_table(shown)}\n")  # fmt: skip
    return "\n".join(parts)


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def gpu_section(results: Path, *, runbook_at: str = RUNBOOK) -> Section:
    """The section; `runbook_at` names the runbook where nothing is measured yet (the README's
    own blocks link to its section instead)."""
    speed = read_table(results / runbook.SPEED_FILE, runbook.SPEED)
    concurrency = read_table(results / runbook.CONCURRENCY_FILE, runbook.CONCURRENCY)
    runs = read_table(results / store.RUNS_FILE, store.RUNS)
    parts = [
        tests_line(_json(results / runbook.TESTS_FILE)),
        "" if speed.empty else (f"Training img/s of the Fig. 6 nets (`device/train_gpu.py`, "
                                f"`results/{runbook.SPEED_FILE}`):\n\n{speed_table(speed)}"),
        set_time(_json(results / runbook.PROJECTION_FILE), runs),
        concurrency_table(concurrency),
    ]  # fmt: skip
    body = "\n".join(p for p in parts if p)
    if not body:
        body = (
            f"Not measured yet: no GPU has run the runbook, {runbook_at}. It writes the GPU "
            f"tests' outcome (`results/{runbook.TESTS_FILE}`), the Fig. 6 nets' training "
            f"img/s (`results/{runbook.SPEED_FILE}`), the set's projected time "
            f"(`results/{runbook.PROJECTION_FILE}`) and runs at once "
            f"(`results/{runbook.CONCURRENCY_FILE}`), and this section shows them.\n"
        )
    return Section(f"{TITLE}\n\n{body}")
