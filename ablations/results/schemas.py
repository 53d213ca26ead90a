"""Every results table's file name and schema, in one place: the commands that write a table and
the report that reads it both import them from here. No torch: the report reads results without
the training stack."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ablations.results.table import ColumnType, Schema, read_table

MACHINE_HASHES = ("cpu_flags", "machine_id")  # the columns beside "machine" in every table
# Which CPU kernels ran: the thread count changes reductions' order, the kernels' instruction set
# changes their arithmetic, and both change step times.
KERNELS = ("torch_threads", "cpu_kernels")

# --- training results: built from run directories (ablations.results.collect) ---

RUNS_FILE, CURVES_FILE, RESPONSES_FILE = "runs.csv", "curves.csv", "responses.csv"
EVALUATIONS_FILE = "evaluations.csv"
RUNS_DIR = "runs"
REPLICATES_DIR = "replicates"  # results/replicates/<name>/: results folders of repeat runs

# Where a measurement came from: hardware (name and hashes), software, code version and the data
# (its file name, format and sha256, never a path). trainer_version is that of the run measured.
PROVENANCE: dict[str, ColumnType] = {
    "machine": "str", "cpu_flags": "str", "machine_id": "str", "device": "str", "torch": "str",
    "git_commit": "str", "trainer_version": "int", "data_source": "str", "data_format": "str",
    "data_checksum": "str", "created_at": "str", "torch_threads": "int", "cpu_kernels": "str",
}  # fmt: skip

# ImageNet runs' final top-5 error (centre crop), and 10-crop (Table 3) and multi-scale (Table 4)
# errors on the val split; NaN where a run does not record them.
TOP5_COLUMNS = ("val_top5_error", "ten_crop_val_error", "ten_crop_val_top5_error",
                "multi_scale_val_error", "multi_scale_val_top5_error")  # fmt: skip
# The val split's (top-1, top-5) error columns by crop protocol, in the order a claim prefers them.
VAL_CROPS = {
    "10-crop": ("ten_crop_val_error", "ten_crop_val_top5_error"),
    "multi-scale": ("multi_scale_val_error", "multi_scale_val_top5_error"),
    "centre crop": ("val_error", "val_top5_error"),
}
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
    # step: the training step the last start took (graph or eager); runs_at_once: the largest
    # `--jobs` of its starts (its img/s are then a share of the GPU).
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
        "run_id": "str", "variant": "str", "profile": "str", "residual": "bool", "depth": "int",
        "layer": "int", "module": "str", "std": "float", "images": "int", "precision": "str",
        **PROVENANCE,
    },
    key=("run_id", "layer"),
    # images: the test images measured; precision: the run's, under which it was measured.
    added={**{c: 0 if kind == "int" else "" for c, kind in PROVENANCE.items()}, "images": 0,
           "precision": ""},
)  # fmt: skip
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


def load(results: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, curves, responses), validated; empty tables where nothing has been recorded."""
    return (
        read_table(results / RUNS_FILE, RUNS),
        read_table(results / CURVES_FILE, CURVES),
        read_table(results / RESPONSES_FILE, RESPONSES),
    )


# --- measurements (ablations.measure) ---

COMPLEXITY_FILE = "complexity.csv"
MACS_CONVENTION = (
    "macs = fvcore count (1 multiply-add = 1), conv + linear layers, batch 1 at input_size"
)
COMPLEXITY = Schema(
    name="complexity",
    columns={
        "name": "str", "family": "str", "depth": "int", "block": "str", "residual": "bool",
        "shortcut": "str", "stem": "str", "width": "int", "stage_blocks": "str", "stride_at": "str",
        "input_size": "int", "in_channels": "int", "num_classes": "int", "params": "int",
        "macs": "int", "uncounted_ops": "str", "fingerprint": "str", "code_version": "str",
        "fvcore": "str", "torch": "str", "machine": "str", "git_commit": "str", "created_at": "str",
        "cpu_flags": "str", "machine_id": "str",
    },
    key=("name",),
    added={"cpu_flags": "", "machine_id": ""},
)  # fmt: skip

