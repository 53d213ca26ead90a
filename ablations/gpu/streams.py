"""Several training runs at once in one process, each on its own CUDA stream: kernels of one
process's streams overlap, filling a GPU that one small net leaves idle. Each run stays what it
is alone (its own Trainer, graph, batches and run directory). On a CPU the runs take turns, each
ending exactly as it would alone, which is how this is tested without a GPU."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ablations import gpu
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
        """One iteration, and at an interval's end its evaluation and checkpoint; the summary
        once the run has ended. The end of the last interval runs alone too: its final
        evaluations (test split, 10-crop, multi-scale) bring new shapes to autotune."""
        t = self.trainer
        with on(self.stream):
            if t.state.iteration < t.interval_end:
                with self._alone("step"):
                    t.advance(t.batches, until=t.state.iteration + 1, progress=t.progress)
            if t.state.iteration < t.interval_end:
                return None
            with self._alone("evaluation", always=t.state.iteration >= t.iterations):
                return t.end_interval()

    @contextlib.contextmanager
    def _alone(self, first: str, *, always: bool = False) -> Iterator[None]:
        """A run's first `first` (or any, with `always`) runs on an otherwise idle GPU: cuDNN's
        autotuner times its kernels then, and the kernels it picks, so the numbers, must not
        depend on other runs."""
        if self.stream is None or not (always or first in self.firsts):
            yield
            return
        self.firsts.discard(first)
        torch.cuda.synchronize(self.stream.device)  # the other runs' queued work ends first
        yield
        self.stream.synchronize()


def on(stream: torch.cuda.Stream | None) -> contextlib.AbstractContextManager[Any]:
    """Issue the work in this block on `stream` (None: as it is, on a CPU)."""
    return contextlib.nullcontext() if stream is None else torch.cuda.stream(stream)


def stream_for(device: torch.device, *, slot: int) -> torch.cuda.Stream | None:
    """The stream of the `slot`th run at once, ordered after the work already issued on the
    current one; None on a CPU. Each slot's stream is made once (ablations.gpu.stream)."""
    if device.type != "cuda":
        return None
    made = gpu.stream(device, f"run {slot}")
    made.wait_stream(torch.cuda.current_stream(device))
    return made


def tf32_group(config: TrainConfig) -> bool:
    """The process-wide TF32 flags a run sets: runs in flight together must agree on them."""
    return config.precision == "tf32"


def beside(flying: TrainConfig, config: TrainConfig) -> bool:
    """Whether `config` may train beside `flying`: the same TF32 flags, and not both compiled
    (dynamo's cache is the process's: each compiled run starts from an empty one)."""
    return tf32_group(flying) == tf32_group(config) and not (flying.compile and config.compile)


def train_together(
    configs: Sequence[TrainConfig], *, jobs: int, out: Path,
    data: DataFor | str | Path | None = None, device: str | torch.device | None = None,
    deadline: float | None = None, show_progress: bool = True,
    on_record: Callable[[RunRecord], None] | None = None,
) -> list[RunRecord]:  # fmt: skip
    """Train `configs` in order, up to `jobs` at once, each as `train` would. Past `deadline`
    no new run starts unless none has yet. `data`: a path, or each config's. Returns the
    records as the runs ended, handing each to `on_record` then."""
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

    def fits(config: TrainConfig) -> bool:
        return all(beside(r.trainer.config, config) for r in flying)

    def ended(record: RunRecord) -> None:
        records.append(record)
        if on_record is not None:
            on_record(record)

    try:
        while queue or flying:
            while queue and len(flying) < jobs and not late() and fits(queue[0]):
                config = queue.pop(0)
                dev = resolve_device(config.device if device is None else device)
                taken = {r.position for r in flying}
                position = min(set(range(len(flying) + 1)) - taken)
                # The run is opened on its slot's stream: its data, model and optimizer state
                # are made there, so its first steps wait for no other stream.
                stream = stream_for(dev, slot=position)
                with on(stream):
                    opened = open_run(config, out=out, data=data_for(config), device=dev,
                                      show_progress=show_progress, deadline=deadline,
                                      runs_at_once=jobs)  # fmt: skip
                    if isinstance(opened, RunRecord):
                        ended(opened)
                        continue
                    opened.begin(position=position)
                flying.append(_InFlight(opened, stream, position))
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
