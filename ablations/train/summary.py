"""What a run's summary (summary.json, and the trainer's return value) says when the run ends:
complete, diverged, or stopped at a checkpoint by a deadline. Pure functions of the run's config
and loop state; ablations.train.trainer runs the final evaluations and writes the files.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ablations.config import TrainConfig
from ablations.train.records import curves_frame, final_metrics
from ablations.train.resume import State


def stopped_summary(
    config: TrainConfig, state: State, *, planned: int, execution: dict[str, Any]
) -> dict[str, Any]:
    """Stopped at a checkpoint by the deadline: nothing is final, rerunning resumes."""
    c = config
    return {"status": "stopped", "run_id": c.run_id, "key": c.key, "variant": c.variant,
            "profile": c.profile, "seed": c.seed, "iterations": state.iteration,
            "planned_iterations": planned, "train_s": state.train_s, **execution}  # fmt: skip


def ended_summary(
    config: TrainConfig, state: State, *, diverged: bool, planned: int, steps_per_epoch: int,
    started: dict[str, Any], step: str, cost: dict[str, int],
) -> dict[str, Any]:  # fmt: skip
    """A complete or diverged run's summary, before its final metrics: what ran, for how long,
    from which start (`started`: the initial weights), with which step, at what cost."""
    c = config
    return {
        "status": "diverged" if diverged else "complete",
        "run_id": c.run_id, "key": c.key, "variant": c.variant, "dataset": c.dataset,
        "profile": c.profile, "seed": c.seed, "recipe": c.recipe, "arm": c.arm,
        "iterations": state.iteration, "planned_iterations": planned,
        "epochs": c.epochs, "steps_per_epoch": steps_per_epoch,
        "warmup_end": state.warmup_end, "train_s": state.train_s, **started,
        "step": step,
        **cost, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


def outcome(state: State, *, diverged: bool, eval_split: str) -> dict[str, Any]:
    """What ends the summary: where a diverged run stopped, or a complete run's final metrics
    from its curves (read after its final evaluations, whose rows they include)."""
    if diverged:
        return {"diverged_at": state.iteration}
    return final_metrics(curves_frame(state.rows), eval_split=eval_split)
