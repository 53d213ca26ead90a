from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
from dataclasses import asdict

import pandas as pd
import pytest
import torch
import torch._dynamo

from ablations import derive, register_variant
from ablations.cli import main
from ablations.errors import CaptureError
from ablations.measure import throughput as tp
from ablations.measure.throughput import child, parent, reference, settings
from ablations.measure.throughput.settings import Setting
from ablations.registry import AblationsError, get_variant
from ablations.report import throughput as throughput_report
from ablations.results import provenance, schemas
from ablations.results.table import read_table
from ablations.train import steps
from ablations.train.steps import GRAPH_WARMUP

QUICK = {"warmup": 1, "repeats": 2, "steps": 1}


def _quick(variants, **kwargs):
    return tp.grid(variants, device="cpu", **{**QUICK, **kwargs})


def test_cpu_run_measures_every_setting_in_a_subprocess(tmp_path):
    out = tmp_path / "throughput.csv"
    grid = _quick(["resnet20"], batch_sizes=[4], channels_last=(False, True))
    table = tp.run(grid, out=out, show_progress=False)
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
    assert set(table["peak_source"]) == {""}
    assert table["host_syncs_per_step"].isna().all()  # no device to wait for on a CPU
    assert set(table["memory_kind"]) <= {"forked_process_peak_rss", "unavailable"}
    assert set(table["reference"]) == {"ours"}
    # The child flushed denormals, and checked that the flush is in effect.
    assert set(table["protocol"]) == {"synthetic inputs, fresh weights, denormals flushed"}
    for column in ("machine", "torch", "git_commit", "created_at", "torch_threads"):
        assert table[column].astype(str).str.len().min() > 0
    assert len(read_table(out, schemas.THROUGHPUT)) == 4


def test_the_denormal_check_sees_the_flush():
    try:
        assert torch.set_flush_denormal(True)
        assert child._denormal_state() == "flushed"
        torch.set_flush_denormal(False)
        assert child._denormal_state() == "kept"
    finally:
        torch.set_flush_denormal(False)


def test_appending_keeps_earlier_rows(tmp_path):
    out = tmp_path / "throughput.csv"
    tp.run(_quick(["resnet20"], modes=["infer"], batch_sizes=[2]), out=out, show_progress=False)
    tp.run(_quick(["plain20"], modes=["infer"], batch_sizes=[2]), out=out, show_progress=False)
    assert list(read_table(out, schemas.THROUGHPUT)["variant"]) == ["resnet20", "plain20"]


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


def test_cpu_timing_defaults_per_family():
    cifar, imagenet = tp.grid(["resnet20", "resnet50"], device="cpu", modes=["train"])
    assert (cifar.warmup, cifar.repeats, cifar.steps) == (5, 7, 10)
    assert (imagenet.warmup, imagenet.repeats, imagenet.steps) == (2, 5, 3)
    assert (cifar.precision, cifar.channels_last) == ("fp32", False)


def test_gpu_grid_covers_training_precision_and_both_memory_formats(monkeypatch):
    monkeypatch.setattr(settings, "resolve_device", lambda d: torch.device("cuda"))
    grid = tp.grid(["resnet56"])
    assert {(s.mode, s.precision, s.channels_last) for s in grid} == {
        (m, p, cl) for m in ("infer", "train") for p in ("bf16", "tf32") for cl in (False, True)
    }
    assert {(s.warmup, s.repeats, s.steps, s.device) for s in grid} == {(10, 7, 20, "cuda")}


def test_a_variant_registered_at_run_time_is_measured(scratch_registry):
    register_variant(derive("resnet20", name="resnet20-w2", width=32))
    table = tp.run(_quick(["resnet20-w2"], modes=["infer"], batch_sizes=[2]), show_progress=False)
    assert table["status"].tolist() == ["ok"]
    assert table["macs"].iloc[0] > 40_551_040


def _report_one_then_exit(conn, messages, *, started):  # dies after its first setting
    child.serve(conn, messages[:1], started=started)
    os._exit(3)


