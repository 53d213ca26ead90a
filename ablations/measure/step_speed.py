"""`ablate plan --measure`: a few timed steps of each distinct planned run (its seed aside), with
its own step and the eager one, saved as measured, and the set's projected time. A run this
machine measured at this commit is not measured again, so a cut measurement continues."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
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
from ablations.measure import planning, timed
from ablations.results import provenance, schemas
from ablations.results.table import read_table
from ablations.train.steps import set_tf32
from ablations.train.trainer import Trainer


def ready(
    config: TrainConfig, data: RunData, device: torch.device, scratch: Path, *, warmup: int,
    stream: torch.cuda.Stream | None = None,
) -> tuple[Trainer, Iterator[Any]]:  # fmt: skip
    """A trainer past `warmup` steps (autotuned, graph captured) on `stream`, and its batches."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    set_tf32(config.precision)
    with on(stream):
        trainer = Trainer(config, data, directory=scratch / config.run_id, device=device,
                          show_progress=False)  # fmt: skip
        trainer.model.train()
        batches = data.train.batches(0)
        trainer.advance(batches, until=warmup)
    return trainer, batches


def measure(
    config: TrainConfig, data: RunData, device: torch.device, *, iterations: int, warmup: int
) -> dict[str, Any]:
    """A STEP_SPEED row: img/s of the training loop after `warmup` steps, the time of a pass
    over the split the run evaluates on (the second: the first autotunes), the checkpoint size."""
    with tempfile.TemporaryDirectory() as scratch:
        trainer, batches = ready(config, data, device, Path(scratch), warmup=warmup)
        seconds = timed(lambda: trainer.advance(batches, until=warmup + iterations), device=device)
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
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }  # fmt: skip


def measure_plan(
    configs: Sequence[TrainConfig], *, results: Path, data: DataFor, device: torch.device,
    iterations: int, warmup: int, deadline: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:  # fmt: skip
    """Measure the runs of `configs` not measured here at this commit (each row saved as it is
    measured, none started past `deadline`); write and return the projection."""
    path, machine = results / schemas.STEP_SPEED_FILE, provenance.device_name(device)
    table = read_table(path, schemas.STEP_SPEED)
    here = (table["machine"] == machine) & (table["git_commit"] == provenance.git_commit())
    rows = table[here].to_dict("records")  # measured on this machine at this commit
    done = {(planning.shape(r), r["requested_step"]) for r in rows}  # (shape, step) pairs
    done |= {(planning.shape(r), "eager") for r in rows if r["step"] == "eager"}
    steps_per_epoch: dict[str, int] = {}
    late = False
    for config in configs:
        if config.init_from is not None:
            log(f"[measure] {config.run_id}: not measured (it starts from another run's weights)")
            continue
        shape, own = planning.shape(config), dict.fromkeys((config.step, "eager"))
        todo = [] if late else [s for s in own if (shape, s) not in done]  # own step, and eager
        if not todo and config.epochs is None:
            steps_per_epoch[config.run_id] = 0  # an iteration budget needs no epoch length
            continue
        run_data = prepare_data(config, data(config), device)
        steps_per_epoch[config.run_id] = run_data.train.steps_per_epoch
        for requested in todo:
            if (shape, requested) in done:
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
            append_row(path, row)
            done |= {(shape, requested), (shape, row["step"])}
    table = pd.DataFrame(rows, columns=list(schemas.STEP_SPEED.columns))
    projection = planning.project(table, configs, steps_per_epoch)
    at_once = read_table(results / schemas.RUNS_AT_ONCE_FILE, schemas.RUNS_AT_ONCE)
    jobs, speedup = planning.best_runs_at_once(at_once, machine)
    projection |= {"runs_at_once": jobs, "combined_speedup": speedup, "machine": machine,
                   "git_commit": provenance.git_commit()}  # fmt: skip
    write_json(results / schemas.PROJECTION_FILE, projection)
    return projection


def append_row(path: Path, row: dict[str, Any]) -> None:
    """One row onto the table, as soon as it is measured (a time limit keeps what came before)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)
