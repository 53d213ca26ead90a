"""The measurement itself, run inside a fresh child interpreter (see `parent.py` for why).

`measure_one` times one batch: the warm-up, the peak memory reset (so `peak_mem_mb` covers the
timed steps, and a graph step's capture), `repeats` windows of `steps` steps (median and IQR),
and one more step that counts host synchronisations. A training step is the one `ablate train`
takes on the device."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablations.errors import CaptureError
from ablations.measure import synchronize, timed
from ablations.measure.throughput.reference import achieved, setting_macs
from ablations.measure.throughput.settings import Setting, default_batch
from ablations.models import ResNet
from ablations.registry import REGISTRY, Variant, get_variant, register_variant
from ablations.results import provenance
from ablations.train.steps import (
    GRAPH_WARMUP,
    InferStep,
    TrainStep,
    fresh_dynamo,
    set_tf32,
    step_of_kind,
    tf32_flags,
    use_device,
)


def prepare_process(device: torch.device) -> str:
    """Process-wide settings of the protocol; returns the `protocol` column's text."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes, as the training runner sets it
        return "synthetic inputs, fresh weights"
    # A fresh He-initialised net makes denormal activations and gradients that a trained one
    # does not; x86 cores run those ~100x slower. Flushed, a fresh net runs at a trained one's
    # speed. Whether the flush took effect is measured and recorded.
    torch.set_flush_denormal(True)
    return f"synthetic inputs, fresh weights, denormals {_denormal_state()}"


