"""A run's record: what a run writes besides its torch files (ablations.train.resume), and how a
finished run is read back. ablations.rundir names the files."""

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
    """ "stale (trainer vN, now vM)" for a run another trainer version started, else None."""
    starts = rundir.starts(path)
    return versions.stale_label(versions.run_trainer_version(starts)) if starts else None


def set_aside(path: Path) -> Path:
    """Move the run at `path` to <runs>/.stale/<run_id>.v<N>[.k]/: nothing measured is lost."""
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
    """The finished run at `path` if the current trainer made it, else None."""
    return None if stale_label(path) is not None else load_record(path)


def retire_stale(path: Path) -> None:
    """Set a run of another trainer version aside, so that it is trained again rather than
    counted as done. Called once the data is known good: a bad --data disturbs no run."""
    label = stale_label(path)
    if label is not None:
        moved = set_aside(path)
        print(f"[ablate] {path.name}: {label}; moved to {moved}, training again",
              file=sys.stderr, flush=True)  # fmt: skip


def curves_frame(df: pd.DataFrame | list[dict[str, Any]] | None) -> pd.DataFrame:
    return pd.DataFrame(df, columns=["iteration", "split", "metric", "value"])


def metric_rows(iteration: int, split: str, **metrics: float) -> list[dict[str, Any]]:
    return [{"iteration": iteration, "split": split, "metric": k, "value": v}
            for k, v in metrics.items()]  # fmt: skip


def crop_prefix(crops: str) -> str:
    """A test protocol's metric prefix: "ten-crop" -> "ten_crop_", "" for the centre crop."""
    return "" if crops == "center" else crops.replace("-", "_") + "_"


def eval_rows(
    iteration: int, split: str, metrics: Metrics, *, top5: bool, crops: str = "center"
) -> list[dict[str, Any]]:
    """An evaluation's curve rows, named after the crop protocol ("ten_crop_error")."""
    values = {"loss": metrics.loss, "error": metrics.error}
    if top5:
        values["top5_error"] = metrics.top5_error
    prefix = crop_prefix(crops)
    return metric_rows(iteration, split, **{prefix + k: v for k, v in values.items()})


def final_metrics(curves: pd.DataFrame, *, eval_split: str) -> dict[str, Any]:
    """Final errors and losses, and the best evaluation on `eval_split`. test_* only for data
    with a test split; top-5, 10-crop and multi-scale errors where the run recorded them."""

    def values(split: str, metric: str) -> pd.Series:
        return curves.loc[(curves["split"] == split) & (curves["metric"] == metric), "value"]

    def last(split: str, metric: str) -> float:
        found = values(split, metric)
        return float(found.iloc[-1]) if len(found) else math.nan

    out: dict[str, Any] = {
        "train_error": last("train", "error"),
        "train_loss": last("train", "loss"),
        "images_per_s": float(values("train", "images_per_s").median()),
    }
    if len(values("test", "error")):
        out |= {"test_error": last("test", "error"), "test_loss": last("test", "loss")}
    if eval_split == "val":
        out["val_error"] = last("val", "error")
    named = [("", "top5_error")] + [
        (crop_prefix(crops), metric)
        for crops in EVAL_CROPS[1:]  # the final protocols (Tables 2-3 and 4)
        for metric in ("error", "top5_error")
    ]
    for prefix, metric in named:
        if len(values(eval_split, prefix + metric)):
            out[f"{prefix}{eval_split}_{metric}"] = last(eval_split, prefix + metric)
    errors = curves.loc[values(eval_split, "error").index]
    best = errors.sort_values("value", kind="stable").iloc[0]  # the first of equal minima
    out[f"best_{eval_split}_error"] = float(best["value"])
    out[f"best_{eval_split}_iteration"] = int(best["iteration"])
    return out


def start_run(config: TrainConfig, directory: Path, data: RunData) -> None:
    """Create the run directory with its config and the exact architecture trained (with the
    dataset's head and input channels), or check that it holds this very run."""
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
    execution: dict[str, Any],
) -> None:  # fmt: skip
    """Append this start's environment and execution to env.json (a run may resume elsewhere)."""
    provenance.warn_if_dirty(f"training {directory.name}")
    rundir.add_start(directory, {
        "from_iteration": iteration, **provenance.environment(device), "dtype": config.precision,
        "seed": config.seed, "data": data.record, **execution,
    })  # fmt: skip


def check_same_data(directory: Path, checksum: str) -> None:
    """A half-finished run resumes only on the data it started on (an ImageFolder, say, could
    otherwise change under the same key)."""
    starts = rundir.starts(directory)
    if starts and starts[0]["data"]["checksum"] != checksum:
        started_on = starts[0]["data"]["checksum"]
        raise AblationsError(
            f"{directory} was started on other data (sha256 {started_on[:12]}, now "
            f"{checksum[:12]}); remove it, or give this data its own --data-id"
        )
