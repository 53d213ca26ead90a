"""Batches moved to the device one step ahead: on CUDA the copies run on a side stream and overlap
the current step. A batch is (x, y), x a tensor, lists of view tensors (multi-scale) or bytes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor


def prefetched(
    batches: Iterable[tuple[Any, Tensor]], device: torch.device
) -> Iterator[tuple[Any, Tensor]]:
    """Each batch moved to `device`; on CUDA one step ahead (`ahead`). The copies run on a
    stream made once per process for the current stream, so runs at once (a stream each, see
    ablations.gpu.streams) never queue their copies behind another run's."""
    if device.type != "cuda":
        yield from ((_to(x, device), y.to(device)) for x, y in batches)
        return
    from ablations import gpu  # CUDA only

    current = torch.cuda.current_stream(device)
    stream = gpu.stream(device, f"prefetch for stream {current.cuda_stream}")
    pending: tuple[Any, Tensor] | None = None
    for x, y in batches:
        with torch.cuda.stream(stream):
            ready = (_to(x, device), y.to(device, non_blocking=True))
        if pending is not None:
            yield pending
        current = torch.cuda.current_stream(device)
        current.wait_stream(stream)
        for t in _tensors(ready):  # used on the current stream: keep them from reuse
            t.record_stream(current)
        pending = ready
    if pending is not None:
        yield pending


def ahead(device: torch.device) -> int:
    """How many batches `prefetched` has read beyond those it has handed out: one on CUDA."""
    return 1 if device.type == "cuda" else 0


def _tensors(batch: Any) -> list[Tensor]:
    """Every tensor in a batch's nested lists and tuples."""
    if isinstance(batch, Tensor):
        return [batch]
    if isinstance(batch, list | tuple):
        return [t for part in batch for t in _tensors(part)]
    return []


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, list):
        return [_to(v, device) for v in x]
    return x.to(device, non_blocking=True) if isinstance(x, Tensor) else x
