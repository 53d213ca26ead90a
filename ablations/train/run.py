"""A `TrainConfig` in, a run directory `<out>/<run_id>/` (ablations.rundir) and its record out.
A rerun resumes from the last checkpoint. On a CPU it ends exactly as an uninterrupted run would;
on a GPU the same up to cuDNN's kernel choice, which the new process autotunes again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ablations.cluster import distributed
from ablations.config import TrainConfig, check_device, resolve_device
from ablations.data.prepare import prepare_data
from ablations.train import records
from ablations.train.records import RunRecord
from ablations.train.steps import fresh_dynamo, set_tf32
from ablations.train.trainer import Trainer

__all__ = ["Trainer", "open_run", "train"]


def train(
    config: TrainConfig,
    *,
    out: Path = Path("results/runs"),
    data: str | Path | None = None,
    device: str | torch.device | None = None,
    on_iteration: Callable[[int], None] | None = None,
    show_progress: bool = True,
    deadline: float | None = None,
) -> RunRecord:
    """Run `config` to the end in `<out>/<run_id>`, resuming from its checkpoint; a finished run
    is returned as stored. `device` defaults to the config's. With a `deadline` (a
    time.monotonic() instant) the run stops at its first checkpoint past it, "stopped"."""
    opened = open_run(config, out=out, data=data, device=device, on_iteration=on_iteration,
                      show_progress=show_progress, deadline=deadline)  # fmt: skip
    return opened if isinstance(opened, RunRecord) else opened.record(opened.run())


def open_run(
    config: TrainConfig, *, out: Path, data: str | Path | None = None,
    device: str | torch.device | None = None, on_iteration: Callable[[int], None] | None = None,
    show_progress: bool = True, deadline: float | None = None, runs_at_once: int = 1,
) -> Trainer | RunRecord:  # fmt: skip
    """A run ready to train (directory started, checkpoint restored), or its finished record.
    `runs_at_once` (ablations.gpu.streams) goes to env.json: the run's images/s are a share."""
    directory = out / config.run_id
    finished = records.load_current(directory)  # None also for a stale run, retired below
    if finished is not None:
        return finished
    dev = resolve_device(config.device if device is None else device)
    check_device(config, dev)
    prepared = prepare_data(config, data, dev)  # data problems surface before any write
    records.retire_stale(directory)
    records.check_same_data(directory, str(prepared.record["checksum"]))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    set_tf32(config.precision)
    if config.compile:  # each compiled run from an empty cache: its kernels its own
        fresh_dynamo()
    # The model is built (and a checkpoint to start from loaded) before anything is written,
    # so a bad checkpoint leaves no half-made run directory behind.
    trainer = Trainer(config, prepared, directory=directory, device=dev, on_iteration=on_iteration,
                      show_progress=show_progress, deadline=deadline,
                      runs_at_once=runs_at_once)  # fmt: skip
    if distributed.is_main():
        records.start_run(config, directory, prepared)
    trainer.restore()
    if distributed.is_main():
        records.record_start(directory, dev, config, prepared, iteration=trainer.state.iteration,
                             execution=trainer.execution())  # fmt: skip
    return trainer
