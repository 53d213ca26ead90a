"""Block declarations: registering, validating, loading, and a block type added in one file."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ablations import create_model, derive, register_variant
from ablations.blocks import (
    BlockSpec,
    block_names,
    get_block,
    register_block,
    unregister_block,
)
from ablations.measure import complexity
from ablations.measure.responses import layer_responses
from ablations.models import Block
from ablations.models.resnet import make_shortcut
from ablations.registry import InvalidVariantError, list_variants


@pytest.fixture
def scratch_blocks():
    """Block types registered during a test are removed afterwards."""
    before = set(block_names())
    yield
    for name in set(block_names()) - before:
        unregister_block(name)


def test_built_in_blocks_are_declared_by_import_path():
    """Importing the registry imports no block class (tests/test_layers.py checks: no torch)."""
    assert {"basic", "bottleneck", "preact", "preact-bottleneck"} <= set(block_names())
    for name in ("basic", "bottleneck", "preact", "preact-bottleneck"):
        declared = get_block(name)
        assert isinstance(declared.module, str)
        assert issubclass(declared.load(), Block)


def test_a_block_type_in_one_file(scratch_registry, scratch_blocks):
    """The whole of adding a block type: a class and its declaration, then a variant of it, which
    builds, trains, names its responses and has its complexity counted, like any other."""

    @register_block("single", layers=1, families=("cifar",))
    class Single(Block):
        """One 3x3 conv and its BN, plus the shortcut, then ReLU: the smallest residual block."""

        def __init__(self, in_channels, channels, *, stride, residual, shortcut,
                     stride_at="3x3", bias=False, projection_bn=True):  # fmt: skip
            super().__init__()
            self.residual = residual
            self.conv = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=bias)
            self.norm = nn.BatchNorm2d(channels)
            self.downsample = (
                make_shortcut(shortcut, in_channels=in_channels, out_channels=channels,
                              stride=stride, bias=bias, bn=projection_bn)
                if residual else None
            )  # fmt: skip

        def forward(self, x):
            out = self.norm(self.conv(x))
            if self.residual:
                out = out + (x if self.downsample is None else self.downsample(x))
            return torch.relu(out)

        def responses(self):
            return ["norm"]

    assert get_block("single").load() is Single
    variant = register_variant(derive("resnet20", name="single11", block="single", depth=11))
    assert variant.stage_blocks == (3, 3, 3)  # depth 11 = 2 + 3 * 3 * 1
    assert "single11" in list_variants()

    torch.manual_seed(0)
    model = create_model("single11")
    x = torch.randn(4, 3, 32, 32)
    model(x).logsumexp(dim=1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() for p in model.parameters())

    table = layer_responses(model, [(x, torch.zeros(4, dtype=torch.long))])
    assert table["module"].tolist() == ["bn1"] + [
        f"layer{s}.{b}.norm" for s in (1, 2, 3) for b in range(3)
    ]

    row = complexity.complexity_row(variant)
    assert row["params"] == sum(p.numel() for p in model.parameters())
    convs = 16 * 3 * 9 + 16 * 16 * 9 * 3 + 16 * 32 * 9 + 32 * 32 * 9 * 2 + 32 * 64 * 9
    convs += 64 * 64 * 9 * 2
    bns = 2 * (16 + 16 * 3 + 32 * 3 + 64 * 3)
    assert row["params"] == convs + bns + 64 * 10 + 10


def test_register_block_decorates_a_class_or_takes_it(scratch_blocks):
    @register_block("decorated", layers=1)
    class Decorated(Block):
        pass

    assert Decorated.__name__ == "Decorated"  # the decorator returns the class itself
    assert get_block("decorated").load() is Decorated
    assert get_block("decorated").path.endswith(":" + Decorated.__qualname__)
    declared = register_block("given", Decorated, layers=2, expansion=4)
    assert declared is get_block("given") and declared.load() is Decorated
    for name in ("decorated", "given"):
        unregister_block(name)
        assert name not in block_names()


def test_duplicate_block_names_are_refused(scratch_blocks):
    with pytest.raises(InvalidVariantError, match="block 'basic' is already registered"):
        register_block("basic", Block, layers=1)


@pytest.mark.parametrize(("options", "problem"), [
    ({"layers": 0}, "layers must be a positive integer"),
    ({"layers": 1, "expansion": 0}, "expansion must be a positive integer"),
    ({"layers": 1, "families": ("mnist",)}, "families must be some of cifar, imagenet"),
    ({"layers": 1, "stride_at": ()}, "stride_at must be some of 3x3, 1x1"),
])  # fmt: skip
def test_an_invalid_declaration_says_what_is_wrong(scratch_blocks, options, problem):
    with pytest.raises(InvalidVariantError, match=problem) as err:
        register_block("broken", Block, **options)
    assert "\n" not in str(err.value)
    assert "broken" not in block_names()


def test_a_module_path_must_name_a_class(scratch_blocks):
    with pytest.raises(InvalidVariantError, match=r"package\.module:Class"):
        BlockSpec(name="nowhere", layers=1, module="ablations.models.blocks.BasicBlock")
    declared = BlockSpec(name="nowhere", layers=2, module="ablations.models.resnet:conv3x3")
    with pytest.raises(InvalidVariantError, match="is not a class"):
        declared.load()


def test_a_class_outside_the_contract_is_refused(scratch_registry, scratch_blocks):
    register_block("not-a-block", nn.Identity, layers=2)
    with pytest.raises(InvalidVariantError, match=r"must subclass ablations\.models\.Block"):
        create_model(derive("resnet20", block="not-a-block"))


def test_unregistering_an_unknown_block_lists_the_registered_ones():
    with pytest.raises(InvalidVariantError, match="unknown block 'nothing'; registered: basic"):
        unregister_block("nothing")
