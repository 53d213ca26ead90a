"""Model construction: a registered name (or a Variant) in, an `nn.Module` out. `Block` is the
contract a block class keeps (ablations.blocks declares each block type)."""

from __future__ import annotations

from typing import Any

from ablations.models.resnet import Block, ResNet
from ablations.registry import Variant, derive

__all__ = ["Block", "ResNet", "create_model", "resolve"]


def resolve(name: str | Variant, *, num_classes: int | None = None, **overrides: Any) -> Variant:
    """The variant `create_model` would build: the registered one, with axes overridden."""
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    return derive(name, **overrides)


def create_model(
    name: str | Variant, *, num_classes: int | None = None, **overrides: Any
) -> ResNet:
    """Build a freshly initialised model, e.g. ``create_model("resnet56", shortcut="b")``.

    `num_classes` replaces the variant's head size; other keywords replace axes of the variant
    (and the model's ``variant.name`` says so, e.g. "resnet56[shortcut=b]").
    """
    return ResNet(resolve(name, num_classes=num_classes, **overrides))
