"""Dense datasheet peaks by exact `torch.cuda.get_device_name()`, and the TFLOP/s a step achieves.

Names match exactly ("NVIDIA H200" and "NVIDIA H200 NVL" are different parts); an unlisted device
gets NaN, never a guess. "fp32" is the non-tensor-core rate; "tf32", "bf16" and "fp16" are dense
tensor-core rates with fp32 accumulation (half the datasheets' "with sparsity" figures)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ablations.measure.throughput.settings import Setting
from ablations.registry import get_variant

TRAIN_FLOPS_FACTOR = 3  # forward + backward (activation and weight gradients) ~ 3 forwards
GOLDEN = Path(__file__).resolve().parents[3] / "tests" / "golden" / "complexity.csv"


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

# torch.cuda.get_device_name() as the driver reports it (the marketing name of the board).
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
    """fvcore's MAC count at this size; without fvcore, the golden file's at the variant's own
    size, else 0 (TFLOP/s unknown)."""
    v = get_variant(setting.variant)
    size = setting.input_size or v.input_size
    try:
        from ablations.measure.complexity import count_macs, uninitialised  # fvcore: child only

        macs, _ = count_macs(uninitialised(v), input_size=size, in_channels=v.in_channels)
        return macs
    except ImportError:
        if size != v.input_size or not GOLDEN.exists():
            return 0
        golden = pd.read_csv(GOLDEN)
        match = golden[golden["name"] == v.name]
        return int(match["macs"].iloc[0]) if len(match) else 0


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
