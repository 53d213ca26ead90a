"""The tidy tables of training results: one row per run, one row per curve point, one row per
layer response. Run directories (results/runs/<run_id>/) are the primary records; these tables
are built from them, row by row as runs finish (under a lock, so runs finishing at once lose
nothing) or all at once by `collect` (after copying run directories from other machines).

    runs.csv       RUNS: the run's config axes, outcome, cost, machine and data
    curves.csv     CURVES: (run_id, iteration, split, metric, value)
    responses.csv  RESPONSES: (run_id, layer, module, std) of trained nets (the paper's Fig. 7)
    evaluations.csv  EVALUATIONS: checkpoints (ours or published) evaluated by `ablate evaluate`

Every table of measurements has the PROVENANCE columns: no machine path, the data by name,
format and sha256, the machine by name and hashes, the commit and the trainer version.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ablations import rundir
from ablations.data.arrays import source_name
from ablations.registry import Variant
from ablations.results import schemas
from ablations.results.schemas import (
    CURVES,
    CURVES_FILE,
    RUNS,
    RUNS_DIR,
    RUNS_FILE,
    TOP5_COLUMNS,
)
from ablations.results.table import read_table, upsert, write_table
from ablations.versions import run_trainer_version


def provenance_row(
    environment: Mapping[str, Any], data: Mapping[str, Any], *, trainer_version: int
) -> dict[str, Any]:
    """The PROVENANCE columns from `provenance.environment()` and a dataset's `describe()` (or
    a run's data record)."""
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
    metrics = ("train_error", "train_loss", "val_error", "best_val_error", "test_error",
               "test_loss", "images_per_s", "best_test_error", *TOP5_COLUMNS)  # fmt: skip
    return {
        "run_id": run_dir.name, "key": summary.get("key", ""), **{
            k: getattr(variant, k) for k in ("family", "depth", "block", "residual", "shortcut",
                                             "stem", "width", "stride_at")},
        "variant": config["variant"], "dataset": config["dataset"], "profile": config["profile"],
        "seed": config["seed"], "input_size": data["input_size"],
        "iterations": summary.get("planned_iterations", config["iterations"]),
        "iterations_done": summary["iterations"], "train_images": data.get("train_images", 0),
        "status": summary["status"], "diverged_at": summary.get("diverged_at") or 0,
        "warmup_end": summary.get("warmup_end") or 0,
        **{k: summary.get(k, math.nan) for k in metrics}, "train_s": summary["train_s"],
        "params": summary.get("params", 0), "macs": summary.get("macs", 0),
        "machine": last["machine"], "device": last["device"], "precision": config["precision"],
        "torch": last["torch"], "git_commit": last["git_commit"],
        "data_source": source_name(data["source"]),  # an older record's path, cut to its name
        "data_format": data["source_format"], "data_checksum": data["checksum"],
        "finished_at": summary.get("finished_at", ""), "recipe": config.get("recipe") or "",
        "arm": config.get("arm") or "", "epochs": config.get("epochs") or 0,
        "trainable_params": summary.get("trainable_params", summary.get("params", 0)),
        "cpu_flags": last.get("cpu_flags", ""), "machine_id": last.get("machine_id", ""),
        "trainer_version": run_trainer_version(starts),
        "experiments": ",".join(rundir.experiments(run_dir)),
        "torch_threads": last.get("torch_threads", 0),
        "cpu_kernels": last.get("cpu_kernels", ""),
        "stream": config.get("stream") or "",  # the streaming recipe; "": decoded in memory
        "step": last.get("step", ""),
        "runs_at_once": max(int(start.get("runs_at_once", 1)) for start in starts),
    }  # fmt: skip


def curve_rows(run_dir: Path) -> pd.DataFrame:
    curves = pd.read_csv(run_dir / rundir.CURVES)
    return curves.assign(run_id=run_dir.name)[list(CURVES.columns)]


def record(run_dir: Path, results: Path) -> None:
    """Add one finished run to runs.csv and curves.csv (replacing its earlier rows)."""
    upsert(results / RUNS_FILE, pd.DataFrame([run_row(run_dir)]), RUNS)
    upsert(results / CURVES_FILE, curve_rows(run_dir), CURVES, replace=("run_id",))


def collect(results: Path, *, run_dirs: Iterable[Path] | None = None) -> pd.DataFrame:
    """Rebuild runs.csv and curves.csv from the run directories under results/runs."""
    dirs = list(run_dirs) if run_dirs is not None else rundir.finished_runs(results / RUNS_DIR)
    runs = pd.DataFrame([run_row(d) for d in dirs]) if dirs else RUNS.empty()
    curves = pd.concat([curve_rows(d) for d in dirs]) if dirs else CURVES.empty()
    write_table(runs, results / RUNS_FILE, RUNS)
    write_table(curves, results / CURVES_FILE, CURVES)
    return read_table(results / RUNS_FILE, RUNS)