def _denormal_state() -> str:
    """'flushed' if denormal floats are really treated as zero now, else 'kept'."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # below float32's normal range (1.2e-38)
    return "flushed" if float((tiny * 1.0).item()) == 0.0 else "kept"


def make_step(setting: Setting, batch: int, device: torch.device) -> Callable[[], object]:
    """A zero-argument callable running one step of `setting` on synthetic device inputs."""
    set_tf32(setting.precision)
    torch.manual_seed(0)
    v = get_variant(setting.variant)
    model = ResNet(v).to(device)
    size = setting.input_size or v.input_size
    x = torch.randn(batch, v.in_channels, size, size, device=device)
    y = torch.randint(0, v.num_classes, (batch,), device=device)
    if setting.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if setting.mode == "train":
        train = TrainStep(model.train(), device=device, precision=setting.precision,
                          compile=setting.compile)  # fmt: skip
        step = step_of_kind(train, setting.step, train=train)
        return lambda: step(x, y)
    infer = InferStep(model, device=device, precision=setting.precision, compile=setting.compile)
    return lambda: infer(x)


def timed_windows(
    step: Callable[[], object], *, repeats: int, steps: int, device: torch.device
) -> list[float]:
    """Seconds per step in each of `repeats` windows of `steps` steps (CUDA events on a GPU)."""
    if device.type != "cuda":
        return [timed(step, device=device, steps=steps) / steps for _ in range(repeats)]
    times = []
    for _ in range(repeats):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(steps):
            step()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end) / 1000 / steps)
    return times


def host_syncs_per_step(step: Callable[[], object], device: torch.device) -> float:
    """Host synchronisations of one step (CUDA's sync debug mode warns on each); NaN on a CPU."""
    if device.type != "cuda":
        return math.nan
    synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    synchronize(device)
    return float(sum("synchroniz" in str(w.message) for w in caught))


def dynamo_counters() -> dict[str, int]:
    """Graphs dynamo captured, graph breaks, and frames it gave up on (run eagerly) so far."""
    from torch._dynamo.utils import counters

    frames = counters["frames"]
    return {
        "dynamo_graphs": int(counters["stats"]["unique_graphs"]),
        "dynamo_graph_breaks": int(sum(counters["graph_break"].values())),
        "dynamo_frames_skipped": int(frames["total"] - frames["ok"]),
    }


def _fresh_dynamo() -> None:
    """Dynamo as in a fresh process: after an OOM it would otherwise recompile the next batch
    with a dynamic batch dimension and time that graph. Its counters restart too, so a row
    counts the graphs of the attempt it measured."""
    from torch._dynamo.utils import counters

    fresh_dynamo()
    counters.clear()


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # Linux: "5" resets this process's peak RSS (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")


def _peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "process_peak_rss"
    return math.nan, "unavailable"


def peak_window(setting: Setting, device: torch.device) -> tuple[int, str | None]:
    """(warm-up calls before the peak memory reset, the `memory_kind` of the peak, None for the
    device's plain one). A graph step keeps its activations in the graph's private pool,
    reserved when it captures (the call after GRAPH_WARMUP eager ones), so its peak covers the
    capture and the replays. Any other step's peak covers the timed steps only."""
    if device.type == "cuda" and setting.mode == "train" and setting.step == "graph":
        return GRAPH_WARMUP, "cuda_max_allocated_from_capture"
    return setting.warmup, None


def measure_one(setting: Setting, batch: int, device: torch.device, macs: int) -> dict[str, Any]:
    """Measure one batch size; raises torch.cuda.OutOfMemoryError when it does not fit."""
    step = make_step(setting, batch, device)
    before, kind = peak_window(setting, device)
    first = timed(step, device=device)  # compilation, autotuning
    timed(step, device=device, steps=before - 1)
    _reset_peak_memory(device)
    timed(step, device=device, steps=setting.warmup - before)
    times = timed_windows(step, repeats=setting.repeats, steps=setting.steps, device=device)
    peak_mb, memory_kind = _peak_memory_mb(device)
    memory_kind = kind or memory_kind
    syncs = host_syncs_per_step(step, device)
    median = float(np.median(times))
    q25, q75 = np.percentile(times, [25, 75])
    name = provenance.device_name(device) if device.type == "cuda" else ""
    return {
        "status": "ok", "batch_size": batch, "images_per_s": batch / median,
        "step_ms": median * 1e3, "step_ms_iqr": (q75 - q25) * 1e3, "first_step_s": first,
        "peak_mem_mb": peak_mb, "memory_kind": memory_kind, "host_syncs_per_step": syncs,
        **achieved(macs=macs, batch=batch, mode=setting.mode, step_s=median, device_name=name,
                   precision=setting.precision),
    }  # fmt: skip


def _out_of_memory(err: RuntimeError) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def measure_setting(setting: Setting, device: torch.device) -> list[dict[str, Any]]:
    """Rows for one setting: one per batch tried (an "oom" row for each that did not fit). A
    failed capture ends the rows with its error row (`capture_failed`)."""
    macs = setting_macs(setting)
    batch = default_batch(setting, device)
    rows: list[dict[str, Any]] = []
    while batch >= 1:
        if setting.compile:
            _fresh_dynamo()
        try:
            rows.append(measure_one(setting, batch, device, macs))
            break
        except CaptureError as err:  # running out of memory while capturing is one
            rows.append({"status": "error", "batch_size": batch, "error": _error_text(err)})
            break
        except RuntimeError as err:  # torch.cuda.OutOfMemoryError is one
            if not _out_of_memory(err):
                raise
            rows.append({"status": "oom", "batch_size": batch, "error": "out of memory"})
        # Out of the handler: in it, the traceback still holds the failed attempt's tensors.
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if setting.batch_size != "max":
            break  # a fixed batch is reported as not fitting, never silently shrunk
        batch //= 2
    facts = {
        "macs": macs,
        **tf32_flags(),
        "torch_threads": torch.get_num_threads(),
        "cudnn": str(torch.backends.cudnn.version() or "") if device.type == "cuda" else "",
        **(dynamo_counters() if setting.compile else {}),
    }
    return [{**facts, **row} for row in rows]


def _error_text(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"[:300]


def capture_failed(rows: list[dict[str, Any]]) -> bool:
    """Whether a setting's rows end in a failed CUDA graph capture, after which CUDA's state is
    broken (see `_error_text` for the row's text)."""
    return bool(rows) and str(rows[-1].get("error", "")).startswith(CaptureError.__name__)


def serve(conn: Connection, messages: list[dict[str, Any]], *, started: str) -> None:
    """A child process: measure each message's setting (a `Setting` and its variant's axes),
    sending its rows as each ends, so a crash loses only the rest. After a failed CUDA graph
    capture CUDA's state is broken: the child sends that setting's rows (a sweep's "oom" rows,
    then the error row) and stops, and the parent measures the rest in a fresh child. A forked
    child's resident set leaves out the library pages it never touched: its memory is labelled
    apart."""
    warnings.simplefilter("ignore")  # the parent's log shows progress, not library warnings
    protocol: str | None = None
    for message in messages:
        setting = Setting(**message["setting"])
        variant = Variant.from_axes(message["variant"])
        if variant.name not in REGISTRY.names():
            register_variant(variant)  # registered at run time in the parent
        device = torch.device(setting.device)
        use_device(device)
        protocol = protocol or prepare_process(device)
        try:
            rows = measure_setting(setting, device)
        except Exception as err:  # one failing setting must not lose the others
            rows = [{"status": "error", "error": _error_text(err)}]
        forked = started != "spawn"
        for row in rows:
            if forked and row.get("memory_kind") == "process_peak_rss":
                row["memory_kind"] = "forked_process_peak_rss"
        conn.send([{"setting": asdict(setting), "protocol": protocol, **row} for row in rows])
        if capture_failed(rows):
            break
    conn.close()
