"""Measurements other than training (complexity, throughput, loop, step, loader and runs-at-once
speeds, Fig. 7's responses); `timed` is the clock of the speed measurements."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (a CPU has none)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    step: Callable[[], object], *, device: torch.device, steps: int = 1, warmup: int = 0
) -> float:
    """Seconds for `steps` calls of `step` after `warmup` untimed ones, synchronised."""
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return time.perf_counter() - start
