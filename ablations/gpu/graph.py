"""The training step replayed as one CUDA graph; imported only where a graph step is built."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import Tensor

from ablations.errors import CaptureError
from ablations.gpu import stream
from ablations.train.steps import GRAPH_WARMUP, Step

FIX = "train with --step eager"


class GraphStep:
    """A training step replayed as one CUDA graph: one launch instead of the hundreds that bound
    a small net's step. A manual capture replays exactly the eager step's kernels, so it changes
    speed, not numbers (torch.compile's fusions would change them).

    `fn` is the whole step, the loop's lr selection and sums included. The first GRAPH_WARMUP
    calls run eagerly on a side stream, as capture requires; the last of them under CUDA's sync
    debug mode, so an op that waits for the host is named before capture. The next call
    captures, the later ones replay. A failed capture raises CaptureError: CUDA's state cannot
    be restored after one, so falling back to eager would go on in a broken process."""

    def __init__(self, fn: Step, *, device: torch.device) -> None:
        self.fn, self.device = fn, device
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side = stream(device, "warm-up")

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.graph is None:
            self.calls += 1
            if self.calls <= GRAPH_WARMUP:
                return self._side_stream(x, y, checked=self.calls == GRAPH_WARMUP)
            self._capture(x, y)
        self.x.copy_(x)
        self.y.copy_(y)
        assert self.graph is not None
        self.graph.replay()
        return self.out

    def _side_stream(self, x: Tensor, y: Tensor, *, checked: bool) -> tuple[Tensor, Tensor]:
        main = torch.cuda.current_stream()
        self.side.wait_stream(main)
        with torch.cuda.stream(self.side), _no_host_sync(enabled=checked):
            out = self.fn(x, y)
        main.wait_stream(self.side)
        return out

    def _capture(self, x: Tensor, y: Tensor) -> None:
        """Record the step on static copies of this batch (runs nothing)."""
        self.x, self.y = x.clone(), y.clone()
        graph = torch.cuda.CUDAGraph()
        capture = stream(self.device, "capture")
        try:
            # thread_local: a DataLoader's pinning thread may call CUDA while this one captures.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with torch.cuda.graph(graph, stream=capture, capture_error_mode="thread_local"):
                    self.out = self.fn(self.x, self.y)
        except RuntimeError as err:
            raise CaptureError(f"CUDA graph capture failed: {err}; {FIX}") from err
        for warning in caught:
            if "CUDA Graph is empty" in str(warning.message):
                # Work issued on another device or stream: replays would do nothing.
                raise CaptureError(f"the captured CUDA graph is empty; {FIX}")
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)  # fmt: skip
        self.graph = graph


@contextlib.contextmanager
def _no_host_sync(*, enabled: bool) -> Iterator[None]:
    """An op that synchronises with the host raises here (a graph cannot capture one)."""
    if not enabled:
        yield
        return
    before = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    except RuntimeError as err:
        raise CaptureError(f"the training step waits for the host, which a CUDA graph cannot "
                           f"capture: {err}; {FIX}") from err  # fmt: skip
    finally:
        torch.cuda.set_sync_debug_mode(before)
