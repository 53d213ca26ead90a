"""A finished run's rows in runs.csv and curves.csv, built from its run directory: row by row as
runs finish (`record`), or all at once (`collect`) after copying run directories from elsewhere."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ablations import rundir
from ablations.data.arrays import source_name
from ablations.registry import Variant
from ablations.results import schemas
from ablations.results.table import read_table, upsert, write_table
from ablations.versions import run_trainer_version

METRICS = ("train_error", "train_loss", "val_error", "best_val_error", "test_error", "test_loss",
           "images_per_s", "best_test_error", *schemas.TOP5_COLUMNS)  # fmt: skip
AXES = ("family", "depth", "block", "residual", "shortcut", "stem", "width", "stride_at")


def provenance_row(
    environment: Mapping[str, Any], data: Mapping[str, Any], *, trainer_version: int
) -> dict[str, Any]:
    """The PROVENANCE columns from `provenance.environment()` and a dataset's `describe()`."""
    return {
        **{k: environment[k] for k in ("machine", "cpu_flags", "machine_id", "device", "torch",
                                       "git_commit", "created_at", *schemas.KERNELS)},
        "trainer_version": trainer_version, "data_source": source_name(str(data["source"])),
        "data_format": data["source_format"], "data_checksum": data["checksum"],
    }  # fmt: skip


def run_row(run_dir: Path) -> dict[str, Any]:
    """The runs.csv row of a finished run directory (0 where an iteration does not apply)."""
    config, summary = rundir.config(run_dir), rundir.summary(run_dir)
    starts = rundir.starts(run_dir)
    last = starts[-1]  # the start that finished the run
    data = last["data"]
    variant = Variant.from_axes(rundir.variant_axes(run_dir))
    return {
        "run_id": run_dir.name, "key": summary.get("key", ""),
        **{k: getattr(variant, k) for k in AXES}, **{k: summary.get(k, math.nan) for k in METRICS},
        **{k: config[k] for k in ("variant", "dataset", "profile", "seed", "precision")},
        **{k: config.get(k) or "" for k in ("recipe", "arm", "stream")},  # stream "": in memory
        "epochs": config.get("epochs") or 0, "input_size": data["input_size"],
        "iterations": summary.get("planned_iterations", config["iterations"]),
        "iterations_done": summary["iterations"], "train_images": data.get("train_images", 0),
        "status": summary["status"], "diverged_at": summary.get("diverged_at") or 0,
        "warmup_end": summary.get("warmup_end") or 0, "train_s": summary["train_s"],
        "params": summary.get("params", 0), "macs": summary.get("macs", 0),
        "trainable_params": summary.get("trainable_params", summary.get("params", 0)),
        "finished_at": summary.get("finished_at", ""),
        **{k: last[k] for k in ("machine", "device", "torch", "git_commit")},
        **{k: last.get(k, "") for k in ("cpu_flags", "machine_id", "cpu_kernels", "step")},
        "torch_threads": last.get("torch_threads", 0),
        "data_source": source_name(data["source"]),  # an older record's path, cut to its name
        "data_format": data["source_format"], "data_checksum": data["checksum"],
        "trainer_version": run_trainer_version(starts),
        "experiments": ",".join(rundir.experiments(run_dir)),
        "runs_at_once": max(int(start.get("runs_at_once", 1)) for start in starts),
    }  # fmt: skip


def _curves(run_dir: Path) -> pd.DataFrame:
    curves = pd.read_csv(run_dir / rundir.CURVES)
    return curves.assign(run_id=run_dir.name)[list(schemas.CURVES.columns)]


def record(run_dir: Path, results: Path) -> None:
    """Add one finished run to runs.csv and curves.csv (replacing its earlier rows)."""
    upsert(results / schemas.RUNS_FILE, pd.DataFrame([run_row(run_dir)]), schemas.RUNS)
    upsert(results / schemas.CURVES_FILE, _curves(run_dir), schemas.CURVES, replace=("run_id",))


def collect(results: Path) -> pd.DataFrame:
    """Rebuild runs.csv and curves.csv from the run directories under results/runs."""
    dirs = rundir.finished_runs(results / schemas.RUNS_DIR)
    runs = pd.DataFrame([run_row(d) for d in dirs]) if dirs else schemas.RUNS.empty()
    curves = pd.concat([_curves(d) for d in dirs]) if dirs else schemas.CURVES.empty()
    write_table(runs, results / schemas.RUNS_FILE, schemas.RUNS)
    write_table(curves, results / schemas.CURVES_FILE, schemas.CURVES)
    return read_table(results / schemas.RUNS_FILE, schemas.RUNS)
