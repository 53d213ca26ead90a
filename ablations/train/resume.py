"""A run's torch files: the checkpoint (weights, optimizer and scaler state, the loop's `State`)
that makes a rerun resume exactly, the curves up to it, and the weights. Every write is atomic;
only rank 0 calls these under torchrun."""

from __future__ import annotations

import math
import pickle
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ablations import rundir
from ablations.io import write_atomic
from ablations.train.records import curves_frame
from ablations.train.steps import TrainStep

# Modules `State` lived in when older checkpoints were written: such a run still resumes.
_MOVED = {"ablations.runners.train": __name__, "ablations.runners.checkpoint": __name__}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(_MOVED.get(module, module), name)


# What torch.load takes as its pickle_module.
UNPICKLING = types.SimpleNamespace(__name__="pickle", Unpickler=_Unpickler, load=pickle.load)


@dataclass
class State:
    """What a checkpoint restores besides model and optimizer."""

    iteration: int = 0
    warmup_end: int | None = None  # the iteration at which the warm-up ended
    warmup_window: tuple[int, int] = (0, 0)  # (errors, images) since the last warm-up check
    train_s: float = 0.0  # training time so far, evaluation excluded
    best_error: float = math.inf  # the lowest evaluation error so far (weights in best.pt)
    rows: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(directory: Path, *, model: nn.Module, step: TrainStep, state: State) -> None:
    # Curves first: if the process dies between the two writes, the resumed run drops the rows
    # newer than its checkpoint and writes them again.
    rundir.write_curves(directory, curves_frame(state.rows))
    saved = {
        "model": model.state_dict(), "optimizer": step.optimizer.state_dict(),
        "scaler": step.scaler.state_dict(), "state": state,
    }  # fmt: skip
    write_atomic(rundir.checkpoint(directory), lambda t: torch.save(saved, t))


def _load(directory: Path, device: torch.device | str) -> dict[str, Any] | None:
    path = rundir.checkpoint(directory)
    if not path.exists():
        return None
    return torch.load(path, map_location=device, weights_only=False, pickle_module=UNPICKLING)


def load_checkpoint(
    directory: Path, *, model: nn.Module, step: TrainStep, device: torch.device
) -> State | None:
    """Restore model and optimizer from the run's checkpoint and return its `State`; None
    (nothing touched) when the run has none."""
    saved = _load(directory, device)
    if saved is None:
        return None
    model.load_state_dict(saved["model"])
    step.load_state(saved["optimizer"], saved["scaler"])
    state: State = saved["state"]
    return state


def save_weights(path: Path, model: nn.Module) -> None:
    weights = model.state_dict()
    write_atomic(path, lambda t: torch.save(weights, t))


def checkpoint_iteration(directory: Path) -> int:
    """The iteration a run's checkpoint holds; -1: none."""
    saved = _load(directory, "cpu")
    return -1 if saved is None else int(saved["state"].iteration)
