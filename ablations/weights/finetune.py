"""Transfer learning: start a model from a checkpoint with a new head, and freeze the backbone.

A checkpoint is named by a string, so that it is part of a run's config (and key):
    "torchvision:IMAGENET1K_V1"  torchvision's weights for the variant's depth (downloaded once)
    "run:<run_id>"               a finished run's model.pt, under the same runs folder
    any other string             a file holding a state_dict (or a checkpoint with "model" in it)
The final linear layer is never loaded: its shape follows the new dataset's class count.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ablations import rundir
from ablations.models import ResNet, create_model
from ablations.registry import AblationsError
from ablations.weights.torchvision import weights_entry

if TYPE_CHECKING:
    from ablations.config import TrainConfig
    from ablations.data.prepare import RunData

HEAD = "fc"  # the module a frozen backbone leaves trainable


def checkpoint_file(init_from: str, *, runs_dir: Path) -> Path | None:
    """The local file `init_from` names (None for torchvision weights)."""
    if init_from.startswith("torchvision:"):
        return None
    if init_from.startswith("run:"):
        path = rundir.weights(runs_dir / init_from.removeprefix("run:"))
        if not path.exists():  # never trained here, or a record committed without weights
            raise AblationsError(
                f"{init_from}: {path} does not exist; train that run (if its record is there "
                "without weights, remove its folder first) or point init_from at a state_dict file"
            )
        return path
    path = Path(init_from).expanduser()
    if not path.is_file():
        raise AblationsError(f"checkpoint {path} does not exist; pass an existing state_dict file")
    return path


def _torchvision_state(model: ResNet, weights: str) -> dict[str, torch.Tensor]:
    v = model.variant
    enum = weights_entry(v, weights)
    try:
        return dict(enum.get_state_dict(progress=False))
    except OSError as err:  # URLError and friends: offline, or the download was cut
        raise AblationsError(
            f"could not fetch torchvision's resnet{v.depth} {weights} ({type(err).__name__}; "
            "offline?); pass --init-from a state_dict file or run:<run_id> instead"
        ) from None


def _file_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        saved: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a bad file
        raise AblationsError(
            f"{path} is not a loadable checkpoint ({type(err).__name__}); pass a state_dict file"
        ) from None
    if isinstance(saved, dict) and isinstance(saved.get("model"), dict):
        saved = saved["model"]  # a resumable checkpoint.pt of this suite
    if not isinstance(saved, dict):
        raise AblationsError(f"{path} holds no state_dict; pass a file saved from one")
    return saved


def load_backbone(model: ResNet, init_from: str, *, runs_dir: Path) -> dict[str, str]:
    """Copy every weight but the head from `init_from` into `model`, strictly; returns what
    was loaded, for the run's record (the source and, for a file, its sha256)."""
    path = checkpoint_file(init_from, runs_dir=runs_dir)
    state = _file_state(path) if path else _torchvision_state(model, init_from.split(":", 1)[1])
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
    # A file is recorded by name and sha256: the machine's path is no part of a result.
    named = path is not None and not init_from.startswith("run:")
    record = {"init_from": path.name if named and path is not None else init_from}
    if path is not None:
        record["init_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return record


def freeze_backbone(model: nn.Module) -> None:
    """Only the head keeps requires_grad; the optimizer is then given only its parameters."""
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(f"{HEAD}."))


def train_mode(model: nn.Module, *, freeze: str) -> None:
    """Train mode, except that a frozen backbone stays in eval mode: its BatchNorm layers then
    normalise with their stored statistics and never update them, so the backbone is a fixed
    function and only the head learns (a fixed feature extractor, buffers included)."""
    model.train()
    if freeze == "backbone":
        for name, child in model.named_children():
            if name != HEAD:
                child.eval()


def build_model(
    config: TrainConfig, data: RunData, device: torch.device, *, runs_dir: Path
) -> tuple[ResNet, dict[str, str]]:
    """The initialised (or checkpoint-started, and maybe frozen) model, and what it was
    started from."""
    torch.manual_seed(config.seed)  # the same initial weights for the same seed
    model = create_model(config.variant, num_classes=data.num_classes, in_channels=data.in_channels)
    started: dict[str, str] = {}
    if config.init_from is not None:
        started = load_backbone(model, config.init_from, runs_dir=runs_dir)
    if config.freeze == "backbone":
        freeze_backbone(model)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, started
