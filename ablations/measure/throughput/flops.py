"""What a measured step achieves: the MACs of a setting's net at its input size, and the TFLOP/s
a step time makes of them beside the device's datasheet peak (peaks.py). Shared by our own
measurement (child.py) and timm's (reference.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ablations.measure.throughput.peaks import datasheet, peak_tflops
from ablations.measure.throughput.settings import Setting
from ablations.registry import get_variant

TRAIN_FLOPS_FACTOR = 3  # forward + backward (activation and weight gradients) ~ 3 forwards
GOLDEN = Path(__file__).resolve().parents[3] / "tests" / "golden" / "complexity.csv"


def setting_macs(setting: Setting) -> int:
    """fvcore's MAC count at this input size; without fvcore (the GPU machine has none), the
    golden file's count at the variant's own size, else 0 (TFLOP/s then unknown)."""
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
    """TFLOP/s (2 x MACs x batch per step, a training step counted as 3 forwards) and the
    fraction of this device's datasheet peak (NaN for a device not in the table)."""
    flops = 2 * macs * batch * (TRAIN_FLOPS_FACTOR if mode == "train" else 1)
    tflops = flops / step_s / 1e12 if macs > 0 else math.nan
    sheet, peak = datasheet(device_name), peak_tflops(device_name, precision)
    return {
        "tflops": tflops, "peak_tflops": peak, "fraction_of_peak": tflops / peak,
        "peak_source": f"{sheet.part}: {sheet.source}" if sheet else "",
    }  # fmt: skip
