"""The training loop of one run (`Trainer`): steps, evaluations, checkpoints and the summary.
The hot loop never waits for the device: the host reads the sums, and the warm-up's end, only
every `eval_every` iterations, where the run evaluates and checkpoints."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
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
from ablations.train import records, resume, steps
from ablations.train.evaluation import Metrics, evaluate_shares
from ablations.train.schedule import Schedule, Tally
from ablations.train.steps import TrainStep, fused_optimizer, resolve_step, step_of_kind, tf32_flags
from ablations.weights.finetune import build_model, train_mode


def whole_step(schedule: Schedule, train: TrainStep, tally: Tally) -> steps.Step:
    """One iteration on the device (all of it in a graph step): lr, step, running sums. A
    closure, not a Trainer method: a trainer holding its own bound method is a reference cycle,
    which keeps a finished run's model and GPU memory alive until the cyclic GC runs."""

    def step(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        schedule.select()
        loss, logits = train(x, y)
        schedule.observe(tally.add(loss, logits, y))
        return loss, logits

    return step


class Trainer:
    """One run: the loop, its reports, checkpoints and the final record. `runs_at_once`: the
    runs trained beside this one in its process (ablations.gpu.streams)."""

    def __init__(
        self, config: TrainConfig, data: RunData, *, directory: Path, device: torch.device,
        on_iteration: Callable[[int], None] | None = None, show_progress: bool = True,
        deadline: float | None = None, runs_at_once: int = 1,
    ) -> None:  # fmt: skip
        check_device(config, device)
        steps.use_device(device)
        self.config, self.data, self.dir, self.device = config, data, directory, device
        self.runs_at_once = runs_at_once
        self.on_iteration = on_iteration
        self.show_progress = show_progress and distributed.is_main()
        self.deadline = deadline  # time.monotonic(): stop at the first checkpoint after it
        self.iterations, milestones, self.eval_every = config.schedule(data.train.steps_per_epoch)
        self.model, self.started = build_model(config, data, device, runs_dir=directory.parent)
        fused = fused_optimizer(device)
        self.schedule = Schedule(
            config, milestones, device=device, dtype=torch.float32 if fused else torch.float64
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
        whole = whole_step(self.schedule, self.train_step, self.tally)
        self.step = step_of_kind(whole, self.step_kind, train=self.train_step)
        self.state = resume.State()
        self.schedule.prepare(0)

    def execution(self) -> dict[str, Any]:
        """How this start runs, for env.json (the config holds what was asked for)."""
        return {"step": self.step_kind, "step_note": self.step_note,
                "fused_optimizer": self.train_step.fused, "runs_at_once": self.runs_at_once,
                **tf32_flags()}  # fmt: skip

    def restore(self) -> None:
        """Resume from the run's checkpoint, if it has one."""
        state = resume.load_checkpoint(
            self.dir, model=self.model, step=self.train_step, device=self.device
        )
        if state is not None:
            self.state = state
            self.schedule.load(state.warmup_end, state.warmup_window)
            self.schedule.prepare(state.iteration)

    def save_checkpoint(self) -> None:
        if distributed.is_main():
            resume.save_checkpoint(
                self.dir, model=self.model, step=self.train_step, state=self.state
            )

    def run(self) -> dict[str, Any]:
        """Train to the end, divergence or the deadline's checkpoint; returns the summary."""
        self.begin()
        with self.progress:
            while True:
                self.advance(self.batches, until=self.interval_end, progress=self.progress)
                summary = self.end_interval()
                if summary is not None:
                    return summary

    def begin(self, *, position: int | None = None) -> None:
        """Ready the loop at the current iteration: batches, the model's mode, the progress bar
        (`position`: its line among several runs' bars)."""
        self.batches = self.data.train.batches(self.state.iteration)
        train_mode(self.model, freeze=self.config.freeze)
        self.progress = TrainProgress(
            total=self.iterations, initial=self.state.iteration, desc=self.label(),
            enabled=self.show_progress, position=position,
        )  # fmt: skip
        self._start_interval()

    def end_interval(self) -> dict[str, Any] | None:
        """At a boundary: wait for the interval's steps, report, evaluate and checkpoint; the
        summary if the run ended here (complete, diverged, or stopped by the deadline)."""
        state = self.state
        if state.iteration > self.interval_from:  # (none on a run resumed at its very end)
            if self.device.type == "cuda":  # this run's stream alone, not other runs' streams
                torch.cuda.current_stream(self.device).synchronize()
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
                c = self.config
                return {"status": "stopped", "run_id": c.run_id, "key": c.key,
                        "variant": c.variant, "profile": c.profile, "seed": c.seed,
                        "iterations": state.iteration, "planned_iterations": self.iterations,
                        "train_s": state.train_s, **self.execution()}  # fmt: skip
        if state.iteration >= self.iterations:
            return self.finish(diverged=False)
        self._start_interval()
        return None

    def _start_interval(self) -> None:
        """The interval ends at the next evaluation, or at the end."""
        self.interval_from = self.state.iteration
        next_eval = (self.interval_from // self.eval_every + 1) * self.eval_every
        self.interval_end = min(next_eval, self.iterations)
        self.interval_start = time.perf_counter()

    def advance(
        self, batches: Iterator[tuple[Tensor, Tensor]], *, until: int,
        progress: TrainProgress | None = None,
    ) -> None:  # fmt: skip
        """The hot loop, to iteration `until`. It reads nothing from the device: every value it
        decides on is a host integer or stays on the device (tests/train/test_steps.py patches
        every host read to raise around it)."""
        state = self.state
        while state.iteration < until:
            self.schedule.prepare(state.iteration)
            x, y = next(batches)
            self.step(x, y)
            state.iteration += 1
            self.tally.seen += len(y)
            self.schedule.after_step(state.iteration, len(y))
            if progress is not None:
                progress.advance()
            if self.on_iteration is not None:
                self.on_iteration(state.iteration)

    def past_deadline(self) -> bool:
        """Whether to stop at this checkpoint. Any rank past its deadline stops them all: a rank
        that went on alone would wait forever in its next collective."""
        if self.deadline is None:  # the same on every rank: no collective needed
            return False
        return bool(distributed.max_all(int(time.monotonic() >= self.deadline)))

    def record(self, summary: dict[str, Any]) -> records.RunRecord:
        curves = records.curves_frame(self.state.rows)
        return records.RunRecord(self.dir, self.config, summary, curves)

    def label(self) -> str:
        """The progress line's name; a recipe's says its profile (a reduced budget shows)."""
        c = self.config
        if c.recipe is None:
            return f"{c.variant} s{c.seed}"
        return f"{c.recipe}{'-' + c.arm if c.arm else ''} [{c.profile}] s{c.seed}"

    def report(self, *, elapsed: float) -> tuple[dict[str, str], bool]:
        """The interval's curve rows; its progress statistics, and whether the loss is finite."""
        state, split = self.state, self.config.eval_split
        loss, error = self.tally.read()
        lr = self.schedule.lr_of(state.iteration - 1, state.warmup_end)
        rate = self.tally.seen / max(elapsed, 1e-9)
        state.rows += records.metric_rows(state.iteration, "train", loss=loss, error=error, lr=lr,
                                  images_per_s=rate, train_s=state.train_s)  # fmt: skip
        stats = {"loss": f"{loss:.3f}", "err": f"{error:.1%}", "lr": f"{lr:g}"}
        if not math.isfinite(loss):
            return stats, False
        metrics = self._evaluated(split)
        if metrics.error < state.best_error:  # best.pt: the weights tutorials keep
            state.best_error = metrics.error
            if distributed.is_main():
                resume.save_weights(rundir.best_weights(self.dir), self.model)
        return stats | {split: f"{metrics.error:.1%}", "img/s": f"{rate:.0f}"}, True

    def eval_batches(self, split: str, *, crops: str = "center") -> Iterator[tuple[Views, Tensor]]:
        return self.data.eval_batches(
            split, crops=crops, batch_size=self.config.eval_batch_size,
            channels_last=self.config.channels_last, part=distributed.part(),
        )  # fmt: skip

    def evaluate(self, split: str, *, crops: str = "center") -> Metrics:
        """The eager model on `split` (a compiled forward or a graph would recompile or replay
        the training step). Under torchrun each rank evaluates its share of the images with
        rank 0's BN statistics, and the sums are added."""
        distributed.broadcast_buffers(self.model)
        batches = self.eval_batches(split, crops=crops)
        return evaluate_shares(self.model, batches, precision=self.config.precision)

    def _evaluated(self, split: str, *, crops: str = "center") -> Metrics:
        """`evaluate`, its metrics added to the curves."""
        metrics = self.evaluate(split, crops=crops)
        at, top5 = self.state.iteration, self.data.top5
        self.state.rows += records.eval_rows(at, split, metrics, top5=top5, crops=crops)
        return metrics

    def finish(self, *, diverged: bool) -> dict[str, Any]:
        """Write the final record; a diverged run keeps its curves and says where it stopped."""
        from ablations.measure.complexity import model_cost  # fvcore: only once, at the end

        c, state = self.config, self.state
        summary = {
            "status": "diverged" if diverged else "complete",
            "run_id": c.run_id, "key": c.key, "variant": c.variant, "dataset": c.dataset,
            "profile": c.profile, "seed": c.seed, "recipe": c.recipe, "arm": c.arm,
            "iterations": state.iteration, "planned_iterations": self.iterations,
            "epochs": c.epochs, "steps_per_epoch": self.data.train.steps_per_epoch,
            "warmup_end": state.warmup_end, "train_s": state.train_s, **self.started,
            "step": self.step_kind,
            **model_cost(self.model, input_size=int(self.data.record["input_size"])),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }  # fmt: skip
        if diverged:
            summary["diverged_at"] = state.iteration
        else:
            # Once, at the end: the test split when the curves were on another, and the data's
            # other crop protocols (10-crop, multi-scale) on the curves' split.
            if "test" in self.data.splits and c.eval_split != "test":
                self._evaluated("test")
            for crops in self.data.final_crops:
                self._evaluated(c.eval_split, crops=crops)
            curves = records.curves_frame(state.rows)
            summary |= records.final_metrics(curves, eval_split=c.eval_split)
        if not distributed.is_main():
            return summary
        if not diverged:
            resume.save_weights(rundir.weights(self.dir), self.model)
        rundir.write_curves(self.dir, records.curves_frame(state.rows))
        rundir.write_summary(self.dir, summary)
        rundir.checkpoint(self.dir).unlink(missing_ok=True)  # a finished run is not resumed
        return summary