def _killed(conn, messages, *, started):  # as the kernel's OOM killer ends a child
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_crashing_child_is_recorded_and_keeps_what_it_measured(monkeypatch):
    monkeypatch.setattr(parent, "CHILD", _report_one_then_exit)
    table = tp.run(_quick(["resnet20"], modes=["infer", "train"], batch_sizes=[2]),
                   show_progress=False)  # fmt: skip
    assert table["status"].tolist() == ["ok", "crashed"]
    assert table["error"].iloc[1] == "child exited with status 3 before reporting"


def test_a_killed_child_does_not_stop_the_sweep(monkeypatch):
    monkeypatch.setattr(parent, "CHILD", _killed)
    table = tp.run(
        _quick(["resnet20", "plain20"], modes=["infer"], batch_sizes=[2]), show_progress=False
    )
    assert table["status"].tolist() == ["crashed", "crashed"]
    assert set(table["error"]) == {"child killed by SIGKILL (out of memory?)"}


def _capture_fails_at(batch):  # measure_setting, as a graph step whose capture fails for `batch`
    def fake(setting, device):
        if setting.batch_size == batch:
            raise CaptureError("CUDA graph capture failed: operation not permitted")
        return [{"status": "ok", "batch_size": setting.batch_size, "pid": os.getpid()}]

    return fake


def _capture_fails_at_3(conn, messages, *, started):  # in the child: batch 3's capture fails
    child.measure_setting = _capture_fails_at(3)
    child.serve(conn, messages, started=started)


def test_a_child_stops_serving_after_a_failed_capture(monkeypatch):
    measured = []
    fake = _capture_fails_at(3)
    monkeypatch.setattr(child, "measure_setting",
                        lambda s, d: measured.append(s.batch_size) or fake(s, d))  # fmt: skip
    monkeypatch.setattr(child, "prepare_process", lambda d: "p")  # this process's denormals stay
    grid = _quick(["resnet20"], modes=["infer"], batch_sizes=[2, 3, 4])
    messages = [{"setting": asdict(s), "variant": get_variant(s.variant).axes()} for s in grid]
    receive, send = mp.Pipe(duplex=False)
    child.serve(send, messages, started="fork")
    rows = receive.recv() + receive.recv()
    with pytest.raises(EOFError):  # closed: nothing more comes
        receive.recv()
    assert measured == [2, 3]  # nothing after the failed capture
    assert [(r["status"], r["setting"]["batch_size"]) for r in rows] == [("ok", 2), ("error", 3)]
    assert rows[1]["error"] == "CaptureError: CUDA graph capture failed: operation not permitted"


def test_the_settings_after_a_failed_capture_are_measured_in_a_fresh_child(monkeypatch):
    monkeypatch.setattr(parent, "CHILD", _capture_fails_at_3)
    [group] = parent.process_groups(_quick(["resnet20"], modes=["infer"], batch_sizes=[2, 3, 4]))
    rows = parent.run_child(group)
    assert [(r["status"], r["setting"]["batch_size"]) for r in rows] == [
        ("ok", 2), ("error", 3), ("ok", 4)]  # fmt: skip
    assert rows[1]["error"].startswith("CaptureError: CUDA graph capture failed")
    assert rows[0]["pid"] != rows[2]["pid"]  # batch 4 in a new child


def _capture_fails_below(limit):  # measure_one: out of memory above `limit`, capture fails at it
    oom = _oom_above(limit)

    def fake(setting, batch, device, macs):
        if batch == limit:
            raise CaptureError("CUDA graph capture failed: CUDA out of memory")
        return oom(setting, batch, device, macs)

    return fake


