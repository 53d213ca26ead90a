from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from ablations import create_model, derive, get_variant, list_variants
from ablations.blocks import get_block
from ablations.models import Block
from ablations.models.resnet import ZeroPadShortcut

ALL = list_variants()
# ImageNet nets with the k7 stem divide the input by 32; 64x64 keeps a 2x2 map at the last stage
# (enough for train-mode BatchNorm) and the suite fast.
TEST_SIZE = {"imagenet": 64}


def _size(v):
    return min(v.input_size, TEST_SIZE.get(v.family, v.input_size))


@pytest.mark.parametrize("name", ALL)
def test_variant_builds_runs_and_backpropagates(name):
    torch.manual_seed(0)
    v = get_variant(name)
    model = create_model(name)
    x = torch.randn(2, v.in_channels, _size(v), _size(v))
    out = model(x)
    assert out.shape == (2, v.num_classes)
    out.logsumexp(dim=1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing, f"no gradient reached {missing[:3]}"


def _shortcut_kind(block):
    if not block.residual:
        return "none"
    if block.downsample is None:
        return "identity"
    return "zero-pad" if isinstance(block.downsample, ZeroPadShortcut) else "projection"


# What each shortcut option puts on a block whose shape (changes, stays).
EXPECTED_SHORTCUT = {
    "a": ("zero-pad", "identity"),
    "b": ("projection", "identity"),
    "c": ("projection", "projection"),
    "none": ("none", "none"),
}


def _shapes_only(name):
    """The model's modules and parameter shapes without its init (built on the meta device):
    what the structure tests read, at a fraction of a deep net's build time."""
    with torch.device("meta"):
        return create_model(name)


def _block_shapes(model, v):
    """(block, input shape, output shape) of every block (the `Block` contract), in forward
    order, from a forward pass on the meta device: shapes without arithmetic."""
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append((m, i[0].shape, o.shape)))
             for b in blocks]  # fmt: skip
    model(torch.empty(1, v.in_channels, _size(v), _size(v), device="meta"))
    for hook in hooks:
        hook.remove()
    assert [b for b, _, _ in seen] == blocks
    return seen


def _branch_convs(block):
    """The block's weighted layers: its convs outside the shortcut."""
    shortcut = set(block.downsample.modules()) if block.downsample is not None else set()
    return [m for m in block.modules() if _is_conv(m) and m not in shortcut]


@pytest.mark.parametrize("name", ALL)
def test_structure_follows_axes_and_the_block_declaration(name):
    v = get_variant(name)
    declared = get_block(v.block)
    model = _shapes_only(name)
    shapes = _block_shapes(model, v)
    assert len(shapes) == sum(v.stage_blocks)
    assert shapes[0][1][1] == v.width  # the stem's output feeds the first block
    widths = [w for w, n in zip(v.stage_widths, v.stage_blocks, strict=True) for _ in range(n)]
    for (block, before, after), width in zip(shapes, widths, strict=True):
        assert len(_branch_convs(block)) == declared.layers
        assert after[1] == width * declared.expansion
        changes, stays = EXPECTED_SHORTCUT[v.shortcut]
        assert _shortcut_kind(block) == (changes if before != after else stays)
    branch_convs = sum(len(_branch_convs(b)) for b, _, _ in shapes)
    assert 1 + branch_convs + 1 == v.depth  # stem conv + branches + the linear layer
    stem_kernel = {"k3": 3, "k7": 7}[v.stem]
    assert model.conv1.kernel_size == (stem_kernel, stem_kernel)
    assert isinstance(model.maxpool, nn.MaxPool2d) == (v.stem == "k7")
    assert all((m.bias is not None) == v.conv_bias for m in model.modules() if _is_conv(m))
    for block, _, _ in shapes:
        if _shortcut_kind(block) == "projection":
            has_bn = any(isinstance(m, nn.BatchNorm2d) for m in block.downsample)
            assert has_bn == v.projection_bn


@pytest.mark.parametrize("name", ALL)
def test_stem_and_head_activations_are_the_declared_ones(name):
    """BNs outside the blocks: the stem's (after its conv) and the head's (before the pool) where
    the block's declaration asks for them, read off the traced graph."""
    v = get_variant(name)
    declared = get_block(v.block)
    model = _shapes_only(name)
    inside = {m for b in model.modules() if isinstance(b, Block) for m in b.modules()}
    modules = dict(model.named_modules())
    order = [n.target for n in torch.fx.symbolic_trace(model).graph.nodes
             if n.op == "call_module" and modules[n.target] not in inside]  # fmt: skip
    kinds = [type(modules[t]) for t in order]
    norms = [i for i, kind in enumerate(kinds) if kind is nn.BatchNorm2d]
    assert len(norms) == declared.stem_bn_relu + declared.head_bn_relu
    if declared.stem_bn_relu:  # the stem conv, then BN-ReLU
        assert kinds[:3] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
        assert modules[order[1]].num_features == v.width
    if declared.head_bn_relu:  # the last block's sum, then BN-ReLU, the pool and the classifier
        assert kinds[-4:] == [nn.BatchNorm2d, nn.ReLU, nn.AdaptiveAvgPool2d, nn.Linear]
        assert modules[order[-4]].num_features == model.fc.in_features


