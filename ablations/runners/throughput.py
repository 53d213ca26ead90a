"""Throughput runner: images/s, step time and peak memory of variants, measured the careful way.

For each variant, in its own subprocess (so one variant's allocator state, compile caches or a
crash cannot distort or stop the next), every requested setting is measured as follows:

1. Synthetic inputs are created on the device; the step is the runners' own (`TrainStep`:
   forward + loss + backward + SGD step; `InferStep`: forward in inference mode).
2. The first step is timed alone (it includes `torch.compile` and cuDNN autotuning) and reported
   as `first_step_s`; `warmup - 1` more untimed steps follow.
3. `repeats` timed repeats of `steps` steps each, bracketed by CUDA events (on a GPU) or the
   monotonic clock after a synchronisation; the step time is the median over repeats, with the
   interquartile range as its spread. images/s = batch / median step time.
4. Peak memory: `torch.cuda.max_memory_allocated` over the timed region on a GPU; on a CPU the
   process's peak resident set size (VmHWM, reset before each setting on Linux).
5. Achieved TFLOP/s = 2 x MACs (fvcore, batch 1, at this input size) x batch / step time, with a
   training step counted as 3 forward passes (forward + backward for activations and weights);
   as a fraction of the device's dense peak for that precision where the device is in
   `PEAK_TFLOPS`, never a guess for an unknown device.

A batch size that runs out of memory is recorded as such (status "oom") and, in a sweep
(`batch_size="max"`), halved until it fits; every row names the batch it actually measured.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ablations import env
from ablations.config import resolve_device
from ablations.models import ResNet
from ablations.progress import progress
from ablations.registry import REGISTRY, AblationsError, Variant, get_variant, register_variant
from ablations.results import Schema, upsert
from ablations.runners.steps import PRECISIONS, InferStep, TrainStep, set_tf32, tf32_flags

THROUGHPUT_FILE = "throughput.csv"
MODES = ("infer", "train")
TRAIN_FLOPS_FACTOR = 3  # forward + backward (activation and weight gradients) ~ 3 forwards

# Dense (no sparsity) peak TFLOP/s per precision, from NVIDIA's datasheets; matched against
# torch.cuda.get_device_name() in order, first match wins. "fp32" is the non-tensor-core rate.
PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0}),
    ("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.0, "fp16": 835.0}),
    ("H100", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),  # SXM5
    ("H200", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),  # SXM
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
    ("L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.0, "fp16": 362.0}),
    ("A10", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0}),
    ("L4", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}),
    ("V100", {"fp32": 15.7, "fp16": 125.0}),
    ("T4", {"fp32": 8.1, "fp16": 65.0}),
]

SCHEMA = Schema(
    name="throughput",
    columns={
        "variant": "str", "family": "str", "depth": "int", "residual": "bool", "shortcut": "str",
        "stem": "str", "mode": "str", "device": "str", "machine": "str", "precision": "str",
        "channels_last": "bool", "compile": "bool", "requested_batch_size": "str",
        "batch_size": "int", "input_size": "int", "run": "int", "status": "str",
        "images_per_s": "float", "step_ms": "float", "step_ms_iqr": "float",
        "first_step_s": "float", "peak_mem_mb": "float", "memory_kind": "str", "macs": "int",
        "tflops": "float", "peak_tflops": "float", "fraction_of_peak": "float",
        "warmup": "int", "repeats": "int", "steps": "int", "error": "str",
        "torch": "str", "cuda": "str", "cudnn": "str", "driver": "str", "cudnn_benchmark": "bool",
        "tf32_matmul": "bool", "tf32_cudnn": "bool", "torch_threads": "int",
        "git_commit": "str", "created_at": "str", "cpu_flags": "str", "machine_id": "str",
    },
    added=env.MACHINE_HASHES_ADDED,
    key=("variant", "mode", "machine", "precision", "channels_last", "compile",
         "requested_batch_size", "batch_size", "input_size", "warmup", "repeats", "steps", "run"),
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One measurement: a variant in a mode under one precision/format/compile/batch/size."""

    variant: str
    mode: str = "train"
    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    # An int; None: the device's default for the family (see `defaults`); "max": a sweep down
    # from 4096 to the largest power of two that fits.
    batch_size: int | str | None = None
    input_size: int | None = None  # None: the variant's own
    warmup: int = 2
    repeats: int = 3
    steps: int = 3
    run: int = 0  # repetition index, for measuring run-to-run spread

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if isinstance(self.batch_size, str) and self.batch_size != "max":
            problems.append(f"batch size {self.batch_size!r} is neither a number nor 'max'")
        if self.batch_size == "max" and self.device == "cpu":
            problems.append("a batch-size sweep ('max') needs a GPU to run out of memory on")
        if min(self.warmup, self.repeats, self.steps) < 1:
            problems.append("warmup, repeats and steps must be >= 1")
        if problems:
            raise AblationsError("invalid throughput setting: " + "; ".join(problems))


