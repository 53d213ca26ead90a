"""The training step replayed as one CUDA graph; imported only where a graph step is built."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ablations.train.steps import GRAPH_WARMUP, Step


class GraphStep:
    """A training step replayed as one CUDA graph: one launch instead of the hundreds that bound
    a small net's step. A manual capture replays exactly the eager step's kernels, so it changes
    speed, not numbers (torch.compile's fusions would change them).

    `fn` is the whole step, the loop's lr selection and sums included. The first GRAPH_WARMUP
    calls run eagerly on a side stream, as capture requires; the next captures, then replays.
    If capture fails the step stays eager and tells `on_fallback` why."""

    def __init__(self, fn: Step, *, on_fallback: Callable[[str], None]) -> None:
        self.fn, self.on_fallback = fn, on_fallback
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager = False  # capture failed: eager from then on
        self.side = torch.cuda.Stream()

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.graph is None:
            self.calls += 1
            if self.eager:
                return self.fn(x, y)
            if self.calls <= GRAPH_WARMUP:
                return self._side_stream(x, y)
            if not self._capture(x, y):
                return self.fn(x, y)
        self.x.copy_(x)
        self.y.copy_(y)
        assert self.graph is not None
        self.graph.replay()
        return self.out

    def _side_stream(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        main = torch.cuda.current_stream()
        self.side.wait_stream(main)
        with torch.cuda.stream(self.side):
            out = self.fn(x, y)
        main.wait_stream(self.side)
        return out

    def _capture(self, x: Tensor, y: Tensor) -> bool:
        """Record the step on static copies of this batch (runs nothing); False if it fails."""
        self.x, self.y = x.clone(), y.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: a DataLoader's pinning thread may call CUDA while this one captures.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.out = self.fn(self.x, self.y)
        except RuntimeError as err:
            self.eager = True
            self.on_fallback(f"CUDA graph capture failed, eager from iteration {self.calls}: {err}")
            return False
        self.graph = graph
        return True
