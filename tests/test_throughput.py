from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from ablations import derive, register_variant
from ablations.cli import main
from ablations.registry import AblationsError
from ablations.results import read_table
from ablations.runners import throughput as tp
from ablations.runners.throughput import Setting

QUICK = {"warmup": 1, "repeats": 2, "steps": 1}


def _quick(variants, **kwargs):
    return tp.grid(variants, device="cpu", **{**QUICK, **kwargs})


def test_cpu_run_measures_every_setting_in_a_subprocess(tmp_path):
    out = tmp_path / "throughput.csv"
    settings = _quick(["resnet20"], batch_sizes=[4], channels_last=(False, True))
    table = tp.run(settings, out=out, show_progress=False)
    assert len(table) == 4  # infer/train x NCHW/channels_last
    assert set(table["status"]) == {"ok"}
    assert (table["images_per_s"] > 0).all() and (table["step_ms"] > 0).all()
    assert (table["step_ms_iqr"] >= 0).all() and (table["first_step_s"] > 0).all()
    assert set(table["macs"]) == {40_551_040}  # fvcore at 32x32, as in the golden file
    train, infer = table[table["mode"] == "train"], table[table["mode"] == "infer"]
    ratio = (train["tflops"] * train["step_ms"]).iloc[0] / (
        infer["tflops"] * infer["step_ms"]
    ).iloc[0]
    assert ratio == pytest.approx(3)  # a training step counts 3 forward passes
    assert table["fraction_of_peak"].isna().all()  # no datasheet peak for a CPU
    assert set(table["memory_kind"]) <= {"process_peak_rss", "unavailable"}
    for column in ("machine", "torch", "git_commit", "created_at", "torch_threads"):
        assert table[column].astype(str).str.len().min() > 0
    assert len(read_table(out, tp.SCHEMA)) == 4


def test_appending_keeps_earlier_rows(tmp_path):
    out = tmp_path / "throughput.csv"
    tp.run(_quick(["resnet20"], modes=["infer"], batch_sizes=[2]), out=out, show_progress=False)
    tp.run(_quick(["plain20"], modes=["infer"], batch_sizes=[2]), out=out, show_progress=False)
    assert list(read_table(out, tp.SCHEMA)["variant"]) == ["resnet20", "plain20"]


def test_default_batch_follows_the_family():
    table = tp.run(_quick(["resnet20", "resnet18"], modes=["infer"]), show_progress=False)
    assert dict(zip(table["variant"], table["batch_size"], strict=True)) == {
        "resnet20": 32,
        "resnet18": 8,
    }
    assert set(table["requested_batch_size"]) == {"default"}
    assert dict(zip(table["variant"], table["input_size"], strict=True)) == {
        "resnet20": 32,
        "resnet18": 224,
    }


def test_a_variant_registered_at_run_time_is_measured(scratch_registry):
    register_variant(derive("resnet20", name="resnet20-w2", width=32))
    table = tp.run(_quick(["resnet20-w2"], modes=["infer"], batch_sizes=[2]), show_progress=False)
    assert table["status"].tolist() == ["ok"]
    assert table["macs"].iloc[0] > 40_551_040


def test_a_crashing_child_is_recorded_and_does_not_stop_the_sweep(monkeypatch):
    monkeypatch.setattr(tp, "CHILD", "import sys; print('boom', file=sys.stderr); sys.exit(3)")
    table = tp.run(
        _quick(["resnet20", "plain20"], modes=["infer"], batch_sizes=[2]), show_progress=False
    )
    assert table["status"].tolist() == ["crashed", "crashed"]
    assert set(table["error"]) == {"boom"}


def _oom_above(limit):
    def fake(setting, batch, device, macs):
        if batch > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return {"status": "ok", "batch_size": batch, "images_per_s": 1.0}

    return fake


def test_batch_sweep_steps_down_and_names_what_it_measured(monkeypatch):
    monkeypatch.setattr(tp, "measure_one", _oom_above(512))
    monkeypatch.setattr(tp, "_macs", lambda s: 1)
    setting = Setting(variant="resnet20", device="cuda", batch_size="max")
    rows = tp.measure_setting(setting, torch.device("cpu"))
    assert [(r["status"], r["batch_size"]) for r in rows] == [
        ("oom", 4096), ("oom", 2048), ("oom", 1024), ("ok", 512)]  # fmt: skip


def test_a_fixed_batch_that_does_not_fit_is_reported_not_shrunk(monkeypatch):
    monkeypatch.setattr(tp, "measure_one", _oom_above(512))
    monkeypatch.setattr(tp, "_macs", lambda s: 1)
    rows = tp.measure_setting(
        Setting(variant="resnet20", device="cuda", batch_size=1024), torch.device("cpu")
    )
    assert [(r["status"], r["batch_size"]) for r in rows] == [("oom", 1024)]


def test_other_errors_are_not_mistaken_for_oom(monkeypatch):
    def broken(*args):
        raise RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR")

    monkeypatch.setattr(tp, "measure_one", broken)
    monkeypatch.setattr(tp, "_macs", lambda s: 1)
    with pytest.raises(RuntimeError, match="CUDNN"):
        tp.measure_setting(
            Setting(variant="resnet20", device="cuda", batch_size=64), torch.device("cpu")
        )


@pytest.mark.parametrize(
    ("name", "precision", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.4),
        ("NVIDIA H100 PCIe", "bf16", 756.0),
        ("NVIDIA H200", "tf32", 494.7),
        ("NVIDIA A100-SXM4-80GB", "fp32", 19.5),
        ("NVIDIA GeForce GTX 1080", "fp32", math.nan),  # unknown: no guess
        ("NVIDIA T4", "bf16", math.nan),  # no bf16 tensor cores
    ],
)
def test_peak_table_is_keyed_by_device_name(name, precision, peak):
    got = tp.peak_tflops(name, precision)
    assert (math.isnan(got) and math.isnan(peak)) or got == peak


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "serve"}, "mode 'serve'"),
        ({"precision": "fp8"}, "precision 'fp8'"),
        ({"batch_size": "max"}, "needs a GPU"),
        ({"batch_size": "huge"}, "neither a number nor 'max'"),
        ({"repeats": 0}, ">= 1"),
    ],
)
def test_invalid_settings_say_what_is_wrong(kwargs, message):
    with pytest.raises(AblationsError, match=message):
        Setting(variant="resnet20", **kwargs)


def test_spread_over_repeated_runs():
    setting = {
        "variant": "resnet20", "mode": "train", "machine": "m", "precision": "fp32",
        "channels_last": False, "compile": False, "requested_batch_size": "32", "batch_size": 32,
        "input_size": 32, "warmup": 2, "repeats": 3, "steps": 3, "status": "ok",
    }  # fmt: skip
    runs = {"run": [0, 1, 2], "images_per_s": [100.0, 102.0, 98.0]}
    rows = pd.DataFrame({k: [v] * 3 for k, v in setting.items()} | runs)
    [row] = tp.spread(rows).to_dict("records")
    assert row["count"] == 3 and row["spread"] == pytest.approx(0.04)


def test_cli_bench_prints_and_appends(tmp_path, capsys):
    out = tmp_path / "t.csv"
    code = main(["bench", "resnet20", "--mode", "infer", "--batch-size", "2", "--warmup", "1",
                 "--repeats", "2", "--steps", "1", "--runs", "2", "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "images/s" in printed and "run-to-run spread" in printed
    assert len(read_table(out, tp.SCHEMA)) == 2


def test_cli_bench_bad_input_is_one_line(capsys):
    assert main(["bench", "resnet20", "--batch-size", "max"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a GPU" in err