def defaults(device: torch.device) -> dict[str, Any]:
    """Repeats and batch sizes that give stable numbers on a GPU and finish on a CPU."""
    if device.type == "cuda":
        return {"warmup": 10, "repeats": 7, "steps": 20, "batch": {"cifar": 128, "imagenet": 256}}
    return {"warmup": 2, "repeats": 3, "steps": 3, "batch": {"cifar": 32, "imagenet": 8}}


def peak_tflops(device_name: str, precision: str) -> float:
    """The dense peak for this device and precision; NaN where it is not in the table."""
    for pattern, peaks in PEAK_TFLOPS:
        if pattern in device_name:
            return peaks.get(precision, math.nan)
    return math.nan


# --- in the child process ------------------------------------------------------------------


def _inputs(
    setting: Setting, batch: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    v = get_variant(setting.variant)
    size = setting.input_size or v.input_size
    x = torch.randn(batch, v.in_channels, size, size, device=device)
    if setting.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, v.num_classes, (batch,), device=device)


def make_step(setting: Setting, batch: int, device: torch.device) -> Callable[[], object]:
    """A zero-argument callable running one step of `setting` on synthetic device inputs."""
    set_tf32(setting.precision)
    torch.manual_seed(0)
    model = ResNet(get_variant(setting.variant)).to(device)
    if setting.channels_last:
        model = model.to(memory_format=torch.channels_last)
    x, y = _inputs(setting, batch, device)
    if setting.mode == "train":
        train = TrainStep(model.train(), device=device, precision=setting.precision,
                          compile=setting.compile)  # fmt: skip
        return lambda: train(x, y)
    infer = InferStep(model, device=device, precision=setting.precision, compile=setting.compile)
    return lambda: infer(x)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(
    step: Callable[[], object], *, warmup: int, repeats: int, steps: int, device: torch.device
) -> tuple[float, list[float]]:
    """(first step seconds, per-step seconds of each timed repeat)."""
    start = time.perf_counter()
    step()
    _sync(device)
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            for _ in range(steps):
                step()
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / 1000 / steps)
        else:
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            times.append((time.perf_counter() - t0) / steps)
    return first, times


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # Linux: "5" resets this process's peak RSS (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")


def _peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "process_peak_rss"
    except OSError:
        pass
    return math.nan, "unavailable"


def _macs(setting: Setting) -> int:
    from ablations.runners.complexity import count_macs, uninitialised  # fvcore: child only

    v = get_variant(setting.variant)
    macs, _ = count_macs(uninitialised(v), input_size=setting.input_size or v.input_size,
                         in_channels=v.in_channels)  # fmt: skip
    return macs


def measure_one(setting: Setting, batch: int, device: torch.device, macs: int) -> dict[str, Any]:
    """Measure one batch size; raises torch.cuda.OutOfMemoryError when it does not fit."""
    _reset_peak_memory(device)
    step = make_step(setting, batch, device)
    first, times = time_step(step, warmup=setting.warmup, repeats=setting.repeats,
                             steps=setting.steps, device=device)  # fmt: skip
    peak_mb, memory_kind = _peak_memory_mb(device)
    median = float(np.median(times))
    q25, q75 = np.percentile(times, [25, 75])
    flops = 2 * macs * batch * (TRAIN_FLOPS_FACTOR if setting.mode == "train" else 1)
    tflops = flops / median / 1e12
    name = env.device_name(device)
    peak = peak_tflops(name, setting.precision) if device.type == "cuda" else math.nan
    return {
        "status": "ok", "batch_size": batch, "images_per_s": batch / median,
        "step_ms": median * 1e3, "step_ms_iqr": (q75 - q25) * 1e3, "first_step_s": first,
        "peak_mem_mb": peak_mb, "memory_kind": memory_kind, "tflops": tflops,
        "peak_tflops": peak, "fraction_of_peak": tflops / peak if peak else math.nan,
    }  # fmt: skip


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def measure_setting(setting: Setting, device: torch.device) -> list[dict[str, Any]]:
    """Rows for one setting: one per batch tried (an "oom" row for each that did not fit)."""
    macs = _macs(setting)
    if setting.batch_size is None:
        batch = defaults(device)["batch"][get_variant(setting.variant).family]
    else:
        batch = 4096 if setting.batch_size == "max" else int(setting.batch_size)
    rows: list[dict[str, Any]] = []
    while batch >= 1:
        try:
            rows.append(measure_one(setting, batch, device, macs))
            break
        except (RuntimeError, torch.cuda.OutOfMemoryError) as err:
            if not _is_oom(err):
                raise
            rows.append({"status": "oom", "batch_size": batch, "error": "out of memory"})
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
    }
    return [{**facts, **row} for row in rows]


