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
from ablations.data.sources import source_name
from ablations.registry import Variant
from ablations.results import provenance
from ablations.results.table import ColumnType, Schema, read_table, upsert, write_table
from ablations.versions import run_trainer_version

RUNS_FILE, CURVES_FILE, RESPONSES_FILE = "runs.csv", "curves.csv", "responses.csv"
EVALUATIONS_FILE = "evaluations.csv"
RUNS_DIR = "runs"
REPLICATES_DIR = "replicates"  # results/replicates/<name>/: results folders of repeat runs

# Where a row of a measurement came from, the same columns in every table of measurements:
# hardware (name and hashes), software, code version and the data (its file name, format and
# sha256, never the producing machine's path). trainer_version is that of the run measured.
PROVENANCE: dict[str, ColumnType] = {
    "machine": "str", "cpu_flags": "str", "machine_id": "str", "device": "str", "torch": "str",
    "git_commit": "str", "trainer_version": "int", "data_source": "str", "data_format": "str",
    "data_checksum": "str", "created_at": "str", "torch_threads": "int", "cpu_kernels": "str",
}  # fmt: skip
PROVENANCE_ADDED: dict[str, str | int] = {
    c: 0 if kind == "int" else "" for c, kind in PROVENANCE.items()
}

# ImageNet runs' final top-5 error (centre crop), and 10-crop (Table 3) and multi-scale (Table 4)
# errors on the val split; NaN for runs that do not record them (CIFAR, a recipe without that
# protocol, and rows written before these columns existed).
TOP5_COLUMNS = ("val_top5_error", "ten_crop_val_error", "ten_crop_val_top5_error",
                "multi_scale_val_error", "multi_scale_val_top5_error")  # fmt: skip
RUNS = Schema(
    name="runs",
    columns={
        "run_id": "str", "key": "str", "variant": "str", "family": "str", "depth": "int",
        "block": "str", "residual": "bool", "shortcut": "str", "stem": "str", "width": "int",
        "stride_at": "str", "dataset": "str", "profile": "str", "seed": "int",
        "input_size": "int", "iterations": "int", "iterations_done": "int", "status": "str",
        "diverged_at": "int", "warmup_end": "int", "train_error": "float", "train_loss": "float",
        "val_error": "float", "best_val_error": "float", "test_error": "float",
        "test_loss": "float", "train_s": "float", "images_per_s": "float", "params": "int",
        "macs": "int", "machine": "str", "device": "str", "precision": "str", "torch": "str",
        "git_commit": "str", "data_source": "str", "data_format": "str",
        "data_checksum": "str", "finished_at": "str", "recipe": "str", "arm": "str",
        "epochs": "int", "best_test_error": "float", "trainable_params": "int",
        "train_images": "int", "cpu_flags": "str", "machine_id": "str", "trainer_version": "int",
        "experiments": "str", "torch_threads": "int", "stream": "str", "cpu_kernels": "str",
        "step": "str", "runs_at_once": "int", **dict.fromkeys(TOP5_COLUMNS, "float"),
    },
    key=("run_id",),
    # torch_threads: on a CPU the thread count changes the kernels' reduction order, so two runs
    # of one config on one machine differ in their last digits (the key does not include it);
    # cpu_kernels likewise (provenance.cpu_kernels), "" where a run did not record it. step: the
    # training step the last start took (graph or eager; "" before it was recorded);
    # runs_at_once: the largest `--jobs` of its starts (its img/s are then a share of the GPU).
    added={"cpu_flags": "", "machine_id": "", "trainer_version": 0, "experiments": "",
           "torch_threads": 0, "stream": "", "cpu_kernels": "", "step": "", "runs_at_once": 1,
           **dict.fromkeys(TOP5_COLUMNS, math.nan)},
    fix="rebuild it from the run directories with `ablate collect` (an older version's file "
    "lacks the newer columns)",
)  # fmt: skip
CURVES = Schema(
    name="curves",
    columns={
        "run_id": "str",
        "iteration": "int",
        "split": "str",
        "metric": "str",
        "value": "float",
    },
    key=("run_id", "iteration", "split", "metric"),
    fix="rebuild it from the run directories with `ablate collect`",
)
RESPONSES = Schema(
    name="responses",
    columns={
        "run_id": "str",
        "variant": "str",
        "profile": "str",
        "residual": "bool",
        "depth": "int",
        "layer": "int",
        "module": "str",
        "std": "float",
        "images": "int",  # test images measured (0: rows from before it was recorded)
        "precision": "str",  # the run's, under which it was measured ("": before it was recorded)
        **PROVENANCE,
    },
    key=("run_id", "layer"),
    added={**PROVENANCE_ADDED, "images": 0, "precision": ""},
)
EVALUATIONS = Schema(
    name="evaluations",
    columns={
        "variant": "str", "weights": "str", "weights_format": "str", "weights_sha256": "str",
        "preprocessing": "str", "input_size": "int", "dataset": "str", "split": "str",
        "images": "int", "classes": "int", "top1_error": "float", "top5_error": "float",
        "loss": "float", "precision": "str", "crops": "str", **PROVENANCE,
    },
    key=("variant", "weights", "weights_sha256", "preprocessing", "crops", "dataset",
         "data_checksum", "split", "images", "machine"),
    added={"crops": "center"},  # rows written before --crops tested the centre crop
)  # fmt: skip


def provenance_row(
    environment: Mapping[str, Any], data: Mapping[str, Any], *, trainer_version: int
) -> dict[str, Any]:
    """The PROVENANCE columns from `provenance.environment()` and a dataset's `describe()` (or
    a run's data record)."""
    return {
        **{k: environment[k] for k in ("machine", "cpu_flags", "machine_id", "device", "torch",
                                       "git_commit", "created_at", *provenance.KERNELS)},
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


def load(results: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, curves, responses), validated; empty tables where nothing has been recorded."""
    return (
        read_table(results / RUNS_FILE, RUNS),
        read_table(results / CURVES_FILE, CURVES),
        read_table(results / RESPONSES_FILE, RESPONSES),
    )
