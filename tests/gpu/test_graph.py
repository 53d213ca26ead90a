"""The CUDA graph step (ablations.gpu.graph): warm-up on a side stream with the last call under
CUDA's sync detector, one capture, then replays; a failed or empty capture ends the run with the
original error. On a CPU, torch.cuda's calls are replaced by recorders; on a GPU, a probe trains
a bf16 ResNet-20 through a real capture."""

from __future__ import annotations

import contextlib
import gc
import warnings
import weakref

import pytest
import torch

from ablations import gpu
from ablations.config import resolve_config
from ablations.data import load_dataset
from ablations.data.prepare import prepare_data
from ablations.errors import CaptureError
from ablations.gpu.graph import GraphStep
from ablations.train.steps import GRAPH_WARMUP
from ablations.train.trainer import Trainer

DEVICE = torch.device("cuda", 0)


class FakeCuda:
    """torch.cuda's calls a graph step makes, recording the sync debug mode of each step call.
    `capture` is what the capture does at its end: nothing, raise, or warn of an empty graph."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, capture: str = "ok") -> None:
        self.mode, self.capture, self.replays, self.handles = 0, capture, 0, iter(range(1, 99))
        monkeypatch.setattr(gpu, "_STREAMS", {})
        fake = self

        class Stream:
            def __init__(self, device: torch.device | None = None) -> None:
                self.cuda_stream = next(fake.handles)

            def wait_stream(self, other: object) -> None:
                pass

        class Graph:
            def replay(self) -> None:
                fake.replays += 1

        for name, value in {
            "Stream": Stream, "CUDAGraph": Graph, "current_stream": lambda *a: Stream(),
            "stream": lambda s: contextlib.nullcontext(), "graph": self._graph,
            "get_sync_debug_mode": lambda: self.mode, "set_sync_debug_mode": self._set_mode,
        }.items():  # fmt: skip
            monkeypatch.setattr(torch.cuda, name, value)

    def _set_mode(self, mode: int | str) -> None:
        self.mode = {"default": 0, "warn": 1, "error": 2}.get(mode, mode)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def _graph(self, graph: object, *, stream: object, capture_error_mode: str):
        assert capture_error_mode == "thread_local"
        yield
        if self.capture == "raise":
            raise RuntimeError("operation not permitted when stream is capturing")
        if self.capture == "empty":
            warnings.warn("The CUDA Graph is empty. This usually...", UserWarning, stacklevel=2)


def _recording_step(cuda: FakeCuda, modes: list[int], *, sync_at: int | None = None):
    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        modes.append(cuda.mode)
        if len(modes) == sync_at and cuda.mode == 2:
            raise RuntimeError("called a synchronizing CUDA operation")
        return x.sum(), y

    return step


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.ones(2, 3), torch.zeros(2, dtype=torch.long)


def test_warm_up_then_one_capture_then_replays(monkeypatch):
    cuda, modes = FakeCuda(monkeypatch), []
    step = GraphStep(_recording_step(cuda, modes), device=DEVICE)
    for _ in range(GRAPH_WARMUP + 4):
        step(*_batch())
    # Only the last warm-up call runs under the sync detector; the capture runs the step once.
    assert modes == [0] * (GRAPH_WARMUP - 1) + [2, 0]
    assert cuda.replays == 4 and cuda.mode == 0


@pytest.mark.parametrize(
    ("capture", "message"),
    [("raise", "CUDA graph capture failed: operation not permitted"),
     ("empty", "the captured CUDA graph is empty")],
)  # fmt: skip
def test_a_failed_capture_ends_the_run_naming_the_error_and_the_fix(monkeypatch, capture, message):
    cuda, modes = FakeCuda(monkeypatch, capture=capture), []
    step = GraphStep(_recording_step(cuda, modes), device=DEVICE)
    for _ in range(GRAPH_WARMUP):
        step(*_batch())
    with pytest.raises(CaptureError, match=message) as caught:
        step(*_batch())
    assert "--step eager" in str(caught.value)
    assert cuda.replays == 0
    if capture == "raise":  # the original error stays attached for the traceback
        assert isinstance(caught.value.__cause__, RuntimeError)


def test_an_op_that_waits_for_the_host_is_named_before_capture(monkeypatch):
    cuda, modes = FakeCuda(monkeypatch), []
    step = GraphStep(_recording_step(cuda, modes, sync_at=GRAPH_WARMUP), device=DEVICE)
    for _ in range(GRAPH_WARMUP - 1):
        step(*_batch())
    with pytest.raises(CaptureError, match=r"waits for the host.*synchronizing CUDA operation"):
        step(*_batch())
    assert cuda.mode == 0  # the detector is off again


# --- on a GPU ----------------------------------------------------------------------------------


@pytest.mark.gpu
def test_probe_a_bf16_resnet20_graph_step(tmp_path, tiny_cifar):
    """Capture under the sync detector, the default stream current afterwards, 50 steps, the
    memory it holds, and a trainer freed with its memory without the cyclic collector."""
    device = torch.device("cuda")
    config = resolve_config("resnet20", profile="smoke", device="cuda", precision="bf16",
                            step="graph", iterations=60, eval_every=60)  # fmt: skip
    prepared = prepare_data(config, load_dataset(config.dataset, data=tiny_cifar), device)
    gc.collect()
    gc.disable()
    try:
        trainer = Trainer(config, prepared, directory=tmp_path, device=device, show_progress=False)
        assert trainer.step_kind == "graph"
        trainer.advance(trainer.data.train.batches(0), until=50)
        torch.cuda.synchronize()
        assert isinstance(trainer.step, GraphStep) and trainer.step.graph is not None
        assert torch.cuda.current_stream() == torch.cuda.default_stream()
        held = torch.cuda.memory_allocated()
        print(f"allocated {held / 2**20:.1f} MiB, reserved "
              f"{torch.cuda.memory_reserved() / 2**20:.1f} MiB after 50 graph steps")  # fmt: skip
        model = weakref.ref(trainer.model)
        del trainer
        assert model() is None
        assert torch.cuda.memory_allocated() < held
    finally:
        gc.enable()
