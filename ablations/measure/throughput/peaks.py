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


_H100 = "NVIDIA H100 Tensor Core GPU Architecture whitepaper v1.04, Table 1 (dense)"
_H100_NVL = "nvidia.com/en-us/data-center/h100 datasheet (sparse / 2)"
_H200 = "nvidia.com/en-us/data-center/h200 datasheet (sparse / 2)"
_A100 = "NVIDIA A100 Tensor Core GPU datasheet (dense column)"
_L40S = "NVIDIA L40S datasheet (dense column)"
_L40 = "NVIDIA L40 datasheet (dense column)"
_L4 = "NVIDIA L4 Tensor Core GPU datasheet (sparse / 2)"
_A10 = "NVIDIA A10 Tensor Core GPU datasheet (dense column)"
_V100 = "NVIDIA Tesla V100 GPU datasheet (Tensor Performance = fp16 with fp32 accumulate)"
_T4 = "NVIDIA T4 Tensor Core GPU datasheet (mixed precision FP16/FP32)"

H100_SXM5 = Datasheet("H100 SXM5", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
                      _H100)  # fmt: skip
H100_PCIE = Datasheet("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.5, "fp16": 756.5},
                      _H100)  # fmt: skip
H100_NVL = Datasheet("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
                     _H100_NVL)  # fmt: skip
H200_SXM = Datasheet("H200 SXM", {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5},
                     _H200)  # fmt: skip
H200_NVL = Datasheet("H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
                     _H200)  # fmt: skip
A100 = Datasheet("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}, _A100)
L40S = Datasheet("L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05}, _L40S)
L40 = Datasheet("L40", {"fp32": 90.5, "tf32": 90.5, "bf16": 181.05, "fp16": 181.05}, _L40)
L4 = Datasheet("L4", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}, _L4)
A10 = Datasheet("A10", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0}, _A10)
V100_SXM2 = Datasheet("V100 SXM2", {"fp32": 15.7, "fp16": 125.0}, _V100)
V100_PCIE = Datasheet("V100 PCIe", {"fp32": 14.0, "fp16": 112.0}, _V100)
V100S_PCIE = Datasheet("V100S PCIe", {"fp32": 16.4, "fp16": 130.0}, _V100)
T4 = Datasheet("T4", {"fp32": 8.1, "fp16": 65.0}, _T4)

# torch.cuda.get_device_name() as the driver reports it (the marketing name of the board).
DEVICE_NAMES: dict[str, Datasheet] = {
    "NVIDIA H100 80GB HBM3": H100_SXM5,
    "NVIDIA H100 PCIe": H100_PCIE,
    "NVIDIA H100 NVL": H100_NVL,
    "NVIDIA H200": H200_SXM,
    "NVIDIA H200 NVL": H200_NVL,
    "NVIDIA A100-SXM4-40GB": A100,
    "NVIDIA A100-SXM4-80GB": A100,
    "NVIDIA A100-PCIE-40GB": A100,
    "NVIDIA A100 80GB PCIe": A100,
    "NVIDIA L40S": L40S,
    "NVIDIA L40": L40,
    "NVIDIA L4": L4,
    "NVIDIA A10": A10,
    "Tesla V100-SXM2-16GB": V100_SXM2,
    "Tesla V100-SXM2-32GB": V100_SXM2,
    "Tesla V100-PCIE-16GB": V100_PCIE,
    "Tesla V100-PCIE-32GB": V100_PCIE,
    "Tesla V100S-PCIE-32GB": V100S_PCIE,
    "Tesla T4": T4,
}


def datasheet(device_name: str) -> Datasheet | None:
    """The datasheet of exactly this device name, or None."""
    return DEVICE_NAMES.get(device_name.strip())


def peak_tflops(device_name: str, precision: str) -> float:
    """The dense peak for this device and precision; NaN where either is not in the table."""
    sheet = datasheet(device_name)
    return sheet.tflops.get(precision, math.nan) if sheet else math.nan
