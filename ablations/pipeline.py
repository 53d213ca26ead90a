"""`ablate run` after planning (ablations.tasks): which tasks are done; run the missing ones (to
a time limit: each run stops at a checkpoint, and the same command resumes); record finished runs
in runs.csv."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from ablations import rundir, versions
from ablations.config import TrainConfig
from ablations.measure import complexity, throughput
from ablations.profiles import get_profile
from ablations.progress import progress
from ablations.registry import get_variant, list_variants
from ablations.results import collect, provenance, schemas
from ablations.results.table import read_table, upsert
from ablations.tasks import Context, Task, data_for, train_command
from ablations.train import records

# --- what is done ---------------------------------------------------------------------------


def is_done(task: Task, ctx: Context) -> bool:
    if task.kind == "train":
        assert task.config is not None
        return _current(ctx.runs_dir / task.config.run_id)
    if task.kind == "responses":
        measured = _measured(ctx)
        return all(c.run_id in measured for c in _finished(task.configs, ctx))
    if task.kind == "throughput":
        return not _unmeasured(task.settings, ctx)
    stored = read_table(ctx.results / schemas.COMPLEXITY_FILE, schemas.COMPLEXITY)
    variants = [get_variant(n) for n in list_variants()]
    return len(complexity.reusable(variants, stored)) == len(variants)


def state(task: Task, ctx: Context) -> str:
    """ "done", "missing", or for a training run of an older trainer "stale (trainer vN, now
    vM)" (rerunning it moves the old run aside, see ablations.train.records.set_aside)."""
    if task.kind == "train" and task.config is not None:
        stale = records.stale_label(ctx.runs_dir / task.config.run_id)
        if stale is not None:
            return stale
    return "done" if is_done(task, ctx) else "missing"


def _measured(ctx: Context) -> set[str]:
    """Runs whose layer responses were measured on the current trainer's weights."""
    table = schemas.load(ctx.results)[2]
    return set(table.loc[table["trainer_version"] == versions.TRAINER_VERSION, "run_id"])


def _current(run: Path) -> bool:
    """Whether the run finished (complete or diverged) with the current trainer."""
    return rundir.is_finished(run) and records.stale_label(run) is None


def _finished(configs: tuple[TrainConfig, ...], ctx: Context) -> list[TrainConfig]:
    """The configs whose runs are complete (a diverged run has no final model) and current."""
    runs = [(c, ctx.runs_dir / c.run_id) for c in configs]
    return [c for c, run in runs if _current(run) and rundir.summary(run)["status"] == "complete"]


def _unmeasured(settings: tuple[throughput.Setting, ...], ctx: Context) -> list[throughput.Setting]:
    """Settings with no row for this machine yet."""
    table = read_table(ctx.results / schemas.THROUGHPUT_FILE, schemas.THROUGHPUT)
    mine = table[table["machine"] == provenance.device_name(ctx.device)]
    have = {throughput.setting_key(row) for row in mine.to_dict("records")}
    return [s for s in settings if throughput.setting_key(asdict(s)) not in have]


# --- running --------------------------------------------------------------------------------


def _run(task: Task, ctx: Context) -> None:
    if task.kind == "train":
        from ablations.train import run

        assert task.config is not None
        record = run.train(
            task.config, out=ctx.runs_dir, data=data_for(task.config, ctx), device=ctx.device,
            deadline=ctx.deadline,
        )  # fmt: skip
        _record_run(record, task, ctx)
    elif task.kind == "responses":
        from ablations.measure import responses

        measured = _measured(ctx)
        todo = [c for c in _finished(task.configs, ctx) if c.run_id not in measured]
        for config in progress(todo, desc="responses", label=lambda c: c.run_id):
            rows = responses.responses_for_run(  # one decoded copy per process (load_dataset's)
                ctx.runs_dir / config.run_id, data=ctx.data, device=ctx.device,
                images=get_profile(config.profile).response_images,
            )  # fmt: skip
            upsert(ctx.results / schemas.RESPONSES_FILE, rows, schemas.RESPONSES)
    elif task.kind == "throughput":
        throughput.run(_unmeasured(task.settings, ctx), out=ctx.results / schemas.THROUGHPUT_FILE)
    else:
        complexity.update(ctx.results / schemas.COMPLEXITY_FILE, list_variants())


def _record_run(record: records.RunRecord, task: Task, ctx: Context) -> None:
    """A run that ended (not one stopped at the time limit) joins its experiments and runs.csv."""
    if record.status != "stopped":
        rundir.add_experiments(record.run_dir, task.experiments)
        collect.record(record.run_dir, ctx.results)


