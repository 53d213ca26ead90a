"""timm's own benchmark as a reference: the same settings measured by timm's `benchmark.py`,
vendored unmodified in bench/third_party (it is not in the timm wheel) and run in its own
interpreter, one per (mode, run). Its rows have `reference` = "timm"; `protocol` says how its
measurement differs (a sync per step, the mean step time, TF32 for fp32 on a GPU)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from ablations.measure.throughput.peaks import achieved, setting_macs
from ablations.measure.throughput.settings import Setting, default_batch
from ablations.registry import AblationsError, get_variant

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "third_party" / "timm_benchmark.py"
TIMM_MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
MIN_STEPS = 5  # the script logs every num_bench_iter // 5 steps and divides by that
PRECISION_ARGS = {
    "bf16": ["--amp", "--amp-dtype", "bfloat16"],
    "fp16": ["--amp", "--amp-dtype", "float16"],
    "tf32": ["--precision", "float32"],  # the script turns TF32 on (on a GPU)
    "fp32": ["--precision", "float32"],  # only on a CPU: on a GPU the script's fp32 is TF32
}


def check(settings: list[Setting]) -> None:
    """Refuse, in one line, what timm's script cannot measure as the setting says."""
    if importlib.util.find_spec("timm") is None:
        raise AblationsError(
            "--reference timm needs timm (`pip install timm`); it is not a dependency of this suite"
        )
    if not SCRIPT.exists():
        raise AblationsError(f"timm's benchmark.py is not at {SCRIPT}; run from a git checkout")
    for s in settings:
        if get_variant(s.variant).name not in TIMM_MODELS:
            raise AblationsError(
                f"timm has no counterpart of {s.variant!r}; compare {', '.join(TIMM_MODELS)}"
            )
        if s.precision == "fp32" and s.device != "cpu":
            raise AblationsError("timm's benchmark.py runs fp32 as TF32 on a GPU: use tf32")
        if s.batch_size == "max":
            raise AblationsError("--reference timm needs a fixed --batch-size")
        if s.repeats * s.steps < MIN_STEPS:
            raise AblationsError(f"timm's benchmark.py needs >= {MIN_STEPS} timed steps "
                                 "(--repeats x --steps)")  # fmt: skip


def command(setting: Setting, *, batch: int, results_file: Path) -> list[str]:
    """The command line of timm's script for `setting`."""
    v = get_variant(setting.variant)
    return [
        sys.executable, str(SCRIPT), "--model", v.name,
        "--bench", "train" if setting.mode == "train" else "inference",
        "--device", setting.device, "-b", str(batch),
        "--img-size", str(setting.input_size or v.input_size),
        "--num-warm-iter", str(setting.warmup),
        "--num-bench-iter", str(setting.repeats * setting.steps),
        *PRECISION_ARGS[setting.precision],
        *(["--channels-last"] if setting.channels_last else []),
        *(["--torchcompile"] if setting.compile else []),
        "--no-retry", "--results-file", str(results_file), "--results-format", "json",
    ]  # fmt: skip


def protocol() -> str:
    header = SCRIPT.read_text().splitlines()[:12] if SCRIPT.exists() else []
    commit = next((ln.split()[-1] for ln in header if ln.startswith("# source commit")), "?")
    return f"timm benchmark.py@{commit[:12]}: synchronised per step, mean over the run"


def run_timm(setting: Setting) -> dict[str, Any]:
    """One run of timm's script; a result dict like a child's, with reference "timm"."""
    device = torch.device(setting.device)
    batch = default_batch(setting, device)
    # timm's training step is eager whatever ours takes: its row says so.
    base: dict[str, Any] = {"setting": asdict(replace(setting, step="eager")), "reference": "timm",
                            "protocol": protocol(), "batch_size": batch}  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        results_file = Path(scratch) / "timm.json"
        proc = subprocess.run(
            command(setting, batch=batch, results_file=results_file), capture_output=True,
            text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
        if not results_file.exists():
            tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            return {**base, "status": "crashed", "error": tail[0][:300]}
        results = json.loads(results_file.read_text())
    return {**base, **parse(results, setting=setting, device=device)}


def parse(results: dict[str, Any], *, setting: Setting, device: torch.device) -> dict[str, Any]:
    """timm's result record -> our columns."""
    if "error" in results:
        status = "oom" if "out of memory" in str(results["error"]).lower() else "error"
        return {"status": status, "error": str(results["error"])[:300]}
    prefix = "train" if setting.mode == "train" else "infer"
    batch = int(results[f"{prefix}_batch_size"])
    step_ms = float(results[f"{prefix}_step_time"])
    macs = setting_macs(setting)
    gpu = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if gpu else ""
    return {
        "status": "ok", "batch_size": batch,
        "images_per_s": float(results[f"{prefix}_samples_per_sec"]), "step_ms": step_ms,
        "step_ms_iqr": math.nan, "macs": macs,
        **achieved(macs=macs, batch=batch, mode=setting.mode, step_s=step_ms / 1e3,
                   device_name=name, precision=setting.precision),
        # What the script sets (its lines 49-51), not measured in its process.
        "tf32_matmul": gpu, "tf32_cudnn": gpu, "cudnn_benchmark": gpu,
    }  # fmt: skip
