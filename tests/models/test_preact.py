"""Pre-activation blocks and nets (He et al. 2016b): the order of operations, the identity path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ablations import create_model, derive
from ablations.models.preact import PreActBlock, PreActBottleneck


def _randomised(model):
    """Eval mode with non-trivial BN statistics and affine parameters: BN is far from the
    identity, so a BN applied in the wrong place shows."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for t in (m.weight.data, m.bias.data, m.running_mean):
                t.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _preact(bn, conv, x):
    return conv(torch.relu(bn(x)))


@pytest.mark.parametrize(("shortcut", "stage", "index"), [
    ("a", "layer1", 1),  # identity shortcut
    ("a", "layer2", 0),  # zero-padded, subsampled input
    ("b", "layer3", 0),  # projection of the block's input
])  # fmt: skip
def test_basic_preact_block_is_bn_relu_conv_twice_plus_the_shortcut(shortcut, stage, index):
    model = _randomised(create_model(derive("preresnet20", shortcut=shortcut)))
    block = getattr(model, stage)[index]
    assert isinstance(block, PreActBlock)
    x = torch.randn(2, block.bn1.num_features, 8, 8)
    branch = _preact(block.bn2, block.conv2, _preact(block.bn1, block.conv1, x))
    shortcut = x if block.downsample is None else block.downsample(x)
    with torch.no_grad():
        torch.testing.assert_close(block(x), branch + shortcut)


def test_preact_bottleneck_is_three_preactivated_convs_plus_the_shortcut():
    block = _randomised(create_model("preresnet164")).layer2[0]
    assert isinstance(block, PreActBottleneck)
    assert block.conv2.stride == (2, 2) and block.conv3.out_channels == 4 * block.conv2.in_channels
    x = torch.randn(2, block.bn1.num_features, 8, 8)
    out = x
    for bn, conv in ((block.bn1, block.conv1), (block.bn2, block.conv2), (block.bn3, block.conv3)):
        out = _preact(bn, conv, out)
    with torch.no_grad():
        torch.testing.assert_close(block(x), out + block.downsample(x))


@pytest.mark.parametrize("name", ["preresnet20", "preresnet164"])
def test_a_block_whose_last_conv_is_zero_is_the_identity(name):
    """Nothing follows the addition: with the branch silenced, negative inputs pass unchanged
    (a post-activation block's ReLU would clip them)."""
    block = create_model(name).layer1[1].eval()
    last = block.conv3 if isinstance(block, PreActBottleneck) else block.conv2
    nn.init.zeros_(last.weight)
    x = torch.randn(2, block.bn1.num_features, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), x)
        post = create_model("resnet20").layer1[1].eval()
        nn.init.zeros_(post.bn2.weight)
        nn.init.zeros_(post.bn2.bias)
        assert not torch.equal(post(x[:, :16]), x[:, :16])


def test_the_net_is_stem_conv_blocks_then_bn_relu_pool_and_classifier():
    model = _randomised(create_model("preresnet20"))
    x = torch.randn(2, 3, 32, 32)
    out = model.layer3(model.layer2(model.layer1(model.conv1(x))))
    out = torch.relu(model.bn(out)).mean(dim=(2, 3))
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.fc(out))
