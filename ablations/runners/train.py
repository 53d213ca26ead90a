"""Training runner: a `TrainConfig` in, a run directory and its record out.

The run directory `<out>/<run_id>/` holds:
    config.json    the resolved config (the run is a pure function of it)
    env.json       machine, versions, commit, device, dtype, seed, data source and checksum
    curves.csv     tidy rows (iteration, split, metric, value)
    checkpoint.pt  the latest resumable state, while the run is unfinished
    model.pt       the final weights
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

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablations import env
from ablations.config import TrainConfig, resolve_device
from ablations.data import ArrayDataset, load_dataset
from ablations.data.loader import (
    Normalizer,
    TrainStream,
    eval_batches,
    random_subset,
    split_indices,
    to_nchw,
)
from ablations.io import read_json, write_atomic, write_json
from ablations.models import ResNet, create_model, resolve
from ablations.progress import TrainProgress
from ablations.registry import AblationsError
from ablations.runners.steps import TrainStep, autocast, set_tf32

CURVE_COLUMNS = ["iteration", "split", "metric", "value"]
WARMUP_CHECK_EVERY = 20  # iterations between the (host-syncing) warm-up error checks


@dataclass
class RunRecord:
    run_dir: Path
    config: TrainConfig
    summary: dict[str, Any]
    curves: pd.DataFrame

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "unfinished"))


@dataclass
class Data:
    """A run's data, split and prepared once: uint8 NCHW tensors and the normaliser."""

    train: TrainStream
    val: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    normalizer: Normalizer
    record: dict[str, Any]
    in_channels: int
    num_classes: int


@dataclass
class State:
    """What a checkpoint restores besides model and optimizer."""

    iteration: int = 0
    warmup_end: int | None = None  # the iteration at which the warm-up ended
    warmup_window: tuple[int, int] = (0, 0)  # (errors, images) since the last warm-up check
    train_s: float = 0.0  # training time so far, evaluation excluded
    rows: list[dict[str, Any]] = field(default_factory=list)


def run_dir(config: TrainConfig, out: Path) -> Path:
    return out / config.run_id


def load_record(path: Path) -> RunRecord | None:
    """The finished (complete or diverged) run stored at `path`, or None."""
    if not (path / "summary.json").exists():
        return None
    config = TrainConfig.from_json(read_json(path / "config.json"))
    curves = pd.read_csv(path / "curves.csv") if (path / "curves.csv").exists() else None
    return RunRecord(path, config, read_json(path / "summary.json"), _curves(curves))


def _curves(df: pd.DataFrame | list[dict[str, Any]] | None) -> pd.DataFrame:
    if df is None:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.DataFrame(df, columns=CURVE_COLUMNS)


def prepare_data(config: TrainConfig, dataset: ArrayDataset, device: torch.device) -> Data:
    """Split (fixed seed), subset, resize and normalise per the config."""
    train_idx, val_idx = split_indices(
        len(dataset.x_train), val_size=config.val_size, seed=config.split_seed
    )
    if config.train_size is not None:
        train_idx = train_idx[: config.train_size]
    size = config.input_size
    x_train = to_nchw(dataset.x_train[train_idx], size=size)
    x_val = to_nchw(dataset.x_train[val_idx], size=size)
    test_idx = random_subset(len(dataset.x_test), config.test_size, seed=config.split_seed)
    x_test = to_nchw(dataset.x_test[test_idx], size=size)
    y = torch.from_numpy(dataset.y_train)
    y_test = torch.from_numpy(dataset.y_test[test_idx])
    normalizer = Normalizer.fit(x_train, kind=config.normalize)
    native = dataset.x_train.shape[1]
    pad = round(4 * x_train.shape[-1] / 32) if config.augment else 0
    stream = TrainStream(
        x_train, y[train_idx], batch_size=config.batch_size, seed=config.seed, device=device,
        normalizer=normalizer, augment_pad=pad, storage=config.storage, workers=config.workers,
        channels_last=config.channels_last,
    )  # fmt: skip
    record = {
        **dataset.describe(),
        "train_images": len(train_idx), "val_images": len(val_idx), "test_images": len(x_test),
        "input_size": x_train.shape[-1], "native_size": native, "augment_pad": pad,
        **normalizer.describe(),
    }  # fmt: skip
    return Data(
        train=stream, val=(x_val, y[val_idx]), test=(x_test, y_test), normalizer=normalizer,
        record=record, in_channels=x_train.shape[1], num_classes=len(dataset.classes),
    )  # fmt: skip


