"""Several training runs at once in one process, each on its own CUDA stream.

A CIFAR net at batch 128 leaves most of a large GPU idle even with its step replayed as one CUDA
graph: its kernels are too small to fill the SMs. Without MPS, kernels of different processes
never run at the same time on one GPU (it time-slices between their contexts); kernels on
different streams of one process do. So `train_together` keeps up to `jobs` runs in flight and
issues one step of each in turn, each on its run's stream. The host waits for the device only
at a run's own evaluations, and then for that run's stream alone (Trainer.synchronize).

Each run stays what it is alone: its own Trainer, data on the device, CUDA graph, batches (a
function of its seed and iteration), checkpoints and run directory, and env.json records how
many ran at once (`runs_at_once`: the run's images/s are then its share). What runs in one
process share is process-wide state: the cuDNN autotuner's choices and the TF32 flags. So runs
whose precisions set those flags differently are never in flight together, and a run's first
step and first evaluation (where the autotuner times kernels) run on an otherwise idle GPU, as
they would alone. On a CPU there are no streams: the runs take turns on the same cores, each
ending exactly as it would alone, which is how the GPU path is tested without a GPU.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ablations.cluster import distributed
from ablations.config import TrainConfig, resolve_device
from ablations.registry import AblationsError
from ablations.train.records import RunRecord
from ablations.train.run import open_run
from ablations.train.trainer import Trainer

DataFor = Callable[[TrainConfig], str | Path | None]


@dataclass
class _InFlight:
    """A run being trained, and the stream its work is issued on (None on a CPU)."""

    trainer: Trainer
    stream: torch.cuda.Stream | None
    position: int  # its progress bar's line
    # Work this run has not launched yet in this process: its first step, its first evaluation.
    firsts: set[str] = field(default_factory=lambda: {"step", "evaluation"})

    def step(self) -> dict[str, Any] | None:
        """One iteration; at the end of an interval, its report, evaluation and checkpoint.
        Returns the summary when the run has ended."""
        t = self.trainer
        with on(self.stream):
            if t.state.iteration < t.interval_end:
                with self._alone("step"):
                    t.advance(t.batches, until=t.state.iteration + 1, progress=t.progress)
            if t.state.iteration < t.interval_end:
                return None
            with self._alone("evaluation"):
                return t.end_interval()

    @contextlib.contextmanager
    def _alone(self, first: str) -> Iterator[None]:
        """The first time a run launches `first`, cuDNN's autotuner (cudnn.benchmark) times the
        kernels for its shapes. It does so on an otherwise idle GPU, as it would alone, so that
        the kernels it picks, and so the run's numbers, do not depend on what runs beside it."""
        if self.stream is None or first not in self.firsts:
            yield
            return
        self.firsts.discard(first)
        torch.cuda.synchronize(self.stream.device)  # the other runs' queued work ends first
        yield
        self.stream.synchronize()


def on(stream: torch.cuda.Stream | None) -> contextlib.AbstractContextManager[Any]:
    """Issue the work in this block on `stream` (None: as it is, on a CPU)."""
    return contextlib.nullcontext() if stream is None else torch.cuda.stream(stream)


def stream_for(device: torch.device) -> torch.cuda.Stream | None:
    """A stream for a run, ordered after the work already issued on the current one (anything
    made there before the run opens is ready before the run reads it); None on a CPU."""
    if device.type != "cuda":
        return None
    stream = torch.cuda.Stream(device=device)
    stream.wait_stream(torch.cuda.current_stream(device))
    return stream


def tf32_group(config: TrainConfig) -> bool:
    """The process-wide flags a run sets (ablations.train.steps.set_tf32): runs in flight
    together must agree on them."""
    return config.precision == "tf32"


def train_together(
    configs: Sequence[TrainConfig], *, jobs: int, out: Path,
    data: DataFor | str | Path | None = None, device: str | torch.device | None = None,
    deadline: float | None = None, show_progress: bool = True,
    on_record: Callable[[RunRecord], None] | None = None,
) -> list[RunRecord]:  # fmt: skip
    """Train `configs`, up to `jobs` at once, in order: a slot freed by an ended run takes the
    next config. Each run is what `train` makes of it: resumed from its checkpoint, returned as
    stored if finished, stopped at its first checkpoint past `deadline` (after which no new run
    starts, unless none has started yet: every call makes progress). `data` is a path, or a
    function giving each config's. Returns the records in the order the runs ended, and hands
    each to `on_record` as it ends (the pipeline records it in the results at once)."""
    if jobs < 1:
        raise AblationsError(f"jobs must be >= 1, got {jobs}")
    if distributed.active():
        raise AblationsError("runs at once share one process and GPU; under torchrun train one")
    data_for: DataFor = data if callable(data) else (lambda _config: data)
    queue = list(configs)
    flying: list[_InFlight] = []
    records: list[RunRecord] = []
    started = False

    def late() -> bool:
        return deadline is not None and started and time.monotonic() >= deadline

    def ended(record: RunRecord) -> None:
        records.append(record)
        if on_record is not None:
            on_record(record)

    try:
        while queue or flying:
            while queue and len(flying) < jobs and not late() and _fits(queue[0], flying):
                config = queue.pop(0)
                opened = _open(config, out=out, data=data_for(config), device=device,
                               deadline=deadline, show_progress=show_progress, jobs=jobs,
                               position=_free_line(flying))  # fmt: skip
                if isinstance(opened, RunRecord):
                    ended(opened)
                    continue
                flying.append(opened)
                started = True
            if not flying and late():
                break  # the rest stay queued: the next call starts them
            for run in list(flying):
                summary = run.step()
                if summary is not None:
                    flying.remove(run)
                    run.trainer.progress.close()
                    ended(run.trainer.record(summary))
    finally:
        for run in flying:
            run.trainer.progress.close()
    return records


def _free_line(flying: list[_InFlight]) -> int:
    taken = {r.position for r in flying}
    return next(i for i in range(len(flying) + 1) if i not in taken)


def _fits(config: TrainConfig, flying: list[_InFlight]) -> bool:
    return all(tf32_group(r.trainer.config) == tf32_group(config) for r in flying)


def _open(
    config: TrainConfig, *, out: Path, data: str | Path | None, device: str | torch.device | None,
    deadline: float | None, show_progress: bool, jobs: int, position: int,
) -> _InFlight | RunRecord:  # fmt: skip
    """The run opened on a stream of its own (its data, model and optimizer state are made
    there, so its first steps need not wait for another stream), or its finished record."""
    dev = resolve_device(config.device if device is None else device)
    stream = stream_for(dev)
    with on(stream):
        opened = open_run(config, out=out, data=data, device=dev, show_progress=show_progress,
                          deadline=deadline, runs_at_once=jobs)  # fmt: skip
        if isinstance(opened, RunRecord):
            return opened
        opened.begin(position=position)
    return _InFlight(opened, stream, position)
