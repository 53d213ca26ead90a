"""Training runner: a `TrainConfig` in, a run directory `<out>/<run_id>/` (ablations.rundir)
and its record out.

`open_run` finds or starts that directory and readies a `Trainer` (ablations.train.trainer,
the loop); `train` runs it. An interrupted run loses at most the iterations since its last
checkpoint; rerunning the same config resumes and ends exactly as an uninterrupted run would
(batches are a pure function of seed and iteration, see ablations.data.loader).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ablations.cluster import distributed
from ablations.config import TrainConfig, check_device, resolve_device
from ablations.data.prepare import RunData, prepare_data
from ablations.train.records import (
    RunRecord,
    check_same_data,
    load_current,
    record_start,
    retire_stale,
    start_run,
)
from ablations.train.steps import set_tf32
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
    """Run `config` to the end in `<out>/<run_id>`, resuming from its checkpoint if there is
    one; a finished run is returned as stored, not recomputed. `device` defaults to the
    config's kind (a cuda config on the first GPU). With a `deadline` (a time.monotonic()
    instant) the run stops at its first checkpoint past it, with status "stopped"."""
    opened = open_run(config, out=out, data=data, device=device, on_iteration=on_iteration,
                      show_progress=show_progress, deadline=deadline)  # fmt: skip
    if isinstance(opened, RunRecord):
        return opened
    return opened.record(opened.run())


def open_run(
    config: TrainConfig, *, out: Path, data: str | Path | None = None,
    device: str | torch.device | None = None, on_iteration: Callable[[int], None] | None = None,
    show_progress: bool = True, deadline: float | None = None, runs_at_once: int = 1,
) -> Trainer | RunRecord:  # fmt: skip
    """A run ready to train (its directory started, its checkpoint restored), or its record if
    it has finished already. `train` runs one; ablations.gpu.streams several at once
    (`runs_at_once`, which env.json records: the run's images/s are then a share)."""
    directory = out / config.run_id
    finished = load_current(directory)  # None also for a stale run, retired below
    if finished is not None:
        return finished
    dev = resolve_device(config.device if device is None else device)
    check_device(config, dev)
    prepared = _prepare(config, data, dev, directory=directory)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    set_tf32(config.precision)
    # The model is built (and a checkpoint to start from loaded) before anything is written,
    # so a bad checkpoint leaves no half-made run directory behind.
    trainer = Trainer(config, prepared, directory=directory, device=dev, on_iteration=on_iteration,
                      show_progress=show_progress, deadline=deadline)  # fmt: skip
    if distributed.is_main():
        start_run(config, directory, prepared)
    trainer.restore()
    trainer.runs_at_once = runs_at_once
    if distributed.is_main():
        record_start(directory, dev, config, prepared, iteration=trainer.state.iteration,
                     execution=trainer.execution())  # fmt: skip
    return trainer


def _prepare(
    config: TrainConfig, data: str | Path | None, device: torch.device, *, directory: Path
) -> RunData:
    """The run's data (problems surface before anything is written): streamed from an index,
    or decoded into arrays; either way the data a half-finished run started on."""
    prepared = prepare_data(config, data, device)
    retire_stale(directory)  # only now: a bad --data leaves a measured run where it was
    check_same_data(directory, str(prepared.record["checksum"]))
    return prepared