def lr_at(config: TrainConfig, iteration: int, warmup_end: int | None) -> float:
    """Step schedule; deep nets start at `warmup_lr` until the warm-up ends (see `train`)."""
    before_decay = not config.lr_milestones or iteration < config.lr_milestones[0]
    if config.warmup_lr is not None and warmup_end is None and before_decay:
        return config.warmup_lr
    decays = sum(iteration >= m for m in config.lr_milestones)
    return config.lr * config.lr_gamma**decays


def build_model(config: TrainConfig, data: Data, device: torch.device) -> ResNet:
    torch.manual_seed(config.seed)  # the same initial weights for the same seed
    model = create_model(
        config.variant, num_classes=data.num_classes, in_channels=data.in_channels
    ).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


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
        """(mean loss, error rate); reads the device."""
        return float(self.loss) / self.seen, float(self.errors) / self.seen


@torch.inference_mode()
def evaluate(
    model: nn.Module, batches: Iterator[tuple[Tensor, Tensor]], *, precision: str
) -> tuple[float, float]:
    """(mean loss, error rate) in eval mode (BN running statistics), no augmentation."""
    was_training = model.training
    model.eval()
    loss_sum, errors, seen = 0.0, 0, 0
    for x, y in batches:
        with autocast(x.device, precision):
            logits = model(x)
        loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        errors += int((logits.argmax(dim=1) != y).sum())
        seen += len(y)
    model.train(was_training)
    return loss_sum / seen, errors / seen


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
        self.show_progress = show_progress
        self.model = build_model(config, data, device)
        self.step = TrainStep(
            self.model, device=device, precision=config.precision, compile=config.compile,
            lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
        )  # fmt: skip
        # The compiled module shares parameters with self.model, which is what gets saved.
        self.forward = self.step.forward
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
        self.write_curves()
        self.state.warmup_window = (int(self.warm_errors), self.warm_seen)
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "state": self.state,
        }  # fmt: skip
        write_atomic(self.dir / "checkpoint.pt", lambda t: torch.save(state, t))

    def write_curves(self) -> None:
        curves = _curves(self.state.rows)
        write_atomic(self.dir / "curves.csv", lambda t: curves.to_csv(t, index=False))

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train to the end (or to divergence); returns the summary."""
        c, state = self.config, self.state
        batches = self.data.train.batches(state.iteration)
        interval = Interval(self.device)
        self.model.train()
        progress = TrainProgress(
            total=c.iterations, initial=state.iteration, desc=f"{c.variant} s{c.seed}",
            enabled=self.show_progress,
        )  # fmt: skip
        with progress:
            started = time.perf_counter()
            while state.iteration < c.iterations:
                lr = lr_at(c, state.iteration, state.warmup_end)
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
                if state.iteration % c.eval_every and state.iteration < c.iterations:
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

    def check_warmup(self, logits: Tensor, labels: Tensor) -> None:
        """The paper's warm-up for deep nets: lr 0.01 until the training error is below 80%,
        judged over windows of WARMUP_CHECK_EVERY iterations (reading the device only then)."""
        self.warm_errors += (logits.argmax(dim=1) != labels).sum()
        self.warm_seen += len(labels)
        if self.state.iteration % WARMUP_CHECK_EVERY:
            return
        error = int(self.warm_errors) / self.warm_seen
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
        val_loss, val_error = evaluate(
            self.forward, self.eval_batches("val"), precision=c.precision
        )
        state.rows += _rows(state.iteration, "val", loss=val_loss, error=val_error)
        return stats | {"val": f"{val_error:.1%}", "img/s": f"{rate:.0f}"}, True

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
        return {"params": count_params(self.model), "macs": macs}

    def finish(self, *, diverged: bool) -> dict[str, Any]:
        """Write the final record; a diverged run keeps its curves and says where it stopped."""
        c, state = self.config, self.state
        summary: dict[str, Any] = {
            "status": "diverged" if diverged else "complete",
            "run_id": c.run_id, "key": c.key, "variant": c.variant, "dataset": c.dataset,
            "profile": c.profile, "seed": c.seed, "iterations": state.iteration,
            "warmup_end": state.warmup_end, "train_s": state.train_s,
            **self.cost(), "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }  # fmt: skip
        if diverged:
            summary["diverged_at"] = state.iteration
        else:
            loss, error = evaluate(self.forward, self.eval_batches("test"), precision=c.precision)
            state.rows += _rows(state.iteration, "test", loss=loss, error=error)
            summary |= _final_metrics(_curves(state.rows))
            weights = self.model.state_dict()
            write_atomic(self.dir / "model.pt", lambda t: torch.save(weights, t))
        self.write_curves()
        write_json(self.dir / "summary.json", summary)
        (self.dir / "checkpoint.pt").unlink(missing_ok=True)
        return summary


def _final_metrics(curves: pd.DataFrame) -> dict[str, Any]:
    def last(split: str, metric: str) -> float:
        rows = curves[(curves["split"] == split) & (curves["metric"] == metric)]
        return float(rows["value"].iloc[-1])

    val = curves[(curves["split"] == "val") & (curves["metric"] == "error")]
    rates = curves[(curves["split"] == "train") & (curves["metric"] == "images_per_s")]
    return {
        "train_error": last("train", "error"), "train_loss": last("train", "loss"),
        "val_error": last("val", "error"), "test_error": last("test", "error"),
        "test_loss": last("test", "loss"),
        "best_val_error": float(val["value"].min()),
        "best_val_iteration": int(val.loc[val["value"].idxmin(), "iteration"]),
        "images_per_s": float(rates["value"].median()),
    }  # fmt: skip


def _start(config: TrainConfig, directory: Path, data: Data) -> None:
    """Create the run directory with its config and the exact architecture trained (the
    registered variant with the dataset's head and input channels), or check that it holds
    this very config."""
    stored = directory / "config.json"
    if stored.exists():
        if TrainConfig.from_json(read_json(stored)) != config:
            raise AblationsError(
                f"{directory} holds a run of another config; remove it or choose another --out"
            )
        return
    variant = resolve(config.variant, num_classes=data.num_classes, in_channels=data.in_channels)
    write_json(directory / "variant.json", variant.axes())
    write_json(stored, config.to_json())


def _record_start(
    directory: Path, device: torch.device, config: TrainConfig, data: Data, *, iteration: int
) -> None:
    """Append this start's environment to env.json: a resumed run may finish elsewhere."""
    path = directory / "env.json"
    starts = read_json(path) if path.exists() else []
    starts.append({
        "from_iteration": iteration, **env.environment(device), "dtype": config.precision,
        "seed": config.seed, "data": data.record,
    })  # fmt: skip
    write_json(path, starts)


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
    finished = load_record(directory)
    if finished is not None:
        return finished
    dev = resolve_device(device)
    # Data problems surface before anything is written.
    prepared = prepare_data(config, load_dataset(config.dataset, data=data), dev)
    _start(config, directory, prepared)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    set_tf32(config.precision)
    trainer = Trainer(config, prepared, directory=directory, device=dev,
                      on_iteration=on_iteration, show_progress=show_progress)  # fmt: skip
    trainer.restore()
    _record_start(directory, dev, config, prepared, iteration=trainer.state.iteration)
    summary = trainer.run()
    return RunRecord(directory, config, summary, _curves(trainer.state.rows))
