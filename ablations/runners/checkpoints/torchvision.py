"""torchvision's ImageNet weights (resnet18 ... resnet152), from the torch hub cache or a file;
never downloaded. Our ImageNet-family module names are torchvision's, so the state_dict loads
as it is. They take torchvision's preprocessing: shorter side resized to 256, centre crop 224,
ImageNet per-channel mean/std."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ablations.registry import AblationsError, Variant

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
RESIZE, CROP = 256, 224


def check_variant(variant: Variant) -> None:
    if (
        variant.family != "imagenet"
        or variant.stem != "k7"
        or not variant.residual
        or (variant.conv_bias or variant.shortcut != "b")
    ):
        raise AblationsError(
            f"torchvision weights exist only for the torchvision architectures (resnet18 ... "
            f"resnet152); {variant.name} is not one"
        )


def hub_file(variant: Variant, weights: str) -> Path:
    """Where torch.hub keeps `weights` (e.g. IMAGENET1K_V1) of `variant`: the file name of the
    weights' URL under $TORCH_HOME/hub/checkpoints (torch.hub.get_dir())."""
    from torchvision.models import get_model_weights

    check_variant(variant)
    try:
        enum = get_model_weights(f"resnet{variant.depth}")[weights]
    except KeyError:
        raise AblationsError(
            f"torchvision has no resnet{variant.depth} weights {weights!r}; try IMAGENET1K_V1"
        ) from None
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)


def locate(variant: Variant, spec: str) -> Path:
    """The local file of `torchvision:<weights name or file>`; a missing one is an error naming
    where to put it (this suite never downloads weights)."""
    candidate = Path(spec).expanduser()
    if candidate.suffix in (".pth", ".pt") or os.sep in spec:
        path = candidate
    else:
        path = hub_file(variant, spec)
    if not path.is_file():
        raise AblationsError(
            f"torchvision weights {spec} not found: put {path.name} at {path} (the torch hub "
            "cache, $TORCH_HOME/hub/checkpoints) or pass torchvision:<file>; nothing is downloaded"
        )
    return path