def test_a_failed_capture_in_a_sweep_keeps_the_oom_rows_before_it(monkeypatch):
    measured = []
    fake = _capture_fails_below(1024)
    monkeypatch.setattr(
        child, "measure_one", lambda s, b, d, m: measured.append(b) or fake(s, b, d, m)
    )
    monkeypatch.setattr(child, "setting_macs", lambda s: 1)
    monkeypatch.setattr(child, "prepare_process", lambda d: "p")
    sweep = Setting(variant="resnet20", device="cuda", batch_size="max")
    after = Setting(variant="resnet20", device="cuda", batch_size=64)
    messages = [{"setting": asdict(s), "variant": get_variant(s.variant).axes()}
                for s in (sweep, after)]  # fmt: skip
    receive, send = mp.Pipe(duplex=False)
    child.serve(send, messages, started="spawn")
    rows = receive.recv()
    with pytest.raises(EOFError):  # the child stopped: the next setting goes to a fresh one
        receive.recv()
    assert measured == [4096, 2048, 1024]
    assert [(r["status"], r["batch_size"]) for r in rows] == [
        ("oom", 4096), ("oom", 2048), ("error", 1024)]  # fmt: skip
    assert rows[2]["error"] == "CaptureError: CUDA graph capture failed: CUDA out of memory"
    assert all(r["macs"] == 1 and r["setting"]["batch_size"] == "max" for r in rows)


def test_the_cache_is_emptied_after_an_oom_is_handled(monkeypatch):
    handling = []  # whether an exception was being handled at each empty_cache
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: handling.append(sys.exc_info()[0]))
    monkeypatch.setattr(child, "measure_one", _oom_above(1024))
    monkeypatch.setattr(child, "setting_macs", lambda s: 1)
    sweep = Setting(variant="resnet20", device="cuda", batch_size="max")
    rows = child.measure_setting(sweep, torch.device("cuda"))
    assert [r["status"] for r in rows] == ["oom", "oom", "ok"]
    assert handling == [None, None]  # one per oom, with its traceback (and tensors) let go


def test_the_parent_hands_its_cached_gpu_memory_back_before_the_children(monkeypatch):
    calls = []
    monkeypatch.setattr(parent.gc, "collect", lambda: calls.append("collect") or 0)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    environment = provenance.environment
    monkeypatch.setattr(provenance, "environment", lambda d: environment("cpu"))  # no GPU here

    def measured(group):
        calls.append("child")
        return [{"setting": asdict(s), "status": "crashed", "error": "x"} for s in group]

    monkeypatch.setattr(parent, "run_child", measured)
    gpu = [Setting(variant="resnet20", device="cuda", batch_size=2)]
    tp.run(gpu, show_progress=False)
    assert calls == ["collect", "empty_cache", "child"]
    calls.clear()
    tp.run(_quick(["resnet20"], modes=["infer"], batch_sizes=[2]), show_progress=False)
    assert calls == ["child"]  # a CPU's memory goes back when a child ends


def test_cpu_children_fork_from_an_import_only_server_and_gpu_children_spawn():
    assert parent.start_method("cpu").get_start_method() == "forkserver"
    assert parent.start_method("cuda").get_start_method() == "spawn"


def test_a_spawned_child_measures_as_a_forked_one_does(monkeypatch):
    monkeypatch.setattr(parent, "start_method", lambda device: mp.get_context("spawn"))
    table = tp.run(_quick(["resnet20"], modes=["infer"], batch_sizes=[2]), show_progress=False)
    assert table["status"].tolist() == ["ok"] and table["images_per_s"].iloc[0] > 0
    assert table["memory_kind"].tolist() == ["process_peak_rss"]  # forked ones are labelled apart


def test_each_compiled_setting_gets_a_process_of_its_own():
    grid = _quick(["resnet20", "plain20"], compile=(False, True), runs=2)
    groups = parent.process_groups(grid)
    compiled = [g for g in groups if g[0].compile]
    eager = [g for g in groups if not g[0].compile]
    assert len(compiled) == 2 * 2 * 2 and all(len(g) == 1 for g in compiled)  # variant x mode x run
    assert sorted((g[0].variant, g[0].run, len(g)) for g in eager) == [
        ("plain20", 0, 2), ("plain20", 1, 2), ("resnet20", 0, 2), ("resnet20", 1, 2)]  # fmt: skip
    assert all(not s.compile for g in eager for s in g)