@pytest.mark.parametrize("name", ALL)
def test_every_3x3_conv_has_one_response(name):
    """Fig. 7's responses, as the blocks name them: one per 3x3 conv of the stem and the
    branches, each a module of the model outside the shortcuts."""
    v = get_variant(name)
    model = _shapes_only(name)
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    convs = [c for b in blocks for c in _branch_convs(b) if c.kernel_size == (3, 3)]
    assert len(model.responses()) == (v.stem == "k3") + len(convs)
    for block in blocks:
        threes = [c for c in _branch_convs(block) if c.kernel_size == (3, 3)]
        assert len(block.responses()) == len(threes)
        assert all("downsample" not in r for r in block.responses())
    named = dict(model.named_modules())
    assert all(r in named for r in model.responses())


def _is_conv(m):
    return isinstance(m, nn.Conv2d)


@pytest.mark.parametrize("name", ALL)
def test_he_initialisation(name):
    torch.manual_seed(0)
    model = create_model(name)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    # The largest conv has enough weights for a tight check of std = sqrt(2 / fan_out).
    conv = max(
        (m for m in model.modules() if isinstance(m, nn.Conv2d)), key=lambda m: m.weight.numel()
    )
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_torchvision_weights_load_strictly_and_agree(depth):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, f"resnet{depth}")(weights=None).eval()
    ours = create_model(f"resnet{depth}").eval()
    theirs = {k: v.shape for k, v in reference.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == theirs
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list_variants("resnet*-b", exclude="resnet*-k7*"))
def test_option_b_adds_parameters_only_where_the_shape_changes(name):
    with_b = dict(create_model(name).named_parameters())
    twin = (
        get_variant(name).name.removesuffix("-b") if get_variant(name).family == "cifar" else name
    )
    with_a = dict(create_model(derive(twin, shortcut="a")).named_parameters())
    extra = sorted({k.rsplit(".", 2)[0] for k in with_b.keys() - with_a.keys()})
    v = get_variant(name)
    assert extra == [f"layer{i + 1}.0.downsample" for i in range(1, len(v.stage_blocks))]
    assert with_a.keys() <= with_b.keys()


@pytest.mark.parametrize("name", list_variants("plain*"))
def test_plain_net_has_the_parameters_of_its_option_a_twin(name):
    plain = _shapes_only(name)
    residual = _shapes_only(derive(name, residual=True, shortcut="a"))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(plain) == count(residual)


def test_zero_pad_shortcut_is_subsampled_identity_plus_zeros():
    x = torch.randn(2, 4, 6, 6)
    y = ZeroPadShortcut(extra_channels=4, stride=2)(x)
    assert y.shape == (2, 8, 3, 3)
    torch.testing.assert_close(y[:, :4], x[:, :, ::2, ::2])
    assert torch.all(y[:, 4:] == 0)
    assert not list(ZeroPadShortcut(extra_channels=4, stride=2).parameters())


def test_bottleneck_stride_placement():
    v15, v1 = create_model("resnet50"), create_model("resnet50-v1")
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)


def test_plain_block_adds_nothing():
    # Zeroing the residual branch must zero a plain block's output but not a residual one's.
    for name, expect_zero in (("plain20", True), ("resnet20", False)):
        block = create_model(name).layer1[0].eval()
        nn.init.zeros_(block.bn2.weight)
        out = block(torch.rand(1, 16, 8, 8))
        assert bool(torch.all(out == 0)) == expect_zero


def test_create_model_overrides():
    model = create_model("resnet20", num_classes=100, shortcut="b")
    assert model.fc.out_features == 100
    assert model.variant.name == "resnet20[shortcut=b]"
    assert model.layer2[0].downsample is not None


class _D2lResidual(nn.Module):
    """d2l.ai's `Residual` (ch. 8.6), as the textbook writes it."""

    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, 3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, 3, padding=1)
        self.conv3 = (
            nn.Conv2d(input_channels, num_channels, 1, stride=strides) if use_1x1conv else None
        )
        self.bn1, self.bn2 = nn.BatchNorm2d(num_channels), nn.BatchNorm2d(num_channels)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.conv3(x) if self.conv3 is not None else x))


def _d2l_resnet18():
    def stage(cin, cout, first):
        return [
            _D2lResidual(cin, cout, use_1x1conv=not first, strides=1 if first else 2),
            _D2lResidual(cout, cout),
        ]

    b1 = [nn.Conv2d(1, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
          nn.MaxPool2d(3, stride=2, padding=1)]  # fmt: skip
    stages = [*stage(64, 64, True), *stage(64, 128, False), *stage(128, 256, False),
              *stage(256, 512, False)]  # fmt: skip
    return nn.Sequential(*b1, *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))


def _d2l_name(ours: str) -> str:
    """Our parameter name -> the textbook model's (nn.Sequential indices)."""
    parts = ours.split(".")
    if parts[0] in ("conv1", "bn1"):
        return ".".join(["0" if parts[0] == "conv1" else "1", *parts[1:]])
    if parts[0] == "fc":
        return ".".join(["14", *parts[1:]])
    stage, block = int(parts[0][len("layer") :]), int(parts[1])
    module = "conv3" if parts[2] == "downsample" else parts[2]
    rest = parts[4:] if parts[2] == "downsample" else parts[3:]
    return ".".join([str(4 + 2 * (stage - 1) + block), module, *rest])


def test_d2l_variant_is_the_textbook_network():
    """The same tensors under the textbook's names, and the same function on the same weights."""
    ours, theirs = create_model("resnet18-d2l").eval(), _d2l_resnet18().eval()
    mine = {_d2l_name(k): v for k, v in ours.state_dict().items()}
    assert {k: v.shape for k, v in mine.items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    theirs.load_state_dict(mine)
    x = torch.randn(2, 1, 96, 96)
    torch.testing.assert_close(ours(x), theirs(x))
