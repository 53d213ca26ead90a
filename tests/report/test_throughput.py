"""The speed comparisons' report tables (ablations.report.throughput) on constructed tables, and
`ablate train-speed` end to end on a tiny CIFAR-10."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from ablations.cli import main
from ablations.report import throughput as report
from ablations.results import schemas
from ablations.results.schemas import THROUGHPUT as SCHEMA
from ablations.results.table import read_table

SETTING = {
    "variant": "resnet50", "family": "imagenet", "depth": 50, "residual": True, "shortcut": "b",
    "stem": "k7", "mode": "train", "step": "graph", "device": "cuda", "machine": "NVIDIA H200",
    "precision": "bf16", "channels_last": True, "compile": False, "requested_batch_size": "256",
    "batch_size": 256, "input_size": 224, "warmup": 10, "repeats": 7, "steps": 20,
    "status": "ok", "fraction_of_peak": 0.4,
}  # fmt: skip


def _rows(reference, images_per_s):
    return [SETTING | {"reference": reference, "run": i, "images_per_s": v}
            for i, v in enumerate(images_per_s)]  # fmt: skip


def test_ours_against_timm_is_a_ratio_of_medians():
    table = pd.DataFrame(_rows("ours", [3000.0, 3030.0, 2990.0]) + _rows("timm", [2500.0] * 3))
    text = report.against_timm(table)
    expected = "| bf16 | channels_last | 256 | graph | 3,000.0 | 2,500.0 | 1.20x | 40.0% |"
    assert "| resnet50 | train " + expected in text
    spread = report.fidelity(table)
    assert "| ours | bf16 | channels_last | 256 | 3 | 3,000.0 | 1.3% |" in spread  # 40 / 3000
    assert "| timm | bf16 | channels_last | 256 | 3 | 2,500.0 | 0.0% |" in spread


def test_nothing_to_compare_renders_nothing():
    assert report.against_timm(pd.DataFrame(_rows("ours", [1.0]))) == ""
    assert report.fidelity(pd.DataFrame(_rows("ours", [1.0]))) == ""  # one run: no spread
    assert report.loop_speed(schemas.TRAIN_SPEED.empty()) == ""


def test_extras_reads_results_alone(tmp_path):
    blank = {"str": "", "int": 0, "float": float("nan"), "bool": False}
    rows = [{c: blank[kind] for c, kind in SCHEMA.columns.items()} | r
            for r in _rows("ours", [100.0, 110.0]) + _rows("timm", [100.0, 100.0])]  # fmt: skip
    SCHEMA.validate(pd.DataFrame(rows)).to_csv(tmp_path / "throughput_timm.csv", index=False)
    text = report.extras(tmp_path)
    assert "1.05x" in text and "9.5%" in text  # medians 105 / 100; (110 - 100) / 105


def test_train_speed_compares_equal_settings_and_records_them(tiny_cifar, tmp_path, capsys):
    code = main(["train-speed", "resnet20", "--profile", "smoke", "--data", str(tiny_cifar),
                 "--iterations", "1", "--warmup", "1", "--batch-size", "8", "--input-size",
                 "16", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    table = read_table(tmp_path / schemas.TRAIN_SPEED_FILE, schemas.TRAIN_SPEED).set_index("loop")
    ours, theirs = table.loc["suite"], table.loc["conventional"]
    for column in ("precision", "batch_size", "input_size", "cudnn_benchmark", "tf32_matmul",
                   "tf32_cudnn", "iterations", "warmup"):  # fmt: skip
        assert ours[column] == theirs[column], column
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert theirs["workers"] == cores == theirs["cpu_cores"]
    assert theirs["persistent_workers"] and not theirs["pin_memory"]  # no GPU: nothing to pin
    assert "PIL" in theirs["data"] and "every step" in theirs["loss_read"]
    # On a CPU both take the eager step and torch's for-loop SGD (ours is fused on a GPU).
    assert ours["step"] == theirs["step"] == "eager"
    assert ours["optimizer"] == theirs["optimizer"] == "SGD for-loop"
    assert ours["speedup"] == pytest.approx(theirs["seconds"] / ours["seconds"])
    assert "speed-up" in report.loop_speed(
        read_table(tmp_path / schemas.TRAIN_SPEED_FILE, schemas.TRAIN_SPEED)
    )