def child_main() -> None:
    """Entry point of the per-variant subprocess: settings as JSON lines in, rows out."""
    for line in sys.stdin:
        message = json.loads(line)
        setting = Setting(**message["setting"])
        variant = Variant.from_axes(message["variant"])
        if variant.name not in REGISTRY.names():
            register_variant(variant)
        device = torch.device(setting.device)
        # Fixed shapes: let cuDNN pick the fastest kernels, as the training runner does.
        torch.backends.cudnn.benchmark = device.type == "cuda"
        try:
            rows = measure_setting(setting, device)
        except Exception as err:  # one failing setting must not lose the others
            rows = [{"status": "error", "error": f"{type(err).__name__}: {err}"[:300]}]
        for row in rows:
            print(json.dumps({"setting": asdict(setting), **row}), flush=True)


# --- in the parent -------------------------------------------------------------------------


CHILD = "from ablations.runners.throughput import child_main; child_main()"


def _run_child(settings: Sequence[Setting]) -> list[dict[str, Any]]:
    """Measure `settings` (all of one variant) in a fresh interpreter. The variant travels as its
    axes, so variants registered at run time (not only built-ins) can be measured."""
    payload = "".join(
        json.dumps({"setting": asdict(s), "variant": get_variant(s.variant).axes()}) + "\n"
        for s in settings
    )
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], input=payload, capture_output=True, text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = {json.dumps(r["setting"], sort_keys=True) for r in rows}
    tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
    for s in settings:  # a crashed child: every setting it did not report is recorded as such
        if json.dumps(asdict(s), sort_keys=True) not in done:
            rows.append({"setting": asdict(s), "status": "crashed", "error": tail[0][:300]})
    return rows


