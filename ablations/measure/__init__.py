"""Measurements other than training: parameters and MACs (`complexity`), inference and training
throughput (`throughput`), our training loop against the conventional one (`train_speed`),
each planned run's step (`step_speed`), runs at once (`runs_at_once`), the streaming loader
(`loader_speed`) and Fig. 7's layer responses (`responses`). `timed` is the clock of the speed
measurements."""

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
    """Seconds for `steps` calls of `step` after `warmup` untimed ones, with the device's queued
    work ended before and after the clock is read."""
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return time.perf_counter() - start
