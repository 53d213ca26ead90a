"""The training step replayed as one CUDA graph (`GraphStep`). Imported only where a graph step
is built (ablations.train.steps.step_of_kind), so a CPU run never loads it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ablations.train.steps import GRAPH_WARMUP, Step


class GraphStep:
    """A training step replayed as one CUDA graph: one launch instead of the several hundred
    kernel launches that bound a small net's step at batch 128 on a GPU.

    Why a manual capture (`torch.cuda.graph` over static input buffers, PyTorch's "whole-network
    capture") and not torch.compile's cudagraphs: the graph replays exactly the kernels the eager
    step launches, in the same order, on the same data, so it changes speed and not numbers (the
    run key treats the step as execution-only); it needs no compilation and can never recompile,
    and evaluation stays an ordinary eager forward pass. torch.compile's fusions change the
    numbers; they remain the separate `compile` option, which is part of the key.

    `fn` is the whole step (the lr selection and metric sums of the training loop included, so
    they are replayed too). The first GRAPH_WARMUP calls run it eagerly on a side stream, as
    capture requires (cuDNN autotuning, the optimizer's lazily created state, the allocator's
    warm-up); they are real training iterations with the same kernels. The next call captures,
    which runs nothing, then replays. If capture fails the step stays eager, and tells
    `on_fallback` why."""

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
        """Record the step on static copies of this batch (executes nothing); False when the
        capture fails."""
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
