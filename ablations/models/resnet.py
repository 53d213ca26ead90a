"""One network builder for every variant: stems, blocks and shortcuts are chosen by string.

Module and parameter names follow torchvision's `ResNet` (conv1, bn1, layerN.M.convK,
layerN.M.downsample.{0,1}, fc), so torchvision checkpoints load with `strict=True`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablations.registry import Variant


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
    """The shortcut of one residual block; None means the plain identity. A projection is a
    1x1 conv followed by BN (the paper's, torchvision's) or, with `bn=False`, alone (d2l's)."""
    reshapes = stride != 1 or in_channels != out_channels
    if option == "c" or (option == "b" and reshapes):
        conv = conv1x1(in_channels, out_channels, stride=stride, bias=bias)
        return nn.Sequential(conv, nn.BatchNorm2d(out_channels)) if bn else nn.Sequential(conv)
    if option == "a" and reshapes:
        return ZeroPadShortcut(extra_channels=out_channels - in_channels, stride=stride)
    if reshapes:
        raise ValueError(f"shortcut option {option!r} cannot change shape")
    return None


class ResidualBlock(nn.Module):
    """Shared forward of both blocks: residual branch, then (if residual) the shortcut sum."""

    residual: bool
    downsample: nn.Module | None
    relu: nn.ReLU

    def branch(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch(x)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class BasicBlock(ResidualBlock):
    """Two 3x3 convs; the first carries the stride."""

    def __init__(
        self, in_channels: int, channels: int, *, stride: int, residual: bool, shortcut: str,
        stride_at: str = "3x3", bias: bool = False, projection_bn: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        del stride_at  # a basic block has only 3x3 convs
        self.residual = residual
        self.conv1 = conv3x3(in_channels, channels, stride=stride, bias=bias)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, bias=bias)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            make_shortcut(
                shortcut,
                in_channels=in_channels,
                out_channels=channels,
                stride=stride,
                bias=bias,
                bn=projection_bn,
            )
            if residual
            else None
        )

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand (x4); the stride sits on the 3x3 (v1.5) or the first 1x1 (v1)."""

    expansion = 4

    def __init__(
        self, in_channels: int, channels: int, *, stride: int, residual: bool, shortcut: str,
        stride_at: str = "3x3", bias: bool = False, projection_bn: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        out_channels = channels * self.expansion
        self.residual = residual
        self.conv1 = conv1x1(
            in_channels, channels, stride=stride if stride_at == "1x1" else 1, bias=bias
        )
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(
            channels, channels, stride=stride if stride_at == "3x3" else 1, bias=bias
        )
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, out_channels, bias=bias)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            make_shortcut(
                shortcut,
                in_channels=in_channels,
                out_channels=out_channels,
                stride=stride,
                bias=bias,
                bn=projection_bn,
            )
            if residual
            else None
        )

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


class ResNet(nn.Module):
    """Stem, stages of blocks (the first block of every stage after the first halves the
    resolution), global average pool, linear classifier."""

    def __init__(self, variant: Variant) -> None:
        super().__init__()
        self.variant = variant
        stem = STEMS[variant.stem]
        self.conv1 = nn.Conv2d(
            variant.in_channels, variant.width, stem.kernel, stride=stem.stride,
            padding=stem.kernel // 2, bias=variant.conv_bias,
        )  # fmt: skip
        self.bn1 = nn.BatchNorm2d(variant.width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem.maxpool else nn.Identity()
        in_channels = variant.width
        self.stages: list[str] = []
        for i, (blocks, channels) in enumerate(
            zip(variant.stage_blocks, variant.stage_widths, strict=True)
        ):
            stage = self._stage(variant, in_channels, channels, blocks, stride=1 if i == 0 else 2)
            self.add_module(f"layer{i + 1}", stage)
            self.stages.append(f"layer{i + 1}")
            in_channels = channels * variant.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, variant.num_classes)
        init_weights(self)

    @staticmethod
    def _stage(
        variant: Variant, in_channels: int, channels: int, blocks: int, *, stride: int
    ) -> nn.Sequential:
        block = partial(
            BLOCKS[variant.block],
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
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


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
