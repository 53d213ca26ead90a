"""The built-in grid, as data: ``{resnet|plain|preresnet}{depth}[-{a|b|c}][-{k3|k7}][-v1]``.

A suffix is written only where the axis differs from its family's default, and the spelled-out
defaults are aliases (``resnet56-a``). The pre-activation nets of He et al. (2016b) are registered
at the CIFAR defaults only. docs/variants.md explains the grammar."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from itertools import product
from typing import Any

from ablations.blocks import get_block
from ablations.registry import Variant, cifar_stage_blocks, get_variant, register_variant

CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
IMAGENET_STAGES: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

# He et al. (2016b), Table 3: pre-activation nets of two-conv blocks up to 110 layers (6n+2),
# bottlenecks beyond (9n+2).
PREACT_DEPTHS: dict[int, str] = {
    d: "preact" if d <= 110 else "preact-bottleneck" for d in (20, 32, 44, 56, 110, 164, 1001)
}

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "cifar": dict(family="cifar", block="basic", shortcut="a", stem="k3", width=16,
                  input_size=32, num_classes=10),
    "imagenet": dict(family="imagenet", shortcut="b", stem="k7", width=64,
                     input_size=224, num_classes=1000),
}  # fmt: skip

# What each name suffix sets. The k3 stem is the CIFAR adaptation (no downsampling before the
# first stage), so a k3 net is defined on 32x32 CIFAR-10 input, as CIFAR-style ResNet-18 code is.
SUFFIXES: dict[str, dict[str, Any]] = {
    **{shortcut: {"shortcut": shortcut} for shortcut in ("a", "b", "c")},
    "k3": {"stem": "k3", "input_size": 32, "num_classes": 10},
    "k7": {"stem": "k7"},
    "v1": {"stride_at": "1x1"},
}


def base_variant(family: str, depth: int, *, residual: bool = True) -> Variant:
    """The family's net of `depth` layers with its default axes (the name without suffixes)."""
    axes = dict(FAMILY_DEFAULTS[family])
    blocks: tuple[int, ...]
    if family == "cifar":
        blocks = cifar_stage_blocks(depth, block=axes["block"])
    else:
        axes["block"], blocks = IMAGENET_STAGES[depth]
    if not residual:
        axes["shortcut"] = "none"
    name = f"{'resnet' if residual else 'plain'}{depth}"
    return Variant(**axes, name=name, depth=depth, residual=residual, stage_blocks=blocks)


def _suffix_options(base: Variant) -> Iterator[tuple[str, ...]]:
    """Every combination of suffixes that applies to `base`, each in canonical order."""
    shortcuts = ("a", "b", "c") if base.residual else ("",)
    strides = ("", "v1") if "1x1" in get_block(base.block).stride_at else ("",)
    for combo in product(shortcuts, ("k3", "k7"), strides):
        yield tuple(s for s in combo if s)


def _spellings(base: Variant, suffixes: tuple[str, ...]) -> tuple[str, list[str]]:
    """The canonical name (only non-default suffixes) and the aliases spelling out defaults."""
    is_default = [all(getattr(base, k) == v for k, v in SUFFIXES[s].items()) for s in suffixes]
    names = []
    for spelled in product((False, True), repeat=len(suffixes)):
        kept = [s for s, d, sp in zip(suffixes, is_default, spelled, strict=True) if not d or sp]
        names.append(base.name + "".join(f"-{s}" for s in kept))
    unique = list(dict.fromkeys(names))
    return unique[0], unique[1:]


def builtin_grid() -> Iterator[tuple[Variant, list[str]]]:
    """Every family x depth x residual/plain x shortcut x stem (x stride placement) variant."""
    for family, depths in (("cifar", CIFAR_DEPTHS), ("imagenet", tuple(IMAGENET_STAGES))):
        for depth, residual in product(depths, (True, False)):
            base = base_variant(family, depth, residual=residual)
            # The family default first, then one changed axis, then two, ...
            for suffixes in sorted(
                _suffix_options(base), key=lambda s: _spellings(base, s)[0].count("-")
            ):
                name, aliases = _spellings(base, suffixes)
                overrides = {k: v for s in suffixes for k, v in SUFFIXES[s].items()}
                yield replace(base, name=name, **overrides), aliases


def preact_variant(depth: int) -> Variant:
    """The pre-activation CIFAR net of `depth` layers (He et al. 2016b), at the family defaults."""
    block = PREACT_DEPTHS[depth]
    axes = {**FAMILY_DEFAULTS["cifar"], "block": block}
    return Variant(**axes, name=f"preresnet{depth}", depth=depth, residual=True,
                   stage_blocks=cifar_stage_blocks(depth, block=block))  # fmt: skip


for _variant, _aliases in builtin_grid():
    register_variant(_variant, aliases=_aliases)

for _depth in PREACT_DEPTHS:
    _base = preact_variant(_depth)
    register_variant(_base, aliases=_spellings(_base, ("a", "k3"))[1])

# Architectures of the tutorial recipes (ablations.recipes) that the grid does not hold.
register_variant(base_variant("cifar", 14))  # [2, 2, 2] basic blocks, 16/32/64 channels
# d2l.ai's textbook ResNet-18 (ch. 8.6) for 1-channel Fashion-MNIST at 96x96.
D2L_AXES: dict[str, Any] = dict(
    in_channels=1, input_size=96, num_classes=10, conv_bias=True, projection_bn=False
)
register_variant(replace(get_variant("resnet18"), name="resnet18-d2l", **D2L_AXES))