def test_dynamo_counters_count_graphs_and_the_recompile_limit_is_an_error():
    import torch._dynamo.config as config

    if not hasattr(config, "fail_on_recompile_limit_hit"):
        pytest.skip("this torch has no fail_on_recompile_limit_hit")

    def add_one(x):
        return x + 1

    # dynamo's own patch restores its entries (pytest's monkeypatch would delete them)
    with config.patch(fail_on_recompile_limit_hit=False, recompile_limit=1):
        torch._dynamo.reset()
        before = child.dynamo_counters()["dynamo_graphs"]
        compiled = torch.compile(add_one, backend="eager", dynamic=False)
        compiled(torch.ones(2))
        assert child.dynamo_counters()["dynamo_graphs"] == before + 1
        steps.strict_dynamo()
        assert config.fail_on_recompile_limit_hit
        with pytest.raises(Exception, match="recompile"):  # a second shape: a recompile
            compiled(torch.ones(2, dtype=torch.int64))
    torch._dynamo.reset()
    assert hasattr(config, "fail_on_recompile_limit_hit")


@pytest.mark.parametrize(
    ("mode", "step", "device", "expected"),
    [
        ("train", "graph", "cuda", (GRAPH_WARMUP, "cuda_max_allocated_from_capture")),
        ("train", "eager", "cuda", (6, None)),
        ("infer", "eager", "cuda", (6, None)),
        ("train", "eager", "cpu", (6, None)),
    ],
)
def test_a_graph_steps_peak_memory_covers_its_capture(mode, step, device, expected):
    setting = Setting(variant="resnet20", mode=mode, step=step, device=device, warmup=6)
    assert child.peak_window(setting, torch.device(device)) == expected


def _reset_after(monkeypatch, setting, make_step):
    """The step calls made before each peak memory reset, all step calls, and the row."""
    calls, resets = [], []

    def counted(*args):
        step = make_step(*args)
        return lambda: calls.append(1) or step()

    monkeypatch.setattr(child, "make_step", counted)
    monkeypatch.setattr(child, "_reset_peak_memory", lambda d: resets.append(len(calls)))
    row = child.measure_one(setting, 2, torch.device("cpu"), 1)
    return resets, len(calls), row


def test_peak_memory_is_reset_after_warm_up(monkeypatch):
    setting = Setting(variant="resnet20", mode="train", warmup=3, repeats=2, steps=2)
    resets, calls, row = _reset_after(monkeypatch, setting, child.make_step)
    assert resets == [3] and calls == 3 + 2 * 2
    assert row["memory_kind"] in {"process_peak_rss", "unavailable"}


def test_a_graph_steps_peak_memory_is_reset_before_its_capture(monkeypatch):
    window = child.peak_window
    monkeypatch.setattr(child, "peak_window", lambda s, d: window(s, torch.device("cuda")))
    setting = Setting(variant="resnet20", mode="train", step="graph", device="cuda", warmup=6,
                      repeats=2, steps=2)  # fmt: skip
    resets, calls, row = _reset_after(monkeypatch, setting, lambda *a: lambda: None)
    assert resets == [GRAPH_WARMUP] and calls == 6 + 2 * 2  # the same warm-up in all
    assert row["memory_kind"] == "cuda_max_allocated_from_capture"


def _oom_above(limit):
    def fake(setting, batch, device, macs):
        if batch > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return {"status": "ok", "batch_size": batch, "images_per_s": 1.0}

    return fake


def test_batch_sweep_steps_down_and_names_what_it_measured(monkeypatch):
    monkeypatch.setattr(child, "measure_one", _oom_above(512))
    monkeypatch.setattr(child, "setting_macs", lambda s: 1)
    setting = Setting(variant="resnet20", device="cuda", batch_size="max")
    rows = child.measure_setting(setting, torch.device("cpu"))
    assert [(r["status"], r["batch_size"]) for r in rows] == [
        ("oom", 4096), ("oom", 2048), ("oom", 1024), ("ok", 512)]  # fmt: skip


@pytest.mark.parametrize("compile", [True, False])
def test_each_attempt_of_a_compiled_batch_sweep_starts_dynamo_afresh(monkeypatch, compile):
    calls = []
    oom = _oom_above(512)
    monkeypatch.setattr(torch._dynamo, "reset", lambda: calls.append("reset"))
    monkeypatch.setattr(child, "measure_one", lambda *a: calls.append("measure") or oom(*a))
    monkeypatch.setattr(child, "setting_macs", lambda s: 1)
    setting = Setting(variant="resnet20", device="cuda", batch_size="max", compile=compile)
    rows = child.measure_setting(setting, torch.device("cpu"))
    assert len(rows) == 4  # 4096, 2048, 1024: out of memory; 512 fits
    assert calls == (["reset", "measure"] if compile else ["measure"]) * 4


