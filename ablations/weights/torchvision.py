"""torchvision's ImageNet weights (resnet18 ... resnet152), from the torch hub cache or a file;
never downloaded. Our ImageNet-family module names are torchvision's, so the state_dict loads
as it is. They take torchvision's preprocessing: shorter side resized to 256, centre crop 224,
ImageNet per-channel mean/std."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import torch

from ablations.registry import AblationsError, Variant, get_variant

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
RESIZE, CROP = 256, 224


def check_variant(variant: Variant) -> None:
    """Raise unless `variant` is torchvision's resnet{depth} up to its head and input size (a
    fine-tuned head is replaced; the input size changes no weight). The state_dict keys of a
    near twin match too (v1's stride on the first 1x1, option A or C, a plain net's convs), so
    loading would succeed and silently evaluate another net."""
    twin = _twin(variant)
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


TWINS = tuple(f"resnet{d}" for d in (18, 34, 50, 101, 152))  # registry names = torchvision's
IGNORED = ("name", "num_classes", "input_size")


def _twin(variant: Variant) -> Variant | None:
    name = f"resnet{variant.depth}"
    return get_variant(name) if variant.family == "imagenet" and name in TWINS else None


def hub_file(variant: Variant, weights: str) -> Path:
    """Where torch.hub keeps `weights` (e.g. IMAGENET1K_V1) of `variant`, checked to be its
    twin: the file name of the weights' URL under $TORCH_HOME/hub/checkpoints. An unknown name
    is an error that names the usual one."""
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
    where to put it (this suite never downloads weights)."""
    check_variant(variant)  # a file too: any torchvision-layout state_dict loads into a twin
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
