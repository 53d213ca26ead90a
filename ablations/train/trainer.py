"""The training loop of one run (`Trainer`): its steps, evaluations, checkpoints and final
record (its summary: ablations.train.summary). ablations.train.run opens a run and runs it;
ablations.gpu.streams runs several at once.

The hot loop (`Trainer.advance`) never waits for the device: losses and errors accumulate
there, the learning rate and the warm-up's end are decided there (ablations.train.schedule),
and the host reads them only every `eval_every` iterations (`end_interval`), where the run also
evaluates, with the eager model in eval mode, and saves a checkpoint. On a GPU the step is
replayed as one CUDA graph (ablations.gpu.graph.GraphStep).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ablations import rundir
from ablations.cluster import distributed
from ablations.config import TrainConfig, check_device
from ablations.data.loader import Views
from ablations.data.prepare import RunData
from ablations.progress import TrainProgress
from ablations.train import resume
from ablations.train.evaluation import Metrics, evaluate_shares
from ablations.train.records import RunRecord, crop_prefix, curves_frame, eval_rows, metric_rows
from ablations.train.resume import State
from ablations.train.schedule import Schedule, Tally
from ablations.train.steps import TrainStep, fused_optimizer, resolve_step, step_of_kind, tf32_flags
from ablations.train.summary import ended_summary, outcome, stopped_summary
from ablations.weights.finetune import build_model, train_mode


class Trainer:
    """One run: the loop, its reports, checkpoints and the final record."""

    runs_at_once = 1  # runs trained beside this one in its process (ablations.gpu.streams)

    def __init__(
        self, config: TrainConfig, data: RunData, *, directory: Path, device: torch.device,
        on_iteration: Callable[[int], None] | None = None, show_progress: bool = True,
        deadline: float | None = None,
    ) -> None:  # fmt: skip
        check_device(config, device)
        self.config, self.data, self.dir, self.device = config, data, directory, device
        self.on_iteration = on_iteration
        self.show_progress = show_progress and distributed.is_main()
        self.deadline = deadline  # time.monotonic(): stop at the first checkpoint after it
        self.iterations, self.milestones, self.eval_every = config.schedule(
            data.train.steps_per_epoch
        )
        self.model, self.started = build_model(config, data, device, runs_dir=directory.parent)
        fused = fused_optimizer(device)
        self.schedule = Schedule(
            config, self.milestones, device=device, dtype=torch.float32 if fused else torch.float64
        )
        self.tally = Tally(device)
        # Under torchrun the step trains a DDP wrap; self.model stays the plain module (its
        # state_dict is what checkpoints hold, for any world size) and evaluates eagerly.
        trained = distributed.wrap(
            self.model, sync_bn=distributed.check_world(config), device=device
        )
        self.train_step = TrainStep(
            trained, device=device, precision=config.precision, compile=config.compile,
            lr=self.schedule.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            optimizer=config.optimizer, fused=fused,
        )  # fmt: skip
        self.step_kind, self.step_note = resolve_step(
            config.step, device=device, precision=config.precision, compile=config.compile,
            ddp=distributed.active(),
        )  # fmt: skip
        self.step = step_of_kind(
            self.whole_step, self.step_kind, train=self.train_step, on_fallback=self.fell_back
        )
        self.state = State()
        self.schedule.prepare(0)

    def whole_step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """What one iteration runs on the device (all of it captured when the step is a graph):
        this iteration's lr, the training step, and the running sums."""
        self.schedule.select()
        loss, logits = self.train_step(x, y)
        self.schedule.observe(self.tally.add(loss, logits, y))
        return loss, logits

    def fell_back(self, note: str) -> None:
        self.step_kind, self.step_note = "eager", note
        print(f"[{self.label()}] {note}", file=sys.stderr, flush=True)

    def execution(self) -> dict[str, Any]:
        """How this start runs, for env.json (the config holds what was asked for)."""
        return {"step": self.step_kind, "step_note": self.step_note,
                "fused_optimizer": self.train_step.fused, "runs_at_once": self.runs_at_once,
                **tf32_flags()}  # fmt: skip

    # -- checkpoints -------------------------------------------------------------------------
    def restore(self) -> None:
        """Resume from the run's checkpoint, if it has one (ablations.train.resume)."""
        state = resume.load_checkpoint(
            self.dir, model=self.model, step=self.train_step, device=self.device
        )
        if state is None:
            return
        self.state = state
        self.schedule.load(state.warmup_end, state.warmup_window)
        self.schedule.prepare(state.iteration)

    def save_checkpoint(self) -> None:
        if distributed.is_main():
            resume.save_checkpoint(
                self.dir, model=self.model, step=self.train_step, state=self.state
            )

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train to the end (or to divergence, or to the first checkpoint past the deadline);
        returns the summary."""
        self.begin()
        with self.progress:
            while True:
                self.advance(self.batches, until=self.interval_end, progress=self.progress)
                summary = self.end_interval()
                if summary is not None:
                    return summary

    def begin(self, *, position: int | None = None) -> None:
        """Ready the loop at the run's current iteration: its batches, the model's mode, the
        progress display (`position`: its line among several runs' bars)."""
        self.batches = self.data.train.batches(self.state.iteration)
        train_mode(self.model, freeze=self.config.freeze)
        self.progress = TrainProgress(
            total=self.iterations, initial=self.state.iteration, desc=self.label(),
            enabled=self.show_progress, position=position,
        )  # fmt: skip
        self._start_interval()

    def boundary(self) -> int:
        """The iteration the current interval ends at: the next evaluation, or the end."""
        next_eval = (self.state.iteration // self.eval_every + 1) * self.eval_every
        return min(next_eval, self.iterations)

    def end_interval(self) -> dict[str, Any] | None:
        """At a boundary: wait for the interval's steps, report and evaluate, checkpoint; the
        summary if the run ended here (complete, diverged, or stopped by the deadline)."""
        state = self.state
        if state.iteration > self.interval_from:  # (none on a run resumed at its very end)
            self.synchronize()
            elapsed = time.perf_counter() - self.interval_start
            state.train_s += elapsed
            state.warmup_end, state.warmup_window = self.schedule.read()
            stats, finite = self.report(elapsed=elapsed)
            self.tally.reset()
            self.progress.report(state.iteration, stats)
            if not finite:
                return self.finish(diverged=True)
            self.save_checkpoint()
            if self.past_deadline() and state.iteration < self.iterations:
                return stopped_summary(
                    self.config, state, planned=self.iterations, execution=self.execution()
                )
        if state.iteration >= self.iterations:
            return self.finish(diverged=False)
        self._start_interval()
        return None

    def _start_interval(self) -> None:
        self.interval_from, self.interval_end = self.state.iteration, self.boundary()
        self.interval_start = time.perf_counter()

    def advance(
        self, batches: Iterator[tuple[Tensor, Tensor]], *, until: int,
        progress: TrainProgress | None = None,
    ) -> None:  # fmt: skip
        """The hot loop, to iteration `until`. It reads nothing from the device: every value it
        decides on is a host integer or stays on the device (tests/train/test_run.py patches every
        host read to raise around it)."""
        state = self.state
        while state.iteration < until:
            self.schedule.prepare(state.iteration)
            x, y = next(batches)
            self.step(x, y)
            state.iteration += 1
            self.tally.count(len(y))
            self.schedule.after_step(state.iteration, len(y))
            if progress is not None:
                progress.advance()
            if self.on_iteration is not None:
                self.on_iteration(state.iteration)

    def past_deadline(self) -> bool:
        """Whether to stop at this checkpoint. Across processes any rank past its deadline
        stops them all: a rank that went on alone would wait forever in its next collective."""
        if self.deadline is None:  # the same on every rank: no collective needed
            return False
        return bool(distributed.max_all(int(time.monotonic() >= self.deadline)))

    def record(self, summary: dict[str, Any]) -> RunRecord:
        return RunRecord(self.dir, self.config, summary, curves_frame(self.state.rows))

    def label(self) -> str:
        """The progress line's name; a recipe's says its profile (a reduced budget shows)."""
        c = self.config
        if c.recipe is None:
            return f"{c.variant} s{c.seed}"
        return f"{c.recipe}{'-' + c.arm if c.arm else ''} [{c.profile}] s{c.seed}"

    def synchronize(self) -> None:
        """Wait for this run's steps: its stream's work (the current stream, on which the step,
        its graph and its batches run), not other runs' streams (ablations.gpu.streams)."""
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()

    def report(self, *, elapsed: float) -> tuple[dict[str, str], bool]:
        """Curve rows for the interval just ended, the progress line's statistics, and whether
        the training loss is still finite."""
        c, state = self.config, self.state
        loss, error = self.tally.read()
        lr = self.schedule.lr_of(state.iteration - 1, state.warmup_end)
        rate = self.tally.seen / max(elapsed, 1e-9)
        state.rows += metric_rows(state.iteration, "train", loss=loss, error=error, lr=lr,
                            images_per_s=rate, train_s=state.train_s)  # fmt: skip
        stats = {"loss": f"{loss:.3f}", "err": f"{error:.1%}", "lr": f"{lr:g}"}
        if not math.isfinite(loss):
            return stats, False
        split = c.eval_split
        metrics = self.evaluate(split)
        state.rows += eval_rows(state.iteration, split, metrics, top5=self.data.top5)
        self.keep_best(metrics.error)
        return stats | {split: f"{metrics.error:.1%}", "img/s": f"{rate:.0f}"}, True

    def eval_batches(self, split: str, *, crops: str = "center") -> Iterator[tuple[Views, Tensor]]:
        return self.data.eval_batches(
            split, crops=crops, batch_size=self.config.eval_batch_size,
            channels_last=self.config.channels_last, part=distributed.part(),
        )  # fmt: skip

    def evaluate(self, split: str, *, crops: str = "center") -> Metrics:
        """The eager model on `split` (a compiled forward or a captured graph would recompile
        or replay the training step's shapes and mode). Across processes each rank evaluates
        its share of the images with rank 0's BN statistics, and the sums are added: the
        metrics of the model rank 0 checkpoints, for 1/G of the work per rank."""
        distributed.broadcast_buffers(self.model)
        batches = self.eval_batches(split, crops=crops)
        return evaluate_shares(self.model, batches, precision=self.config.precision)

    def final_evaluations(self) -> None:
        """What is evaluated once, at the end: the test split when the curves were on another,
        and the data's other crop protocols (10-crop, multi-scale) on the curves' split."""
        c, state = self.config, self.state
        if "test" in self.data.splits and c.eval_split != "test":
            state.rows += eval_rows(state.iteration, "test", self.evaluate("test"),
                                    top5=self.data.top5)  # fmt: skip
        for crops in self.data.final_crops:
            metrics = self.evaluate(c.eval_split, crops=crops)
            state.rows += eval_rows(state.iteration, c.eval_split, metrics, top5=self.data.top5,
                                    prefix=crop_prefix(crops))  # fmt: skip

    def keep_best(self, error: float) -> None:
        """best.pt: the weights at the lowest evaluation error so far (tutorials keep these)."""
        if error >= self.state.best_error:
            return
        self.state.best_error = error
        if distributed.is_main():
            resume.save_weights(rundir.best_weights(self.dir), self.model)

    def cost(self) -> dict[str, int]:
        """Params, and fvcore MACs per image at the training input size (batch 1)."""
        from ablations.measure.complexity import model_cost  # fvcore: only once, at the end

        return model_cost(self.model, input_size=int(self.data.record["input_size"]))

    def finish(self, *, diverged: bool) -> dict[str, Any]:
        """Write the final record; a diverged run keeps its curves and says where it stopped."""
        c, state = self.config, self.state
        summary = ended_summary(
            c, state, diverged=diverged, planned=self.iterations, started=self.started,
            steps_per_epoch=self.data.train.steps_per_epoch, step=self.step_kind, cost=self.cost(),
        )  # fmt: skip
        if not diverged:
            self.final_evaluations()
        summary |= outcome(state, diverged=diverged, eval_split=c.eval_split)
        if not distributed.is_main():
            return summary
        if not diverged:
            resume.save_weights(rundir.weights(self.dir), self.model)
        resume.write_curves(self.dir, state.rows)
        rundir.write_summary(self.dir, summary)
        rundir.checkpoint(self.dir).unlink(missing_ok=True)  # a finished run is not resumed
        return summary