def test_a_fixed_batch_that_does_not_fit_is_reported_not_shrunk(monkeypatch):
    monkeypatch.setattr(child, "measure_one", _oom_above(512))
    monkeypatch.setattr(child, "setting_macs", lambda s: 1)
    rows = child.measure_setting(
        Setting(variant="resnet20", device="cuda", batch_size=1024), torch.device("cpu")
    )
    assert [(r["status"], r["batch_size"]) for r in rows] == [("oom", 1024)]


def test_other_errors_are_not_mistaken_for_oom(monkeypatch):
    def broken(*args):
        raise RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR")

    monkeypatch.setattr(child, "measure_one", broken)
    monkeypatch.setattr(child, "setting_macs", lambda s: 1)
    with pytest.raises(RuntimeError, match="CUDNN"):
        child.measure_setting(
            Setting(variant="resnet20", device="cuda", batch_size=64), torch.device("cpu")
        )


# torch.cuda.get_device_name() strings as the driver reports them.
@pytest.mark.parametrize(
    ("name", "part", "bf16", "tf32", "fp32"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM5", 989.4, 494.7, 66.9),
        ("NVIDIA H100 PCIe", "H100 PCIe", 756.5, 378.0, 51.2),
        ("NVIDIA H100 NVL", "H100 NVL", 835.5, 417.5, 60.0),
        ("NVIDIA H200", "H200 SXM", 989.5, 494.5, 67.0),
        ("NVIDIA H200 NVL", "H200 NVL", 835.5, 417.5, 60.0),
        ("NVIDIA L4", "L4", 121.0, 60.0, 30.3),
        ("NVIDIA L40", "L40", 181.05, 90.5, 90.5),
        ("NVIDIA L40S", "L40S", 362.05, 183.0, 91.6),
        ("NVIDIA A10", "A10", 125.0, 62.5, 31.2),
        ("NVIDIA A100-SXM4-80GB", "A100", 312.0, 156.0, 19.5),
        ("NVIDIA A100 80GB PCIe", "A100", 312.0, 156.0, 19.5),
        ("Tesla V100-SXM2-16GB", "V100 SXM2", math.nan, math.nan, 15.7),
        ("Tesla V100-PCIE-32GB", "V100 PCIe", math.nan, math.nan, 14.0),
        ("Tesla T4", "T4", math.nan, math.nan, 8.1),  # no bf16/TF32 tensor cores
        ("NVIDIA A10G", None, math.nan, math.nan, math.nan),  # no NVIDIA datasheet: no guess
        ("NVIDIA GeForce GTX 1080", None, math.nan, math.nan, math.nan),
        ("NVIDIA H100", None, math.nan, math.nan, math.nan),  # which H100? unknown, not SXM
        ("AMD EPYC (2 cores)", None, math.nan, math.nan, math.nan),
    ],
)
def test_peaks_match_the_exact_device_name(name, part, bf16, tf32, fp32):
    sheet = reference.datasheet(name)
    assert (sheet.part if sheet else None) == part
    for precision, peak in (("bf16", bf16), ("tf32", tf32), ("fp32", fp32)):
        got = reference.peak_tflops(name, precision)
        assert (math.isnan(got) and math.isnan(peak)) or got == peak
    if sheet:
        assert sheet.source and reference.peak_tflops(name, "fp16") >= reference.peak_tflops(
            name, "fp32"
        )


