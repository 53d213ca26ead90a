"""Pre-activation blocks (He et al. 2016b, "Identity Mappings in Deep Residual Networks").

Each conv is preceded by BN and ReLU, and the shortcut's sum is the block's output, with no ReLU
after it: the identity path runs unchanged from the stem to the head. The declarations ("preact",
"preact-bottleneck") in ablations.blocks give such a net a stem conv alone and a BN-ReLU before
the pool. The shortcut takes the block's input, not its pre-activation, as in the paper's Fig. 4(e)
and bearpaw/pytorch-classification's preresnet.py; its module names (bnK, convK, downsample)
are that code's too.
"""

from __future__ import annotations

from torch import Tensor, nn

from ablations.models.resnet import Block, conv1x1, conv3x3, make_shortcut


class PreActBlock(Block):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus the shortcut; the first conv carries the stride."""

    def __init__(
        self, in_channels: int, channels: int, *, stride: int, residual: bool, shortcut: str,
        stride_at: str = "3x3", bias: bool = False, projection_bn: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        del stride_at  # only 3x3 convs
        self.residual = residual
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, channels, stride=stride, bias=bias)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, bias=bias)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(
            shortcut, in_channels=in_channels, out_channels=channels, stride=stride, bias=bias,
            bn=projection_bn,
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        if not self.residual:
            return out
        return out + (x if self.downsample is None else self.downsample(x))

    def responses(self) -> list[str]:
        # conv1's output after its BN is bn2's; conv2's output meets no BN before the sum.
        return ["bn2", "conv2"]


class PreActBottleneck(Block):
    """BN-ReLU-1x1 reduce, BN-ReLU-3x3, BN-ReLU-1x1 expand (x4), plus the shortcut; the stride
    sits on the 3x3 conv or, with stride_at="1x1", on the first 1x1."""

    expansion = 4

    def __init__(
        self, in_channels: int, channels: int, *, stride: int, residual: bool, shortcut: str,
        stride_at: str = "3x3", bias: bool = False, projection_bn: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        out_channels = channels * self.expansion
        self.residual = residual
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(
            in_channels, channels, stride=stride if stride_at == "1x1" else 1, bias=bias
        )
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(
            channels, channels, stride=stride if stride_at == "3x3" else 1, bias=bias
        )
        self.bn3 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, out_channels, bias=bias)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(
            shortcut, in_channels=in_channels, out_channels=out_channels, stride=stride, bias=bias,
            bn=projection_bn,
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if not self.residual:
            return out
        return out + (x if self.downsample is None else self.downsample(x))

    def responses(self) -> list[str]:
        return ["bn3"]  # the 3x3 conv's output after its BN; the 1x1 convs' are not responses
