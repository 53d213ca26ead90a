"""`ablate run --executor local|slurm` and `ablate status`: the pipeline's training tasks
submitted through ablations.cluster (submitit), from a snapshot of the code, and their states
read back from the run directories; the tasks that read finished runs then run here
(ablations.pipeline.execute)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd

from ablations.cluster import LaunchOptions, executors
from ablations.cluster.executors import JobSpec
from ablations.cluster.jobs import TaskStatus, task_status
from ablations.cluster.snapshot import take
from ablations.pipeline import Context, Task, data_for, execute, mark_done, record_unrecorded


def execute_submitted(
    tasks: list[Task], ctx: Context, *, options: LaunchOptions,
    log: Callable[[str], None] | None = None,
) -> dict[str, int]:  # fmt: skip
    """Submit the training runs that are neither done nor queued/running (a failed or lost one
    is resubmitted and resumes from its checkpoint) to the local or Slurm executor, from a
    snapshot of the code. Local runs are waited for; the other tasks run here once every run
    they read has finished (with Slurm: on a later `ablate run`)."""
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    train = [t for t in tasks if t.kind == "train" and t.config is not None]
    states = {t.label: _launch_state(t, ctx) for t in train}
    todo = [t for t in train if states[t.label] in ("missing", "failed")]
    busy = [t for t in train if states[t.label] in ("pending", "running")]
    counts = {"done": len(train) - len(todo) - len(busy), "submitted": len(todo),
              "busy": len(busy), "ran": 0}  # fmt: skip
    for task in busy:
        say(f"[ablate] {task.label}: {states[task.label]} (submitted earlier; not resubmitted)")
    local = options.executor != "slurm"
    if todo:
        snap = take(ctx.results)
        specs = [JobSpec(t.config, ctx.runs_dir, _data_str(t, ctx)) for t in todo]  # type: ignore[arg-type]
        say(f"[ablate] submitting {len(specs)} run(s) to {options.executor} "
            f"(code snapshot {snap.tag}, commit {snap.commit})")  # fmt: skip
        if local:
            executors.run_local(specs, options=options, device=ctx.device.type, snapshot=snap,
                                log=say)  # fmt: skip
        else:
            executors.submit_slurm(specs, options=options, results=ctx.results, snapshot=snap,
                                   log=say)  # fmt: skip
    if local:
        _wait_for([ctx.runs_dir / t.config.run_id for t in busy if t.config is not None], say)
    finished = {t.label: _launch_state(t, ctx) == "done" for t in train}
    for task in train:  # membership, as `execute` marks it: the report selects runs by it
        if finished[task.label]:
            mark_done(task, ctx)
    counts["recorded"] = record_unrecorded(ctx)
    unfinished = [t for t in train if not finished[t.label]]
    counts["unfinished"] = len(unfinished)
    if not unfinished:
        rest = [t for t in tasks if t.kind != "train"]
        counts["ran"] = execute(rest, ctx, log=say)["ran"] if rest else 0
    return counts


def _launch_state(task: Task, ctx: Context) -> str:
    assert task.config is not None
    return task_status(ctx.runs_dir / task.config.run_id).state


def _data_str(task: Task, ctx: Context) -> str | None:
    assert task.config is not None
    data = data_for(task.config, ctx)
    return None if data is None else str(data)


def _wait_for(run_dirs: list[Path], say: Callable[[str], None]) -> None:
    """Wait for runs another `ablate run` submitted (still queued or running) to end."""
    while run_dirs:
        time.sleep(executors.POLL_S)
        for run_dir in list(run_dirs):
            status = task_status(run_dir)
            if status.state not in ("pending", "running"):
                run_dirs.remove(run_dir)
                say(f"[ablate] {run_dir.name}: {status.state} {status.detail}".rstrip())


def launch_status(tasks: list[Task], ctx: Context) -> pd.DataFrame:
    """`ablate status`: one row per training run, its state read from its run directory."""
    rows = [
        {"task": t.label, **asdict(task_status(ctx.runs_dir / t.config.run_id))}
        for t in tasks if t.kind == "train" and t.config is not None
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["task", *(f.name for f in fields(TaskStatus))])
