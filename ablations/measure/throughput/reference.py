"""What a measurement is compared with: dense datasheet peaks, by exact device name, for the
TFLOP/s a step achieves; and, on request, timm's own `benchmark.py` (vendored unmodified in
bench/third_party, run in its own interpreter per (mode, run), its rows with `reference` "timm")."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ablations.measure.throughput.settings import Setting, default_batch
from ablations.registry import AblationsError, get_variant

TRAIN_FLOPS_FACTOR = 3  # forward + backward (activation and weight gradients) ~ 3 forwards


@dataclass(frozen=True)
class Datasheet:
    part: str  # the product as its datasheet names it
    tflops: dict[str, float]
    source: str


def _rates(fp32: float, tf32: float, half: float) -> dict[str, float]:
    """The fp32 rate, and the tensor-core rates: tf32, and bf16 and fp16 (one rate)."""
    return {"fp32": fp32, "tf32": tf32, "bf16": half, "fp16": half}


_H100 = "NVIDIA H100 Tensor Core GPU Architecture whitepaper v1.04, Table 1 (dense)"
_H100_NVL = "nvidia.com/en-us/data-center/h100 datasheet (sparse / 2)"
_H200 = "nvidia.com/en-us/data-center/h200 datasheet (sparse / 2)"
_L40S = "NVIDIA L40S datasheet (dense column)"
_L40 = "NVIDIA L40 datasheet (dense column)"
_L4 = "NVIDIA L4 Tensor Core GPU datasheet (sparse / 2)"
_A10 = "NVIDIA A10 Tensor Core GPU datasheet (dense column)"
_V100 = "NVIDIA Tesla V100 GPU datasheet (Tensor Performance = fp16 with fp32 accumulate)"
_T4 = "NVIDIA T4 Tensor Core GPU datasheet (mixed precision FP16/FP32)"
_A100_SHEET = "NVIDIA A100 Tensor Core GPU datasheet (dense column)"
A100 = Datasheet("A100", _rates(19.5, 156.0, 312.0), _A100_SHEET)
V100_SXM2 = Datasheet("V100 SXM2", {"fp32": 15.7, "fp16": 125.0}, _V100)
V100_PCIE = Datasheet("V100 PCIe", {"fp32": 14.0, "fp16": 112.0}, _V100)

# torch.cuda.get_device_name() as the driver reports it (the marketing name of the board), matched
# exactly ("NVIDIA H200" and "NVIDIA H200 NVL" are different parts): an unlisted device gets NaN,
# never a guess. "fp32" is the non-tensor-core rate; "tf32", "bf16" and "fp16" are dense
# tensor-core rates with fp32 accumulation (half the datasheets' "with sparsity" figures).
DEVICE_NAMES: dict[str, Datasheet] = {
    "NVIDIA H100 80GB HBM3": Datasheet("H100 SXM5", _rates(66.9, 494.7, 989.4), _H100),
    "NVIDIA H100 PCIe": Datasheet("H100 PCIe", _rates(51.2, 378.0, 756.5), _H100),
    "NVIDIA H100 NVL": Datasheet("H100 NVL", _rates(60.0, 417.5, 835.5), _H100_NVL),
    "NVIDIA H200": Datasheet("H200 SXM", _rates(67.0, 494.5, 989.5), _H200),
    "NVIDIA H200 NVL": Datasheet("H200 NVL", _rates(60.0, 417.5, 835.5), _H200),
    "NVIDIA A100-SXM4-40GB": A100,
    "NVIDIA A100-SXM4-80GB": A100,
    "NVIDIA A100-PCIE-40GB": A100,
    "NVIDIA A100 80GB PCIe": A100,
    "NVIDIA L40S": Datasheet("L40S", _rates(91.6, 183.0, 362.05), _L40S),
    "NVIDIA L40": Datasheet("L40", _rates(90.5, 90.5, 181.05), _L40),
    "NVIDIA L4": Datasheet("L4", _rates(30.3, 60.0, 121.0), _L4),
    "NVIDIA A10": Datasheet("A10", _rates(31.2, 62.5, 125.0), _A10),
    "Tesla V100-SXM2-16GB": V100_SXM2,
    "Tesla V100-SXM2-32GB": V100_SXM2,
    "Tesla V100-PCIE-16GB": V100_PCIE,
    "Tesla V100-PCIE-32GB": V100_PCIE,
    "Tesla V100S-PCIE-32GB": Datasheet("V100S PCIe", {"fp32": 16.4, "fp16": 130.0}, _V100),
    "Tesla T4": Datasheet("T4", {"fp32": 8.1, "fp16": 65.0}, _T4),
}


def datasheet(device_name: str) -> Datasheet | None:
    """The datasheet of exactly this device name, or None."""
    return DEVICE_NAMES.get(device_name.strip())


def peak_tflops(device_name: str, precision: str) -> float:
    """The dense peak for this device and precision; NaN where either is not in the table."""
    sheet = datasheet(device_name)
    return sheet.tflops.get(precision, math.nan) if sheet else math.nan


def setting_macs(setting: Setting) -> int:
    """fvcore's MACs of the setting's variant at its input size."""
    from ablations.measure.complexity import count_macs, uninitialised  # fvcore: children only

    v = get_variant(setting.variant)
    size = setting.input_size or v.input_size
    return count_macs(uninitialised(v), input_size=size, in_channels=v.in_channels)[0]


def achieved(
    *, macs: int, batch: int, mode: str, step_s: float, device_name: str, precision: str
) -> dict[str, Any]:
    """TFLOP/s (2 x MACs x batch per step, training counted as 3 forwards), and of the peak."""
    flops = 2 * macs * batch * (TRAIN_FLOPS_FACTOR if mode == "train" else 1)
    tflops = flops / step_s / 1e12 if macs > 0 else math.nan
    sheet, peak = datasheet(device_name), peak_tflops(device_name, precision)
    return {
        "tflops": tflops, "peak_tflops": peak, "fraction_of_peak": tflops / peak,
        "peak_source": f"{sheet.part}: {sheet.source}" if sheet else "",
    }  # fmt: skip


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