def test_fraction_of_peak_names_its_datasheet():
    got = reference.achieved(macs=10**9, batch=100, mode="infer", step_s=0.001,
                         device_name="NVIDIA H200", precision="bf16")  # fmt: skip
    assert got["tflops"] == pytest.approx(200)
    assert got["fraction_of_peak"] == pytest.approx(200 / 989.5)
    assert got["peak_source"].startswith("H200 SXM: ")


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
        "variant": "resnet20", "mode": "train", "step": "eager", "reference": "ours",
        "machine": "m", "precision": "fp32", "channels_last": False, "compile": False,
        "requested_batch_size": "32", "batch_size": 32, "input_size": 32, "warmup": 2,
        "repeats": 3, "steps": 3, "status": "ok",
    }  # fmt: skip
    runs = {"run": [0, 1, 2], "images_per_s": [100.0, 102.0, 98.0]}
    rows = pd.DataFrame({k: [v] * 3 for k, v in setting.items()} | runs)
    [row] = throughput_report.spread(rows).to_dict("records")
    assert row["count"] == 3 and row["spread"] == pytest.approx(0.04)


def test_cli_bench_prints_and_appends_into_a_folder(tmp_path, capsys):
    argv = ["bench", "resnet20", "--mode", "infer", "--batch-size", "2", "--warmup", "1",
            "--repeats", "2", "--steps", "1", "--runs", "2", "--out", str(tmp_path)]  # fmt: skip
    code = main(argv)
    printed = capsys.readouterr().out
    assert code == 0
    assert "images/s" in printed and "run-to-run spread of images/s over 2 runs (ours)" in printed
    assert f"appended to {tmp_path / 'throughput.csv'}" in printed  # a folder: throughput.csv
    assert len(read_table(tmp_path / "throughput.csv", schemas.THROUGHPUT)) == 2


def test_cli_bench_bad_input_is_one_line(capsys):
    assert main(["bench", "resnet20", "--batch-size", "max"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a GPU" in err


def test_a_table_from_an_older_protocol_is_refused_in_one_line(tmp_path, capsys):
    old = tmp_path / "throughput.csv"
    columns = [c for c in schemas.THROUGHPUT.columns if c not in ("protocol", "reference")]
    old.write_text(",".join(columns) + "\n")
    assert main(["bench", "resnet20", "--mode", "infer", "--batch-size", "2", "--warmup", "1",
                 "--repeats", "1", "--steps", "1", "--out", str(old)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "move it aside and re-measure" in err


# --- timm's benchmark.py as the reference ------------------------------------------------------


def test_reference_timm_without_timm_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(reference.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AblationsError, match=r"pip install timm"):
        reference.check([Setting(variant="resnet50")])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "resnet56"}, "no counterpart of 'resnet56'"),
        ({"variant": "resnet50", "device": "cuda", "precision": "fp32"}, "use tf32"),
        ({"variant": "resnet50", "repeats": 1, "steps": 4}, ">= 5 timed steps"),
    ],
)
def test_reference_timm_refuses_what_it_cannot_match(monkeypatch, kwargs, message):
    monkeypatch.setattr(reference.importlib.util, "find_spec", lambda name: object())
    with pytest.raises(AblationsError, match=message):
        reference.check([Setting(**kwargs)])


def test_timm_command_uses_the_same_settings(tmp_path):
    setting = Setting(variant="resnet50", mode="train", device="cuda", precision="bf16",
                      channels_last=True, batch_size=256, warmup=10, repeats=7,
                      steps=20)  # fmt: skip
    cmd = reference.command(setting, batch=256, results_file=tmp_path / "r.json")
    text = " ".join(cmd[1:])
    assert cmd[1].endswith(os.path.join("bench", "third_party", "timm_benchmark.py"))
    for part in ("--model resnet50", "--bench train", "--device cuda", "-b 256",
                 "--img-size 224", "--num-warm-iter 10", "--num-bench-iter 140",
                 "--amp --amp-dtype bfloat16", "--channels-last", "--no-retry"):  # fmt: skip
        assert part in text
    assert "--torchcompile" not in text
    assert reference.SCRIPT.exists() and "source commit" in reference.SCRIPT.read_text()[:600]


