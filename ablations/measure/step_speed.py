"""`ablate plan --measure`: a few timed steps of each distinct planned run (its seed aside), with
its own step and the eager one, saved as measured, and the set's projected time from them. A run
this machine measured at this commit is not measured again, so a cut measurement continues."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ablations import rundir
from ablations.config import TrainConfig
from ablations.data.prepare import RunData, prepare_data
from ablations.gpu.streams import DataFor, on
from ablations.io import write_json
from ablations.measure import timed
from ablations.results import provenance, schemas
from ablations.results.table import Schema, read_table, upsert
from ablations.train.steps import fresh_dynamo, set_tf32, timed_warmup
from ablations.train.trainer import Trainer

# What makes two runs train at the same speed: the seed does not.
SHAPE = ("variant", "batch_size", "precision", "channels_last")


def ready(
    config: TrainConfig, data: RunData, device: torch.device, scratch: Path, *, warmup: int,
    stream: torch.cuda.Stream | None = None,
) -> tuple[Trainer, Iterator[Any]]:  # fmt: skip
    """A trainer past its warm-up (autotuned, graph captured) on `stream`, and its batches. The
    warm-up is `warmup` steps, at least GRAPH_WARMUP + 1 for a graph step (`timed_warmup`), so
    the capture is never timed; the timed steps go on from `trainer.state.iteration`."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    set_tf32(config.precision)
    with on(stream):
        trainer = Trainer(config, data, directory=scratch / config.run_id, device=device,
                          show_progress=False)  # fmt: skip
        trainer.model.train()
        batches = data.train.batches(0)
        trainer.advance(batches, until=timed_warmup(trainer.step_kind, warmup))
    return trainer, batches


def measure(
    config: TrainConfig, data: RunData, device: torch.device, *, iterations: int, warmup: int
) -> dict[str, Any]:
    """A STEP_SPEED row: img/s of the training loop after its warm-up (`ready`), the time of a
    pass over the split the run evaluates on (the second: the first autotunes), the checkpoint
    size."""
    if config.compile:  # the runs measured before in this process must not shape this one
        fresh_dynamo()
    with tempfile.TemporaryDirectory() as scratch:
        trainer, batches = ready(config, data, device, Path(scratch), warmup=warmup)
        end = trainer.state.iteration + iterations
        seconds = timed(lambda: trainer.advance(batches, until=end), device=device)
        for _ in range(2):
            start = time.perf_counter()
            trainer.evaluate(config.eval_split)  # the eager model, as training evaluates
            eval_s = time.perf_counter() - start
        trainer.save_checkpoint()
        checkpoint_bytes = rundir.checkpoint(trainer.dir).stat().st_size
    return {
        "variant": config.variant, "requested_step": config.step, "step": trainer.step_kind,
        "step_note": trainer.step_note, "iterations": iterations,
        "batch_size": config.batch_size, "seconds": seconds,
        "ms_per_step": 1e3 * seconds / iterations,
        "images_per_s": iterations * config.batch_size / seconds, "eval_split": config.eval_split,
        "eval_s": eval_s, "checkpoint_bytes": checkpoint_bytes, "precision": config.precision,
        "channels_last": config.channels_last,
        "machine": provenance.device_name(device), "torch": torch.__version__,
        "git_commit": provenance.git_commit(),
        "created_at": now(),
    }  # fmt: skip


def measure_plan(
    configs: Sequence[TrainConfig], *, results: Path, data: DataFor, device: torch.device,
    iterations: int, warmup: int, deadline: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:  # fmt: skip
    """Measure what this machine lacks at this commit, until `deadline`; write the projection."""
    path, machine = results / schemas.STEP_SPEED_FILE, provenance.device_name(device)
    table = read_table(path, schemas.STEP_SPEED)
    here = (table["machine"] == machine) & (table["git_commit"] == provenance.git_commit())
    rows = table[here].to_dict("records")  # measured on this machine at this commit
    done = {(shape(r), r["requested_step"]) for r in rows}  # (shape, step) pairs
    done |= {(shape(r), "eager") for r in rows if r["step"] == "eager"}
    steps_per_epoch: dict[str, int] = {}
    late = False
    for config in configs:
        if config.init_from is not None:
            log(f"[measure] {config.run_id}: not measured (it starts from another run's weights)")
            continue
        run_shape, own = shape(config), dict.fromkeys((config.step, "eager"))
        todo = [] if late else [s for s in own if (run_shape, s) not in done]  # own step, and eager
        if not todo and config.epochs is None:
            steps_per_epoch[config.run_id] = 0  # an iteration budget needs no epoch length
            continue
        run_data = prepare_data(config, data(config), device)
        steps_per_epoch[config.run_id] = run_data.train.steps_per_epoch
        for requested in todo:
            if (run_shape, requested) in done:
                continue  # its own step was the eager one
            if deadline is not None and time.monotonic() >= deadline:
                log(f"[measure] stopped at the time limit, before {config.run_id} ({requested})")
                late = True
                break
            row = measure(replace(config, step=requested), run_data, device,
                          iterations=iterations, warmup=warmup)  # fmt: skip
            log(f"[measure] {config.variant:>10} {row['step']:>5}: {row['images_per_s']:9,.0f} "
                f"img/s {row['ms_per_step']:8.2f} ms/step {row['step_note']}")  # fmt: skip
            rows.append(row)
            append_row(path, row, schemas.STEP_SPEED)
            done |= {(run_shape, requested), (run_shape, row["step"])}
    table = pd.DataFrame(rows, columns=list(schemas.STEP_SPEED.columns))
    projection = project(table, configs, steps_per_epoch)
    at_once = read_table(results / schemas.RUNS_AT_ONCE_FILE, schemas.RUNS_AT_ONCE)
    jobs, speedup = best_runs_at_once(at_once, machine)
    projection |= {"runs_at_once": jobs, "combined_speedup": speedup, "machine": machine,
                   "git_commit": provenance.git_commit()}  # fmt: skip
    write_json(results / schemas.PROJECTION_FILE, projection)
    return projection


def append_row(path: Path, row: dict[str, Any], schema: Schema) -> None:
    """One row into the table, as soon as it is measured (a time limit keeps what came before).
    A row of a stored row's key replaces it, so the table stays readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    upsert(path, pd.DataFrame([row]), schema)


def now() -> str:
    """A row's `created_at`, part of its key: to the millisecond, as two quick measurements of
    one setting are two rows."""
    return pd.Timestamp.now(tz="UTC").isoformat(timespec="milliseconds")


def shape(config: TrainConfig | Mapping[str, Any]) -> tuple[Any, ...]:
    """The columns of SHAPE for a config or a row of STEP_SPEED."""
    fields = config if isinstance(config, Mapping) else vars(config)
    return tuple(fields[column] for column in SHAPE)


def run_seconds(config: TrainConfig, row: Mapping[str, Any], steps_per_epoch: int) -> float:
    """Seconds of `config`'s steps and evaluations (the final test pass twice) at a row's speed."""
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
    """Each step kind's projected total and the part still to train (`missing` run ids)."""
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