def _train_together(
    tasks: list[Task], ctx: Context, *, jobs: int, say: Callable[[str], None]
) -> None:  # fmt: skip
    """The training tasks, `jobs` runs at once in this process (ablations.gpu.streams);
    each is recorded as it ends, as one after another would be."""
    from ablations.gpu import streams

    by_run = {t.config.run_id: t for t in tasks if t.config is not None}

    def ended(record: records.RunRecord) -> None:
        say(f"[ablate] {record.config.run_id}: {record.status}")
        _record_run(record, by_run[record.config.run_id], ctx)

    say(f"[ablate] training {len(by_run)} run(s), {jobs} at once in this process")
    streams.train_together(
        [t.config for t in tasks if t.config is not None], jobs=jobs, out=ctx.runs_dir,
        data=lambda config: data_for(config, ctx), device=ctx.device, on_record=ended,
        deadline=ctx.deadline,
    )  # fmt: skip


def mark_done(task: Task, ctx: Context) -> None:
    """A finished run that this plan also needs (trained by a dispatched `ablate train`, or by
    another experiment) is marked as a member and its runs.csv row brought up to date."""
    if task.kind != "train" or task.config is None:
        return
    run_dir = ctx.runs_dir / task.config.run_id
    if rundir.add_experiments(run_dir, task.experiments):
        collect.record(run_dir, ctx.results)


def record_unrecorded(ctx: Context) -> int:
    """Finished run directories missing from runs.csv (a run finished by `ablate train`, or
    copied from another machine) are added; returns how many."""
    runs = read_table(ctx.results / schemas.RUNS_FILE, schemas.RUNS)
    fresh = [d for d in rundir.finished_runs(ctx.runs_dir) if d.name not in set(runs["run_id"])]
    for directory in fresh:
        collect.record(directory, ctx.results)
    return len(fresh)


def execute(
    tasks: list[Task], ctx: Context, *, log: Callable[[str], None] | None = None, jobs: int = 1
) -> dict[str, int]:
    """Run every task that is not done, in order, logging one line per task. With `jobs` > 1
    the missing training runs go first, that many at once (one CUDA stream each on a GPU).
    Past `ctx.deadline` no task starts (the first always does: every call makes progress);
    the counts say how many are `left` for the next call."""
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    counts = {"done": 0, "ran": 0, "left": 0}
    trained: set[int] = set()  # id() of the tasks trained together
    started = False
    if jobs > 1:
        missing = [t for t in tasks if t.kind == "train" and not is_done(t, ctx)]
        _train_together(missing, ctx, jobs=jobs, say=say)
        finished = sum(is_done(t, ctx) for t in missing)
        counts["ran"], counts["left"] = finished, len(missing) - finished
        trained, started = {id(t) for t in missing}, bool(missing)
    for i, task in enumerate(tasks, start=1):
        prefix = f"[ablate] {i}/{len(tasks)} {'/'.join(task.experiments)}: {task.label}"
        if id(task) in trained:  # trained above
            continue
        if is_done(task, ctx):
            counts["done"] += 1
            say(f"{prefix}: done")
            mark_done(task, ctx)
            continue
        if started and ctx.deadline is not None and time.monotonic() >= ctx.deadline:
            counts["left"] += 1
            say(f"{prefix}: not started (time limit)")
            continue
        say(f"{prefix}: running")
        _run(task, ctx)
        started = True
        stopped = task.kind == "train" and ctx.deadline is not None and not is_done(task, ctx)
        counts["left" if stopped else "ran"] += 1
        if stopped:
            say(f"{prefix}: stopped at a checkpoint (time limit)")
    counts["recorded"] = record_unrecorded(ctx)
    return counts


def status_table(tasks: list[Task], ctx: Context) -> pd.DataFrame:
    """One row per task: kind, experiments, label, done, state (done, missing or stale ...),
    and the command for a missing or stale run."""
    rows: list[dict[str, Any]] = []
    for task in tasks:
        now = state(task, ctx)
        config = None if now == "done" else task.config  # training tasks have a config
        command = "" if config is None else train_command(config, results=ctx.results)
        rows.append({"kind": task.kind, "experiments": ",".join(task.experiments),
                     "task": task.label, "done": now == "done", "state": now,
                     "command": command})  # fmt: skip
    return pd.DataFrame(rows)
