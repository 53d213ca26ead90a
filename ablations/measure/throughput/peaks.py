"""Dense (no sparsity) datasheet peaks, keyed by the exact `torch.cuda.get_device_name()` string.

A name is matched exactly, never by substring: "NVIDIA H200" and "NVIDIA H200 NVL", "NVIDIA L4"
and "NVIDIA L40S", "NVIDIA A10" and "NVIDIA A10G" are different parts with different peaks. A
device that is not listed gets no peak (NaN), never a guess; the A10G, for one, has no NVIDIA
datasheet. "fp32" is the non-tensor-core rate; "tf32", "bf16" and "fp16" are tensor-core rates
with fp32 accumulation. Datasheets print the tensor-core rates "with sparsity"; the dense rate is
half of that, which is what this table holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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