def test_timm_results_become_our_columns(monkeypatch):
    monkeypatch.setattr(reference, "setting_macs", lambda s: 10**9)
    setting = Setting(variant="resnet18", mode="infer", batch_size=2)
    results = {"infer_samples_per_sec": 50.0, "infer_step_time": 40.0, "infer_batch_size": 2}
    got = reference.parse(results, setting=setting, device=torch.device("cpu"))
    assert (got["status"], got["images_per_s"], got["step_ms"]) == ("ok", 50.0, 40.0)
    assert got["macs"] == 10**9 and got["tflops"] == pytest.approx(2 * 10**9 * 2 / 0.04 / 1e12)
    failed = reference.parse({"error": "CUDA out of memory"}, setting=setting,
                            device=torch.device("cpu"))  # fmt: skip
    assert failed["status"] == "oom"


@pytest.mark.slow
def test_ours_and_timm_side_by_side_on_the_cpu(tmp_path, capsys):
    pytest.importorskip("timm")
    code = main(["bench", "resnet18", "--mode", "train", "--input-size", "32", "--batch-size",
                 "2", "--warmup", "1", "--repeats", "1", "--steps", "5", "--reference", "timm",
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    table = read_table(tmp_path / schemas.REFERENCE_FILE, schemas.THROUGHPUT)
    assert sorted(table["reference"]) == ["ours", "timm"]
    assert set(table["status"]) == {"ok"}, table["error"].tolist()
    assert (table["images_per_s"] > 0).all()
    assert table.set_index("reference").loc["timm", "protocol"].startswith("timm benchmark.py@")


CUDA = torch.device("cuda")  # resolve_step needs no GPU to decide


@pytest.mark.parametrize(
    ("mode", "precision", "compile", "expected"),
    [
        ("train", "bf16", False, "graph"),  # what `ablate train` takes on a GPU
        ("train", "fp16", False, "eager"),  # GradScaler's dynamic scale: not captured
        ("train", "bf16", True, "eager"),  # torch.compile: its own graphs
        ("infer", "bf16", False, "eager"),
    ],
)
def test_bench_times_the_step_training_takes(mode, precision, compile, expected):
    assert settings._step("auto", mode=mode, device=CUDA, precision=precision,
                          compile=compile) == expected  # fmt: skip
    assert {s.step for s in _quick(["resnet20"])} == {"eager"}  # on a CPU: eager, as trained


def test_a_graph_step_needs_a_gpu_and_a_warmup_past_its_capture(capsys):
    with pytest.raises(AblationsError, match="needs a CUDA device"):
        _quick(["resnet20"], modes=["train"], step="graph")
    with pytest.raises(AblationsError, match="needs --warmup > 3"):
        Setting(variant="resnet20", device="cuda", step="graph", warmup=3)
    with pytest.raises(AblationsError, match="not eager or graph"):
        Setting(variant="resnet20", step="auto")
    assert main(["bench", "resnet20", "--step", "graph", "--mode", "train"]) == 2
    assert "use --step auto or eager" in capsys.readouterr().err


def test_rows_from_before_the_step_column_read_as_eager(tmp_path):
    table = tp.run(_quick(["resnet20"], modes=["infer"], batch_sizes=[2]),
                   out=tmp_path / "t.csv", show_progress=False)  # fmt: skip
    assert set(table["step"]) == {"eager"}
    pd.read_csv(tmp_path / "t.csv").drop(columns="step").to_csv(tmp_path / "t.csv", index=False)
    old = read_table(tmp_path / "t.csv", schemas.THROUGHPUT)
    assert set(old["step"]) == {"eager"}
    assert tp.setting_key(old.iloc[0].to_dict()) == tp.setting_key(
        {**vars(_quick(["resnet20"], modes=["infer"], batch_sizes=[2])[0])}
    )


@pytest.mark.gpu
def test_gpu_bench_replays_the_training_step_as_a_graph(tmp_path):
    grid = tp.grid(["resnet20"], device="cuda", modes=["train"], precisions=["bf16"],
                   channels_last=[True], warmup=5, repeats=2, steps=5)  # fmt: skip
    table = tp.run(grid, out=tmp_path / "t.csv", show_progress=False)
    assert list(table["step"]) == ["graph"] and list(table["status"]) == ["ok"], table["error"]
    assert (table["host_syncs_per_step"] == 0).all()
    assert list(table["memory_kind"]) == ["cuda_max_allocated_from_capture"]
