"""One network builder for every variant: the stem, the shortcuts, `ResNet` and its init.

The blocks are not chosen here: the variant's block declaration (ablations.blocks) names the
class, and says whether the stem has a BN-ReLU and whether the head has one before the pool.
`Block` is the contract every block class keeps. Module and parameter names follow torchvision's
`ResNet` (conv1, bn1, layerN.M.convK, layerN.M.downsample.{0,1}, fc), so torchvision checkpoints
load with `strict=True`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablations.blocks import BlockSpec, get_block
from ablations.registry import InvalidVariantError, Variant


@dataclass(frozen=True)
class StemSpec:
    kernel: int
    stride: int
    maxpool: bool


STEMS: dict[str, StemSpec] = {
    "k7": StemSpec(
        kernel=7, stride=2, maxpool=True
    ),  # the paper's ImageNet stem: /4 before stage 1
    "k3": StemSpec(kernel=3, stride=1, maxpool=False),  # the paper's CIFAR stem: full resolution
}


def conv3x3(
    in_channels: int, out_channels: int, *, stride: int = 1, bias: bool = False
) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)


def conv1x1(
    in_channels: int, out_channels: int, *, stride: int = 1, bias: bool = False
) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias)


class ZeroPadShortcut(nn.Module):
    """Option A: the identity, subsampled by `stride`, with zero channels appended.

    Parameter-free, as in the paper's CIFAR nets ("extra zero entries padded for increasing
    dimensions"); the zeros go after the existing channels.
    """

    def __init__(self, *, extra_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = extra_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels)) if self.extra_channels else x

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra_channels}, stride={self.stride}"


def make_shortcut(
    option: str, *, in_channels: int, out_channels: int, stride: int, bias: bool = False,
    bn: bool = True,
) -> nn.Module | None:  # fmt: skip
    """The shortcut of one block, its `downsample`: None is the plain identity, or no shortcut at
    all for option "none" (a plain net). A projection is a 1x1 conv followed by BN (the paper's,
    torchvision's) or, with `bn=False`, alone (d2l's)."""
    if option == "none":
        return None
    reshapes = stride != 1 or in_channels != out_channels
    if option == "c" or (option == "b" and reshapes):
        conv = conv1x1(in_channels, out_channels, stride=stride, bias=bias)
        return nn.Sequential(conv, nn.BatchNorm2d(out_channels)) if bn else nn.Sequential(conv)
    if option == "a" and reshapes:
        return ZeroPadShortcut(extra_channels=out_channels - in_channels, stride=stride)
    if reshapes:
        raise ValueError(f"shortcut option {option!r} cannot change shape")
    return None


class Block(nn.Module):
    """The contract between the builder and a block class; subclass it for a new block type.

    The builder calls ``cls(in_channels, channels, *, stride, residual, shortcut, stride_at,
    bias, projection_bn)`` with the variant's axes. The block maps `in_channels` to `channels`
    times its declared expansion, at 1/`stride` of the input resolution; `make_shortcut` builds
    its shortcut. It sets `residual` (False: a plain block, no shortcut at all) and `downsample`
    (the shortcut's module; None for the identity and in a plain block): tests and checkpoint
    converters read both.
    """

    residual: bool
    downsample: nn.Module | None

    def responses(self) -> list[str]:
        """Names, relative to the block and in forward order, of the modules whose outputs are
        the responses of He et al. (2016), Fig. 7: each 3x3 conv's output after its BN, before
        ReLU or addition; where no BN follows a 3x3 conv (pre-activation), the conv itself."""
        raise NotImplementedError


class ResNet(nn.Module):
    """Stem (the conv, BN-ReLU where the block declares it, the k7 stem's max pool), stages of
    blocks (the first block of every stage after the first halves the resolution), BN-ReLU where
    the block declares it, global average pool, linear classifier."""

    bn1: nn.BatchNorm2d | None  # the stem's BN, where the block declares a stem BN-ReLU
    bn: nn.BatchNorm2d | None  # the head's BN before the pool, where the block declares one

    def __init__(self, variant: Variant) -> None:
        super().__init__()
        self.variant = variant
        declared = get_block(variant.block)
        stem = STEMS[variant.stem]
        self.conv1 = nn.Conv2d(
            variant.in_channels, variant.width, stem.kernel, stride=stem.stride,
            padding=stem.kernel // 2, bias=variant.conv_bias,
        )  # fmt: skip
        self.bn1 = nn.BatchNorm2d(variant.width) if declared.stem_bn_relu else None
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem.maxpool else nn.Identity()
        in_channels = variant.width
        cls = block_class(declared)
        self.stages: list[str] = []
        for i, (blocks, channels) in enumerate(
            zip(variant.stage_blocks, variant.stage_widths, strict=True)
        ):
            stage = self._stage(
                variant, cls, in_channels, channels, blocks, stride=1 if i == 0 else 2
            )
            self.add_module(f"layer{i + 1}", stage)
            self.stages.append(f"layer{i + 1}")
            in_channels = channels * variant.expansion
        self.bn = nn.BatchNorm2d(in_channels) if declared.head_bn_relu else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, variant.num_classes)
        init_weights(self)

    @staticmethod
    def _stage(
        variant: Variant, cls: type[Block], in_channels: int, channels: int, blocks: int, *,
        stride: int,
    ) -> nn.Sequential:  # fmt: skip
        block = partial(
            cls,
            residual=variant.residual,
            shortcut=variant.shortcut,
            stride_at=variant.stride_at,
            bias=variant.conv_bias,
            projection_bn=variant.projection_bn,
        )
        out_channels = channels * variant.expansion
        layers = [block(in_channels, channels, stride=stride)]
        layers += [block(out_channels, channels, stride=1) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        x = self.maxpool(x)
        for name in self.stages:
            x = getattr(self, name)(x)
        if self.bn is not None:
            x = self.relu(self.bn(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def blocks(self) -> list[tuple[str, Block]]:
        """(qualified name, block) of every block, in forward order."""
        return [
            (f"{stage}.{index}", block)
            for stage in self.stages
            for index, block in enumerate(getattr(self, stage))
        ]

    def responses(self) -> list[str]:
        """Qualified names of the modules whose outputs are Fig. 7's responses, in forward
        order: the stem's when its conv is 3x3 (its BN, or the conv where it has none), then
        each block's own (`Block.responses`)."""
        stem = []
        if self.conv1.kernel_size == (3, 3):
            stem = ["conv1" if self.bn1 is None else "bn1"]
        return stem + [f"{name}.{m}" for name, block in self.blocks() for m in block.responses()]


def block_class(declared: BlockSpec) -> type[Block]:
    """The class a block declaration names, checked to keep the builder's contract."""
    cls: Any = declared.load()
    if not issubclass(cls, Block):
        raise InvalidVariantError(
            f"block {declared.name!r}: {declared.path} must subclass ablations.models.Block"
        )
    return cls


def init_weights(model: nn.Module) -> None:
    """He et al. (2015) normal init, fan_out, for every conv; BN scale 1, shift 0. The linear
    layer keeps PyTorch's default, as torchvision does. A model built on the meta device (shapes
    only, for counting) has no values to initialise, and skipping them halves its build time."""
    if any(p.is_meta for p in model.parameters()):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
