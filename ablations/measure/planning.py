"""The tables that plan training on a machine: each run's training img/s by step kind, the
planned set's projected time, and several runs at once. Each table keeps every measurement
(`created_at` in its key); the report shows the newest of each machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from ablations.config import TrainConfig


# What makes two runs train at the same speed: the seed does not.
SHAPE = ("variant", "batch_size", "precision", "channels_last")


def shape(config: TrainConfig | Mapping[str, Any]) -> tuple[Any, ...]:
    """The columns of SHAPE for a config or a row of STEP_SPEED."""
    if isinstance(config, Mapping):
        return tuple(config[column] for column in SHAPE)
    return tuple(getattr(config, column) for column in SHAPE)


def run_seconds(config: TrainConfig, row: Mapping[str, Any], steps_per_epoch: int) -> float:
    """Wall time of `config`'s full budget from a STEP_SPEED row: its steps and evaluations (the
    final test pass counted twice)."""
    iterations, _, eval_every = config.schedule(steps_per_epoch)
    evals = -(-iterations // eval_every) + 2
    return float(iterations * row["ms_per_step"] / 1e3 + evals * row["eval_s"])


def project(
    rows: pd.DataFrame, configs: Sequence[TrainConfig], steps_per_epoch: Mapping[str, int]
) -> dict[str, Any]:
    """Wall time of every config at its full budget, by step kind, from the measured rows
    (`steps_per_epoch` by run id). A config without a row or epoch length is named in
    `STEP_unmeasured` (by variant) and counted in no total."""
    out: dict[str, Any] = {"runs": len(configs)}
    for step, table in rows.groupby("step"):
        newest = {shape(r): r for r in table.sort_values("created_at").to_dict("records")}
        seconds = {c.run_id: run_seconds(c, newest[shape(c)], steps_per_epoch[c.run_id])
                   for c in configs
                   if shape(c) in newest and c.run_id in steps_per_epoch}  # fmt: skip
        out[f"{step}_seconds"] = seconds
        out[f"{step}_total_minutes"] = sum(seconds.values()) / 60
        unmeasured = [c.variant for c in configs if c.run_id not in seconds]
        if unmeasured:
            out[f"{step}_unmeasured"] = list(dict.fromkeys(unmeasured))
    return out


def best_runs_at_once(table: pd.DataFrame, machine: str) -> tuple[int, float]:
    """The runs at once as streams (`ablate run --jobs K`) of the highest combined img/s on
    `machine`, where it beats one run alone by 10%, and its rate over one run's; else (1, 1.0)."""
    mine = table[(table["method"] == "streams") & (table["machine"] == machine)]
    rates = mine.sort_values("created_at").groupby("jobs")["images_per_s"].last()
    if 1 not in rates.index:
        return 1, 1.0
    best = int(rates.idxmax())
    speedup = float(rates[best] / rates[1])
    return (best, speedup) if speedup >= 1.1 else (1, 1.0)


def describe(projection: Mapping[str, Any], *, missing: set[str]) -> list[str]:
    """Each step kind's projected total, one at a time and at the best number at once, and
    the part still to train (`missing`: run ids), as terminal lines."""
    lines = []
    jobs, speedup = projection.get("runs_at_once", 1), projection.get("combined_speedup", 1.0)
    for key, minutes in projection.items():
        if not key.endswith("_total_minutes"):
            continue
        step = key.removesuffix("_total_minutes")
        seconds: dict[str, float] = projection[f"{step}_seconds"]
        left = sum(s for run, s in seconds.items() if run in missing)
        at_once = f", {span(60 * minutes / speedup)} {jobs} at once" if jobs > 1 else ""
        unmeasured = projection.get(f"{step}_unmeasured", [])
        lines.append(
            f"{step} step: {span(60 * minutes)} for {len(seconds)} run(s) one at a time"
            f"{at_once}; {span(left)} of it still to train"
            + (f"; not measured: {', '.join(unmeasured)}" if unmeasured else "")
        )
    return lines or ["nothing measured yet"]


def span(seconds: float) -> str:
    """A duration as people read it: 42 s, 3.5 min, 2.1 h."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"
