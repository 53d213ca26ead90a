"""Training runner: a `TrainConfig` in, a run directory and its record out.

The run directory `<out>/<run_id>/` holds:
    config.json    the resolved config (the run is a pure function of it)
    env.json       machine, versions, commit, device, dtype, seed, data source and checksum
    curves.csv     tidy rows (iteration, split, metric, value)
    checkpoint.pt  the latest resumable state, while the run is unfinished
    model.pt       the final weights
    best.pt        the weights at the best evaluation so far (on the test split when the config
                   evaluates there, as tutorials do: then it selects on the test set)
    summary.json   status (complete | diverged), final errors, wall time, images/s

The hot loop never waits for the device: losses and errors accumulate there and are read only
every `eval_every` iterations, where the run also evaluates on the validation split and saves a
checkpoint. An interrupted run loses at most the iterations since that checkpoint; rerunning the
same config resumes and ends exactly as an uninterrupted run would (batches are a pure function
of seed and iteration, see ablations.data.loader).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ablations import distributed
from ablations.config import TrainConfig, resolve_device
from ablations.data import load_dataset
from ablations.data.loader import eval_batches
from ablations.data.prepare import Data, prepare_data
from ablations.io import write_atomic, write_json
from ablations.models import ResNet, create_model
from ablations.progress import TrainProgress
from ablations.runners import transfer
from ablations.runners.evaluation import evaluate
from ablations.runners.records import (
    RunRecord,
    check_same_data,
    curves_frame,
    final_metrics,
    load_current,
    record_start,
    run_dir,
    start_run,
)
from ablations.runners.steps import TrainStep, set_tf32

WARMUP_CHECK_EVERY = 20  # iterations between the (host-syncing) warm-up error checks


@dataclass
class State:
    """What a checkpoint restores besides model and optimizer."""

    iteration: int = 0
    warmup_end: int | None = None  # the iteration at which the warm-up ended
    warmup_window: tuple[int, int] = (0, 0)  # (errors, images) since the last warm-up check
    train_s: float = 0.0  # training time so far, evaluation excluded
    best_error: float = math.inf  # the lowest evaluation error so far (weights in best.pt)
    rows: list[dict[str, Any]] = field(default_factory=list)


def lr_at(
    config: TrainConfig, iteration: int, warmup_end: int | None,
    milestones: tuple[int, ...] | None = None,
) -> float:  # fmt: skip
    """Step schedule (milestones in iterations; the config's by default); deep nets start at
    `warmup_lr` until the warm-up ends (see `train`)."""
    steps = config.lr_milestones if milestones is None else milestones
    before_decay = not steps or iteration < steps[0]
    if config.warmup_lr is not None and warmup_end is None and before_decay:
        return config.warmup_lr
    decays = sum(iteration >= m for m in steps)
    return config.lr * config.lr_gamma**decays


def build_model(
    config: TrainConfig, data: Data, device: torch.device, *, runs_dir: Path
) -> tuple[ResNet, dict[str, str]]:
    """The initialised (or checkpoint-started, and maybe frozen) model, and what it was
    started from."""
    torch.manual_seed(config.seed)  # the same initial weights for the same seed
    model = create_model(config.variant, num_classes=data.num_classes, in_channels=data.in_channels)
    started: dict[str, str] = {}
    if config.init_from is not None:
        started = transfer.load_backbone(model, config.init_from, runs_dir=runs_dir)
    if config.freeze == "backbone":
        transfer.freeze_backbone(model)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, started


class Interval:
    """Running training loss and error since the last report, accumulated on the device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.loss = torch.zeros((), device=self.device, dtype=torch.float64)
        self.errors = torch.zeros((), device=self.device, dtype=torch.int64)
        self.seen = 0
        self.steps = 0

    def add(self, loss: Tensor, logits: Tensor, labels: Tensor) -> None:
        self.loss += loss.detach().double() * len(labels)
        self.errors += (logits.detach().argmax(dim=1) != labels).sum()
        self.seen += len(labels)
        self.steps += 1

    def read(self) -> tuple[float, float]:
        """(mean loss, error rate) over every rank's shard; reads the device."""
        loss, errors, seen = distributed.sum_all(self.loss, self.errors, self.seen)
        return loss / seen, errors / seen


def _rows(iteration: int, split: str, **metrics: float) -> list[dict[str, Any]]:
    return [{"iteration": iteration, "split": split, "metric": k, "value": v}
            for k, v in metrics.items()]  # fmt: skip


class Trainer:
    """One run: the loop, its reports, checkpoints and the final record."""

    def __init__(
        self, config: TrainConfig, data: Data, *, directory: Path, device: torch.device,
        on_iteration: Callable[[int], None] | None = None, show_progress: bool = True,
    ) -> None:  # fmt: skip
        self.config, self.data, self.dir, self.device = config, data, directory, device
        self.on_iteration = on_iteration
        self.show_progress = show_progress and distributed.is_main()
        self.iterations, self.milestones, self.eval_every = config.schedule(
            data.train.steps_per_epoch
        )
        self.model, self.started = build_model(config, data, device, runs_dir=directory.parent)
        # Under torchrun the step trains a DDP wrap; self.model stays the plain module (its
        # state_dict is what checkpoints hold, for any world size) and evaluates eagerly.
        trained = distributed.wrap(
            self.model, sync_bn=distributed.check_world(config), device=device
        )
        self.step = TrainStep(
            trained, device=device, precision=config.precision, compile=config.compile,
            lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            optimizer=config.optimizer,
        )  # fmt: skip
        # The compiled module shares parameters with self.model, which is what gets saved.
        self.forward = self.model if distributed.active() else self.step.forward
        self.optimizer, self.scaler = self.step.optimizer, self.step.scaler
        self.state = State()
        self.warm_errors = torch.zeros((), dtype=torch.int64, device=device)
        self.warm_seen = 0

    # -- checkpoints -------------------------------------------------------------------------
    def restore(self) -> None:
        path = self.dir / "checkpoint.pt"
        if not path.exists():
            return
        saved = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        self.state = saved["state"]
        self.warm_errors.fill_(self.state.warmup_window[0])
        self.warm_seen = self.state.warmup_window[1]

    def save_checkpoint(self) -> None:
        # Curves first: if the process dies between the two writes, the resumed run drops the
        # rows newer than its checkpoint and writes them again.
        self.state.warmup_window = (int(self.warm_errors), self.warm_seen)
        if not distributed.is_main():
            return
        self.write_curves()
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "state": self.state,
        }  # fmt: skip
        write_atomic(self.dir / "checkpoint.pt", lambda t: torch.save(state, t))

    def write_curves(self) -> None:
        if not distributed.is_main():
            return
        curves = curves_frame(self.state.rows)
        write_atomic(self.dir / "curves.csv", lambda t: curves.to_csv(t, index=False))

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train to the end (or to divergence); returns the summary."""
        c, state = self.config, self.state
        batches = self.data.train.batches(state.iteration)
        interval = Interval(self.device)
        transfer.train_mode(self.model, freeze=c.freeze)
        progress = TrainProgress(
            total=self.iterations, initial=state.iteration, desc=self.label(),
            enabled=self.show_progress,
        )  # fmt: skip
        with progress:
            started = time.perf_counter()
            while state.iteration < self.iterations:
                lr = lr_at(c, state.iteration, state.warmup_end, self.milestones)
                self.step.set_lr(lr)
                x, y = next(batches)
                loss, logits = self.step(x, y)
                interval.add(loss, logits, y)
                state.iteration += 1
                if c.warmup_lr is not None and state.warmup_end is None:
                    self.check_warmup(logits, y)
                progress.advance()
                if self.on_iteration is not None:
                    self.on_iteration(state.iteration)
                if state.iteration % self.eval_every and state.iteration < self.iterations:
                    continue
                self.synchronize()
                elapsed = time.perf_counter() - started
                state.train_s += elapsed
                stats, finite = self.report(interval, lr=lr, elapsed=elapsed)
                interval.reset()
                progress.report(state.iteration, stats)
                if not finite:
                    return self.finish(diverged=True)
                self.save_checkpoint()
                started = time.perf_counter()
        return self.finish(diverged=False)

    def label(self) -> str:
        """The progress line's name; a recipe's says its profile (a reduced budget shows)."""
        c = self.config
        if c.recipe is None:
            return f"{c.variant} s{c.seed}"
        return f"{c.recipe}{'-' + c.arm if c.arm else ''} [{c.profile}] s{c.seed}"

    def check_warmup(self, logits: Tensor, labels: Tensor) -> None:
        """The paper's warm-up for deep nets: lr 0.01 until the training error is below 80%,
        judged over windows of WARMUP_CHECK_EVERY iterations (reading the device only then)."""
        self.warm_errors += (logits.argmax(dim=1) != labels).sum()
        self.warm_seen += len(labels)
        if self.state.iteration % WARMUP_CHECK_EVERY:
            return
        errors, seen = distributed.sum_all(self.warm_errors, self.warm_seen)  # ranks agree
        error = errors / seen
        self.warm_errors.zero_()
        self.warm_seen = 0
        if error < self.config.warmup_until_error:
            self.state.warmup_end = self.state.iteration

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def report(
        self, interval: Interval, *, lr: float, elapsed: float
    ) -> tuple[dict[str, str], bool]:
        """Curve rows for the interval just ended, the progress line's statistics, and whether
        the training loss is still finite."""
        c, state = self.config, self.state
        loss, error = interval.read()
        rate = interval.seen / max(elapsed, 1e-9)
        state.rows += _rows(state.iteration, "train", loss=loss, error=error, lr=lr,
                            images_per_s=rate, train_s=state.train_s)  # fmt: skip
        stats = {"loss": f"{loss:.3f}", "err": f"{error:.1%}", "lr": f"{lr:g}"}
        if not math.isfinite(loss):
            return stats, False
        split = c.eval_split
        eval_loss, eval_error = evaluate(
            self.forward, self.eval_batches(split), precision=c.precision
        )
        state.rows += _rows(state.iteration, split, loss=eval_loss, error=eval_error)
        self.keep_best(eval_error)
        return stats | {split: f"{eval_error:.1%}", "img/s": f"{rate:.0f}"}, True

    def keep_best(self, error: float) -> None:
        """best.pt: the weights at the lowest evaluation error so far (tutorials keep these)."""
        if error >= self.state.best_error:
            return
        self.state.best_error = error
        if not distributed.is_main():
            return
        weights = self.model.state_dict()
        write_atomic(self.dir / "best.pt", lambda t: torch.save(weights, t))

    def eval_batches(self, split: str) -> Iterator[tuple[Tensor, Tensor]]:
        x, y = self.data.val if split == "val" else self.data.test
        return eval_batches(
            x, y, batch_size=self.config.eval_batch_size, device=self.device,
            normalizer=self.data.normalizer, channels_last=self.config.channels_last,
        )  # fmt: skip

    def cost(self) -> dict[str, int]:
        """Params, and fvcore MACs per image at the training input size (batch 1)."""
        from ablations.runners.complexity import count_macs, count_params, uninitialised

        variant = self.model.variant
        size = int(self.data.record["input_size"])
        macs, _ = count_macs(
            uninitialised(variant), input_size=size, in_channels=variant.in_channels
        )
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return {"params": count_params(self.model), "trainable_params": trainable, "macs": macs}

    def finish(self, *, diverged: bool) -> dict[str, Any]:
        """Write the final record; a diverged run keeps its curves and says where it stopped."""
        c, state = self.config, self.state
        summary: dict[str, Any] = {
            "status": "diverged" if diverged else "complete",
            "run_id": c.run_id, "key": c.key, "variant": c.variant, "dataset": c.dataset,
            "profile": c.profile, "seed": c.seed, "recipe": c.recipe, "arm": c.arm,
            "iterations": state.iteration, "planned_iterations": self.iterations,
            "epochs": c.epochs, "steps_per_epoch": self.data.train.steps_per_epoch,
            "warmup_end": state.warmup_end, "train_s": state.train_s, **self.started,
            **self.cost(), "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }  # fmt: skip
        if diverged:
            summary["diverged_at"] = state.iteration
        else:
            if c.eval_split != "test":  # else the last evaluation was on the test set already
                loss, error = evaluate(
                    self.forward, self.eval_batches("test"), precision=c.precision
                )
                state.rows += _rows(state.iteration, "test", loss=loss, error=error)
            summary |= final_metrics(curves_frame(state.rows), eval_split=c.eval_split)
        if not distributed.is_main():
            return summary
        if not diverged:
            weights = self.model.state_dict()
            write_atomic(self.dir / "model.pt", lambda t: torch.save(weights, t))
        self.write_curves()
        write_json(self.dir / "summary.json", summary)
        (self.dir / "checkpoint.pt").unlink(missing_ok=True)
        return summary


def train(
    config: TrainConfig,
    *,
    out: Path = Path("results/runs"),
    data: str | Path | None = None,
    device: str | torch.device | None = None,
    on_iteration: Callable[[int], None] | None = None,
    show_progress: bool = True,
) -> RunRecord:
    """Run `config` to the end in `<out>/<run_id>`, resuming from its checkpoint if there is
    one; a finished run is returned as stored, not recomputed."""
    directory = run_dir(config, out)
    finished = load_current(directory)  # None also for a stale run, then moved aside
    if finished is not None:
        return finished
    dev = resolve_device(device)
    # Data problems surface before anything is written.
    dataset = load_dataset(config.dataset, data=data, resize=config.resize, crop=config.crop)
    check_same_data(run_dir(config, out), dataset)
    prepared = prepare_data(config, dataset, dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    set_tf32(config.precision)
    # The model is built (and a checkpoint to start from loaded) before anything is written,
    # so a bad checkpoint leaves no half-made run directory behind.
    trainer = Trainer(config, prepared, directory=directory, device=dev,
                      on_iteration=on_iteration, show_progress=show_progress)  # fmt: skip
    if distributed.is_main():
        start_run(config, directory, prepared)
    trainer.restore()
    if distributed.is_main():
        record_start(directory, dev, config, prepared, iteration=trainer.state.iteration)
    summary = trainer.run()
    return RunRecord(directory, config, summary, curves_frame(trainer.state.rows))
