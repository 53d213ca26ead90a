"""The run directory and its record: what a run writes besides its weights, and how a finished
run is read back (by `train`, `ablate collect` and the store). ablations.rundir names its
files."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ablations import rundir, versions
from ablations.config import EVAL_CROPS, TrainConfig
from ablations.data.prepare import RunData
from ablations.models import resolve
from ablations.registry import AblationsError
from ablations.results import provenance
from ablations.train.evaluation import Metrics

CURVE_COLUMNS = ["iteration", "split", "metric", "value"]


@dataclass
class RunRecord:
    run_dir: Path
    config: TrainConfig
    summary: dict[str, Any]
    curves: pd.DataFrame

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "unfinished"))


def load_record(path: Path) -> RunRecord | None:
    """The finished (complete or diverged) run stored at `path`, or None."""
    if not rundir.is_finished(path):
        return None
    config = TrainConfig.from_json(rundir.config(path))
    return RunRecord(path, config, rundir.summary(path), curves_frame(rundir.curves(path)))


def stale_label(path: Path) -> str | None:
    """ "stale (trainer vN, now vM)" when the run at `path` (finished or not) was started by
    another trainer version, else None (also for a folder that holds no run yet)."""
    starts = rundir.starts(path)
    return versions.stale_label(versions.run_trainer_version(starts)) if starts else None


def set_aside(path: Path) -> Path:
    """Move the run at `path` to <runs>/.stale/<run_id>.v<N>[.k]/: nothing measured is lost,
    and the run's own folder is free for the current trainer."""
    version = versions.run_trainer_version(rundir.starts(path))
    parked = path.parent / versions.STALE_DIR
    parked.mkdir(exist_ok=True)
    target, k = parked / f"{path.name}.v{version}", 1
    while target.exists():
        k += 1
        target = parked / f"{path.name}.v{version}.{k}"
    os.replace(path, target)
    return target


def load_current(path: Path) -> RunRecord | None:
    """The finished run at `path` if the current trainer made it; None for a missing,
    unfinished or stale run (a stale one stays where it is: see `retire_stale`)."""
    return None if stale_label(path) is not None else load_record(path)


def retire_stale(path: Path) -> None:
    """Move a run of another trainer version (finished or half done) aside (see `set_aside`),
    so that it is trained again rather than silently counting as done. Called only once the
    data is known good, so a bad --data never disturbs a measured run."""
    label = stale_label(path)
    if label is not None:
        moved = set_aside(path)
        print(f"[ablate] {path.name}: {label}; moved to {moved}, training again",
              file=sys.stderr, flush=True)  # fmt: skip


def curves_frame(df: pd.DataFrame | list[dict[str, Any]] | None) -> pd.DataFrame:
    return pd.DataFrame(df, columns=CURVE_COLUMNS)


def metric_rows(iteration: int, split: str, **metrics: float) -> list[dict[str, Any]]:
    return [{"iteration": iteration, "split": split, "metric": k, "value": v}
            for k, v in metrics.items()]  # fmt: skip


def crop_prefix(crops: str) -> str:
    """The metric names' prefix of a test protocol: "ten-crop" -> "ten_crop_" ("" for the
    centre crop, whose metrics are the curves' own)."""
    return "" if crops == "center" else crops.replace("-", "_") + "_"


def eval_rows(
    iteration: int, split: str, metrics: Metrics, *, top5: bool, prefix: str = ""
) -> list[dict[str, Any]]:
    """An evaluation's curve rows: loss and error (and top-5 error where the data reports it),
    named with `prefix` for another crop protocol ("ten_crop_error")."""
    values = {"loss": metrics.loss, "error": metrics.error}
    if top5:
        values["top5_error"] = metrics.top5_error
    return metric_rows(iteration, split, **{prefix + k: v for k, v in values.items()})


def final_metrics(curves: pd.DataFrame, *, eval_split: str) -> dict[str, Any]:
    """Final errors and losses, and the best evaluation during training, on `eval_split`
    (best_test_* when the run evaluated on the test set: it then selects on it). Data without
    a test split (ImageNet: its val split is the held-out set) has no test_*; top-5, 10-crop
    and multi-scale errors are there where the run recorded them (val_top5_error,
    ten_crop_val_error, multi_scale_val_top5_error, ...)."""

    def series(split: str, metric: str) -> pd.DataFrame:
        return curves[(curves["split"] == split) & (curves["metric"] == metric)]

    def last(split: str, metric: str) -> float:
        values = series(split, metric)["value"]
        return float(values.iloc[-1]) if len(values) else math.nan

    rates = series("train", "images_per_s")
    out: dict[str, Any] = {
        "train_error": last("train", "error"),
        "train_loss": last("train", "loss"),
        "images_per_s": float(rates["value"].median()),
    }
    if len(series("test", "error")):
        out |= {"test_error": last("test", "error"), "test_loss": last("test", "loss")}
    if eval_split == "val":
        out["val_error"] = last("val", "error")
    split = eval_split
    named = {"top5_error": f"{split}_top5_error"}
    for crops in EVAL_CROPS[1:]:  # the final protocols (Tables 2-3 and 4)
        p = crop_prefix(crops)
        named |= {f"{p}error": f"{p}{split}_error", f"{p}top5_error": f"{p}{split}_top5_error"}
    for metric, name in named.items():
        if len(series(split, metric)):
            out[name] = last(split, metric)
    errors = series(eval_split, "error")
    best = errors.sort_values("value", kind="stable").iloc[0]  # the first of equal minima
    out[f"best_{eval_split}_error"] = float(best["value"])
    out[f"best_{eval_split}_iteration"] = int(best["iteration"])
    return out


def start_run(config: TrainConfig, directory: Path, data: RunData) -> None:
    """Create the run directory with its config and the exact architecture trained (the
    registered variant with the dataset's head and input channels), or check that it holds
    this very config."""
    if rundir.is_started(directory):
        # The same run id is the same run: fields that only change speed may differ.
        if TrainConfig.from_json(rundir.config(directory)).run_id != config.run_id:
            raise AblationsError(
                f"{directory} holds a run of another config; remove it or choose another --out"
            )
        return
    variant = resolve(config.variant, num_classes=data.num_classes, in_channels=data.in_channels)
    rundir.write_config(directory, config=config.to_json(), variant=variant.axes())


def record_start(
    directory: Path, device: torch.device, config: TrainConfig, data: RunData, *, iteration: int,
    execution: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Append this start's environment to env.json: a resumed run may finish elsewhere.
    `execution`: how this start runs (the step taken, the optimizer, TF32 flags)."""
    provenance.warn_if_dirty(f"training {directory.name}")
    rundir.add_start(directory, {
        "from_iteration": iteration, **provenance.environment(device), "dtype": config.precision,
        "seed": config.seed, "data": data.record, **(execution or {}),
    })  # fmt: skip


def check_same_data(directory: Path, checksum: str) -> None:
    """A half-finished run resumes only on the data it started on (a dataset without a
    canonical identity, such as an ImageFolder, could otherwise change under the same key)."""
    starts = rundir.starts(directory)
    if not starts:
        return
    started_on = starts[0]["data"]["checksum"]
    if started_on != checksum:
        raise AblationsError(
            f"{directory} was started on other data (sha256 {started_on[:12]}, now "
            f"{checksum[:12]}); remove it, or give this data its own --data-id"
        )