THROUGHPUT_FILE = "throughput.csv"
REFERENCE_FILE = "throughput_timm.csv"  # ours and timm's benchmark.py, same settings
OURS = "ours"
THROUGHPUT = Schema(
    name="throughput",
    columns={
        "variant": "str", "family": "str", "depth": "int", "residual": "bool", "shortcut": "str",
        "stem": "str", "mode": "str", "step": "str", "reference": "str", "device": "str",
        "machine": "str", "precision": "str", "channels_last": "bool", "compile": "bool",
        "requested_batch_size": "str", "batch_size": "int", "input_size": "int", "run": "int",
        "status": "str", "images_per_s": "float", "step_ms": "float", "step_ms_iqr": "float",
        "first_step_s": "float", "peak_mem_mb": "float", "memory_kind": "str", "macs": "int",
        "tflops": "float", "peak_tflops": "float", "fraction_of_peak": "float",
        "peak_source": "str", "host_syncs_per_step": "float", "dynamo_graphs": "int",
        "dynamo_graph_breaks": "int", "dynamo_frames_skipped": "int", "protocol": "str",
        "warmup": "int", "repeats": "int", "steps": "int", "error": "str", "torch": "str",
        "cuda": "str", "cudnn": "str", "driver": "str", "cudnn_benchmark": "bool",
        "tf32_matmul": "bool", "tf32_cudnn": "bool", "torch_threads": "int", "git_commit": "str",
        "created_at": "str", "cpu_flags": "str", "machine_id": "str", "cpu_kernels": "str",
    },
    # Rows from before the step column timed the eager step (the graph step came later).
    added={"cpu_kernels": "", "step": "eager"},
    key=("variant", "mode", "step", "reference", "machine", "precision", "channels_last", "compile",
         "requested_batch_size", "batch_size", "input_size", "warmup", "repeats", "steps", "run"),
    fix="a table from before the current protocol (no `protocol` column) cannot be mixed with "
    "new rows: move it aside and re-measure with `ablate bench`",
)  # fmt: skip

TRAIN_SPEED_FILE = "train_speed.csv"
TRAIN_SPEED = Schema(
    name="training-loop speed",
    columns={
        "variant": "str", "loop": "str", "device": "str", "machine": "str", "precision": "str",
        "channels_last": "bool", "compile": "bool", "batch_size": "int", "input_size": "int",
        "workers": "int", "pin_memory": "bool", "persistent_workers": "bool", "data": "str",
        "loss_read": "str", "cudnn_benchmark": "bool", "tf32_matmul": "bool", "tf32_cudnn": "bool",
        "step": "str", "optimizer": "str", "cpu_cores": "int", "iterations": "int", "warmup": "int",
        "seconds": "float", "images_per_s": "float", "speedup": "float", "torch": "str",
        "git_commit": "str", "created_at": "str", "cpu_flags": "str", "machine_id": "str",
        "torch_threads": "int", "cpu_kernels": "str",
    },
    # Rows from before these columns were all measured on CPUs, where both loops took the eager
    # step and torch's default for-loop SGD.
    added={"cpu_flags": "", "machine_id": "", "torch_threads": 0, "cpu_kernels": "",
           "step": "eager", "optimizer": "SGD for-loop"},
    key=("variant", "loop", "machine", "precision", "channels_last", "compile", "batch_size",
         "input_size"),
    fix="a table from before the loops' settings were recorded cannot take new rows: move it "
    "aside and re-measure with `ablate train-speed`",
)  # fmt: skip

# tests/golden/complexity.csv: what the tests expect of every registered variant
GOLDEN = Schema(
    name="golden complexity",
    columns={"name": "str", "input_size": "int", "params": "int", "macs": "int"},
    key=("name",),
)

# Planning a set of runs on a machine (`ablate plan --measure`, `ablate runs-at-once`).
STEP_SPEED_FILE = "step_speed.csv"
PROJECTION_FILE = "projection.json"
RUNS_AT_ONCE_FILE = "runs_at_once.csv"
STEP_SPEED = Schema(
    name="step speed",
    columns={
        "variant": "str", "requested_step": "str", "step": "str", "step_note": "str",
        "iterations": "int", "batch_size": "int", "seconds": "float", "ms_per_step": "float",
        "images_per_s": "float", "eval_split": "str", "eval_s": "float", "checkpoint_bytes": "int",
        "precision": "str", "channels_last": "bool", "machine": "str", "torch": "str",
        "git_commit": "str", "created_at": "str",
    },
    key=("machine", "variant", "requested_step", "created_at"),
    fix="`ablate plan --measure` writes it; move it aside and measure again",
)  # fmt: skip
RUNS_AT_ONCE = Schema(
    name="runs at once",
    columns={
        "method": "str", "mps": "bool", "jobs": "int", "variant": "str", "step": "str",
        "precision": "str", "channels_last": "bool", "batch_size": "int", "iterations": "int",
        "seconds": "float", "images_per_s": "float", "machine": "str", "torch": "str",
        "git_commit": "str", "created_at": "str",
    },
    key=("machine", "method", "mps", "jobs", "created_at"),
    fix="`ablate runs-at-once` writes it; move it aside and measure again",
)  # fmt: skip

# Every table with a schema, by file name (`ablate merge` merges the others row by row).
TABLES = {
    RUNS_FILE: RUNS, CURVES_FILE: CURVES, RESPONSES_FILE: RESPONSES,
    EVALUATIONS_FILE: EVALUATIONS, COMPLEXITY_FILE: COMPLEXITY, THROUGHPUT_FILE: THROUGHPUT,
    REFERENCE_FILE: THROUGHPUT, TRAIN_SPEED_FILE: TRAIN_SPEED, STEP_SPEED_FILE: STEP_SPEED,
    RUNS_AT_ONCE_FILE: RUNS_AT_ONCE,
}  # fmt: skip
