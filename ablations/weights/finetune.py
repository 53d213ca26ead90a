"""Transfer learning: a model started from a named checkpoint (part of the run's key), every
weight but the head loaded, and the backbone maybe frozen."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ablations.models import ResNet, create_model
from ablations.registry import AblationsError
from ablations.weights import resolve

if TYPE_CHECKING:
    from ablations.config import TrainConfig
    from ablations.data.prepare import RunData

HEAD = "fc"  # the module a frozen backbone leaves trainable


def load_backbone(model: ResNet, init_from: str, *, runs_dir: Path) -> dict[str, str]:
    """Copy every weight but the head from `init_from` into `model`, strictly; returns its
    source and sha256 for the run's record."""
    state, weights = resolve(init_from, variant=model.variant, runs_dir=runs_dir)
    backbone = {k: v for k, v in state.items() if not k.startswith(f"{HEAD}.")}
    wanted = {k for k in model.state_dict() if not k.startswith(f"{HEAD}.")}
    missing, unexpected = sorted(wanted - set(backbone)), sorted(set(backbone) - wanted)
    if missing or unexpected:
        problem = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise AblationsError(
            f"{init_from} does not fit {model.variant.name} ({problem}, {len(missing)} missing, "
            f"{len(unexpected)} unexpected); use a checkpoint of the same architecture"
        )
    try:
        model.load_state_dict(backbone, strict=False)
    except RuntimeError as err:  # shape mismatches
        first = str(err).split("\n\t", 1)[-1].split("\n")[0]
        raise AblationsError(f"{init_from} does not fit {model.variant.name}: {first}") from None
    return {"init_from": weights.source, "init_sha256": weights.sha256}


def train_mode(model: nn.Module, *, freeze: str) -> None:
    """Train mode, except that a frozen backbone stays in eval mode: its BatchNorm layers keep
    their stored statistics, so the backbone is a fixed function (buffers included)."""
    model.train()
    if freeze == "backbone":
        for name, child in model.named_children():
            if name != HEAD:
                child.eval()


def build_model(
    config: TrainConfig, data: RunData, device: torch.device, *, runs_dir: Path
) -> tuple[ResNet, dict[str, str]]:
    """The initialised or checkpoint-started (maybe frozen) model, and what it started from."""
    torch.manual_seed(config.seed)  # the same initial weights for the same seed
    model = create_model(config.variant, num_classes=data.num_classes, in_channels=data.in_channels)
    started: dict[str, str] = {}
    if config.init_from is not None:
        started = load_backbone(model, config.init_from, runs_dir=runs_dir)
    if config.freeze == "backbone":  # the optimizer then takes only the head's parameters
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith(f"{HEAD}."))
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, started
