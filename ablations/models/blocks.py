"""The paper's post-activation blocks (He et al. 2016): two 3x3 convs, and the bottleneck.

Their declarations ("basic", "bottleneck") are in ablations.blocks; their module names are
torchvision's (convK, bnK, downsample), so torchvision checkpoints load into them.
"""

from __future__ import annotations

from torch import Tensor, nn

from ablations.models.resnet import Block, conv1x1, conv3x3, make_shortcut


class ResidualBlock(Block):
    """Shared forward of both blocks: residual branch, then (if residual) the shortcut sum, then
    the ReLU (post-activation: every conv's output goes through its BN before anything else)."""

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
        self.downsample = make_shortcut(
            shortcut, in_channels=in_channels, out_channels=channels, stride=stride, bias=bias,
            bn=projection_bn,
        )  # fmt: skip

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))

    def responses(self) -> list[str]:
        return ["bn1", "bn2"]


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
        self.downsample = make_shortcut(
            shortcut, in_channels=in_channels, out_channels=out_channels, stride=stride, bias=bias,
            bn=projection_bn,
        )  # fmt: skip

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def responses(self) -> list[str]:
        return ["bn2"]  # the 3x3 conv's; the 1x1 convs' are not responses