def setting_key(fields: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a measurement, from a Setting's fields or a results row: the same
    variant, mode, precision, memory format, compile, batch policy, size, timing and run."""
    variant = get_variant(fields["variant"])
    requested = fields.get("requested_batch_size") or str(fields["batch_size"] or "default")
    return (
        variant.name, fields["mode"], fields["precision"], bool(fields["channels_last"]),
        bool(fields["compile"]), str(requested), int(fields["input_size"] or variant.input_size),
        int(fields["warmup"]), int(fields["repeats"]), int(fields["steps"]), int(fields["run"]),
    )  # fmt: skip


def _requested(setting: Setting) -> int:
    """The batch of a setting that produced no measurement (0 where none was fixed)."""
    return setting.batch_size if isinstance(setting.batch_size, int) else 0


def _row(result: dict[str, Any], environment: dict[str, Any]) -> dict[str, Any]:
    """A results row: the setting, what the child measured and reported, the environment."""
    setting = Setting(**result["setting"])
    v = get_variant(setting.variant)
    return {
        "variant": v.name, "family": v.family, "depth": v.depth, "residual": v.residual,
        "shortcut": v.shortcut, "stem": v.stem, "mode": setting.mode, "device": setting.device,
        "machine": environment["machine"], "precision": setting.precision,
        "channels_last": setting.channels_last, "compile": setting.compile,
        "requested_batch_size": str(setting.batch_size or "default"),
        "batch_size": result.get("batch_size", _requested(setting)),
        "input_size": setting.input_size or v.input_size, "run": setting.run,
        "warmup": setting.warmup, "repeats": setting.repeats, "steps": setting.steps,
        "error": result.get("error", ""), "macs": result.get("macs", 0),
        **{k: result.get(k, math.nan) for k in (
            "images_per_s", "step_ms", "step_ms_iqr", "first_step_s", "peak_mem_mb", "tflops",
            "peak_tflops", "fraction_of_peak")},
        "status": result["status"], "memory_kind": result.get("memory_kind", ""),
        **{k: result.get(k, False) for k in ("tf32_matmul", "tf32_cudnn", "cudnn_benchmark")},
        "cudnn": result.get("cudnn", ""), "torch_threads": result.get("torch_threads", 0),
        "driver": environment["driver"], "torch": environment["torch"],
        "cuda": environment["cuda"], "git_commit": environment["git_commit"],
        "created_at": environment["created_at"],
        **{k: environment[k] for k in env.MACHINE_HASHES},
    }  # fmt: skip


def run(
    settings: Iterable[Setting], *, out: Path | None = None, show_progress: bool = True
) -> pd.DataFrame:
    """Measure every setting, one subprocess per variant (and per repeated run, so that runs are
    independent); rows are appended to `out` as each finishes, so an interrupted sweep keeps
    what it measured."""
    groups: dict[tuple[str, int], list[Setting]] = {}
    for s in settings:
        groups.setdefault((s.variant, s.run), []).append(s)
    if not groups:
        raise AblationsError("nothing to measure")
    device = torch.device(next(iter(groups.values()))[0].device)
    environment = {**env.environment(device), "driver": env.driver_version()}
    tables = []
    keys = list(groups)
    for key in progress(keys, desc="throughput", label=_label) if show_progress else keys:
        rows = [_row(result, environment) for result in _run_child(groups[key])]
        table = SCHEMA.validate(pd.DataFrame(rows))
        if out is not None:
            upsert(out, table, SCHEMA)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _label(key: tuple[str, int]) -> str:
    return f"{key[0]} run {key[1]}" if key[1] else key[0]


def grid(
    variants: Sequence[str], *, device: str | torch.device | None = None,
    modes: Sequence[str] = MODES, precisions: Sequence[str] | None = None,
    channels_last: Sequence[bool] = (False,), compile: Sequence[bool] = (False,),
    batch_sizes: Sequence[int | str | None] | None = None, input_size: int | None = None,
    warmup: int | None = None, repeats: int | None = None, steps: int | None = None,
    runs: int = 1,
) -> list[Setting]:  # fmt: skip
    """Every combination of the given settings, with the device's defaults filled in."""
    dev = resolve_device(device)
    d = defaults(dev)
    precisions = precisions or (["bf16"] if dev.type == "cuda" else ["fp32"])
    for name in variants:
        get_variant(name)  # an unknown name fails here, with the closest names
    combos = product(variants, modes, precisions, channels_last, compile, batch_sizes or [None],
                     range(runs))  # fmt: skip
    return [
        Setting(
            variant=name,
            mode=mode,
            device=str(dev),
            precision=precision,
            channels_last=cl,
            compile=comp,
            batch_size=batch,
            input_size=input_size,
            warmup=warmup or d["warmup"],
            repeats=repeats or d["repeats"],
            steps=steps or d["steps"],
            run=run,
        )
        for name, mode, precision, cl, comp, batch, run in combos
    ]


def format_table(table: pd.DataFrame) -> str:
    """The measurements as a terminal table."""
    shown = pd.DataFrame({
        "variant": table["variant"], "mode": table["mode"], "precision": table["precision"],
        "channels_last": table["channels_last"], "compile": table["compile"],
        "batch": table["batch_size"], "status": table["status"],
        "images/s": table["images_per_s"].map("{:,.1f}".format),
        "step ms (IQR)": [f"{m:.2f} ({q:.2f})"
                          for m, q in zip(table["step_ms"], table["step_ms_iqr"], strict=True)],
        "peak MB": table["peak_mem_mb"].map("{:,.0f}".format),
        "TFLOP/s": table["tflops"].map("{:.3g}".format),
        "of peak": table["fraction_of_peak"].map(lambda f: "" if f != f else f"{f:.1%}"),
    })  # fmt: skip
    return f"# {table['machine'].iloc[0]}\n{shown.to_string(index=False)}"


def spread(table: pd.DataFrame) -> pd.DataFrame:
    """Run-to-run spread of images/s over repeated runs of the same setting:
    (max - min) / median, per setting."""
    keys = [k for k in SCHEMA.key if k != "run"]
    ok = table[table["status"] == "ok"]
    stats = ok.groupby(keys)["images_per_s"].agg(["count", "median", "min", "max"]).reset_index()
    stats["spread"] = (stats["max"] - stats["min"]) / stats["median"]
    return stats
