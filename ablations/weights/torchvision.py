"""torchvision's ImageNet weights (resnet18 ... resnet152), from the torch hub cache or a file,
never downloaded. Our ImageNet nets' module names are torchvision's. They take torchvision's
preprocessing: shorter side resized to 256, centre crop 224, ImageNet mean/std."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import torch

from ablations.registry import AblationsError, Variant, get_variant

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
RESIZE, CROP = 256, 224
TWINS = tuple(f"resnet{d}" for d in (18, 34, 50, 101, 152))  # registry names = torchvision's
IGNORED = ("name", "num_classes", "input_size")


def check_variant(variant: Variant) -> None:
    """Raise unless `variant` is torchvision's resnet{depth} up to its head and input size. A
    near twin's keys match too (v1's stride on the first 1x1, option A or C, a plain net), so
    loading would succeed and silently evaluate another net."""
    name = f"resnet{variant.depth}"
    twin = get_variant(name) if variant.family == "imagenet" and name in TWINS else None
    differs = [] if twin is None else [
        f"{f.name} {getattr(variant, f.name)!r} (torchvision's: {getattr(twin, f.name)!r})"
        for f in fields(Variant)
        if f.name not in IGNORED and getattr(variant, f.name) != getattr(twin, f.name)
    ]  # fmt: skip
    if twin is None or differs:
        hint = f"use {twin.name}, " if twin is not None else ""
        raise AblationsError(
            f"torchvision's weights fit only its architectures ({', '.join(TWINS)}); "
            f"{variant.name} is not one"
            + (f": {', '.join(differs)}" if differs else "")
            + f"; {hint}or pass a state_dict of this architecture"
        )


def hub_file(variant: Variant, weights: str) -> Path:
    """Where torch.hub keeps `weights` (e.g. IMAGENET1K_V1) of `variant`: the file name of their
    URL under $TORCH_HOME/hub/checkpoints."""
    from torchvision.models import get_model_weights

    check_variant(variant)
    try:
        url = get_model_weights(f"resnet{variant.depth}")[weights].url
    except KeyError:
        raise AblationsError(
            f"torchvision has no resnet{variant.depth} weights {weights!r}; try IMAGENET1K_V1"
        ) from None
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def locate(variant: Variant, spec: str) -> Path:
    """The local file of `torchvision:<weights name or file>`; a missing one is an error naming
    where to put it."""
    check_variant(variant)  # a file too: any torchvision-layout state_dict loads into a twin
    candidate = Path(spec).expanduser()
    is_file = candidate.suffix in (".pth", ".pt") or os.sep in spec
    path = candidate if is_file else hub_file(variant, spec)
    if not path.is_file():
        raise AblationsError(
            f"torchvision weights {spec} not found: put {path.name} at {path} (the torch hub "
            "cache, $TORCH_HOME/hub/checkpoints) or pass torchvision:<file>; nothing is downloaded"
        )
    return path
