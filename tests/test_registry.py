from __future__ import annotations

from dataclasses import replace
from itertools import product

import pytest

import ablations
from ablations import variants
from ablations.blocks import block_names, get_block
from ablations.registry import (
    InvalidVariantError,
    UnknownVariantError,
    Variant,
    derive,
    get_variant,
    list_variants,
    register_variant,
)

ALL = list_variants()


def test_public_names_are_registered():
    cifar = [f"{kind}{d}" for kind in ("resnet", "plain") for d in (20, 32, 44, 56, 110, 1202)]
    imagenet = [f"{kind}{d}" for kind in ("resnet", "plain") for d in (18, 34, 50, 101, 152)]
    missing = [n for n in cifar + imagenet if n not in ALL]
    assert not missing


def _explicit_names():
    """Every family x depth x residual x shortcut x stem combination, spelled out in full."""
    for family, depths in (
        ("cifar", variants.CIFAR_DEPTHS),
        ("imagenet", variants.IMAGENET_STAGES),
    ):
        for depth, residual, stem in product(depths, (True, False), ("k3", "k7")):
            for shortcut in ("a", "b", "c") if residual else ("none",):
                prefix = "resnet" if residual else "plain"
                suffix = f"-{shortcut}" if residual else ""
                yield f"{prefix}{depth}{suffix}-{stem}", family, depth, residual, shortcut, stem


@pytest.mark.parametrize(
    ("name", "family", "depth", "residual", "shortcut", "stem"), list(_explicit_names())
)
def test_every_combination_resolves_by_name(name, family, depth, residual, shortcut, stem):
    v = get_variant(name)
    assert (v.family, v.depth, v.residual, v.shortcut, v.stem) == (
        family,
        depth,
        residual,
        shortcut,
        stem,
    )
    assert v.name in ALL  # an alias resolves to a registered, canonical variant


def test_family_defaults_have_bare_names():
    assert get_variant("resnet56") is get_variant("resnet56-a") is get_variant("resnet56-a-k3")
    assert get_variant("resnet18") is get_variant("resnet18-b-k7")
    assert get_variant("resnet18").shortcut == "b" and get_variant("resnet18").stem == "k7"
    assert get_variant("resnet56").shortcut == "a" and get_variant("resnet56").stem == "k3"
    assert get_variant("resnet50").stride_at == "3x3"
    assert get_variant("resnet50-v1").stride_at == "1x1"


def test_k3_variants_are_defined_on_cifar_input():
    v = get_variant("resnet18-k3")
    assert (v.input_size, v.num_classes, v.stem) == (32, 10, "k3")


def test_plain_nets_have_no_shortcut_suffix():
    with pytest.raises(UnknownVariantError):
        get_variant("plain20-b")


@pytest.mark.parametrize("name", ["resnet57", "resnet-56", "ResNet56", "plain1203"])
def test_unknown_name_is_one_line_with_closest_names(name):
    with pytest.raises(UnknownVariantError) as err:
        get_variant(name)
    message = str(err.value)
    assert "\n" not in message
    assert name in message
    assert "closest" in message


def test_cifar_depth_must_be_6n_plus_2():
    with pytest.raises(InvalidVariantError, match=r"6n\+2.*got 21"):
        derive("resnet20", depth=21)


def test_unknown_stem_lists_allowed_values():
    with pytest.raises(InvalidVariantError, match="unknown stem 'k5'; allowed: k3, k7"):
        derive("resnet20", stem="k5")


def test_plain_net_with_shortcut_is_invalid():
    with pytest.raises(InvalidVariantError, match="plain nets have no shortcut"):
        derive("plain20", shortcut="b")


def test_v1_placement_needs_a_block_that_declares_it():
    with pytest.raises(InvalidVariantError, match="'1x1' is no placement of basic blocks"):
        derive("resnet18", stride_at="1x1")
    assert derive("resnet50", name="resnet50-v1", stride_at="1x1") == get_variant("resnet50-v1")


def test_unknown_block_is_one_line_listing_the_registered_ones():
    with pytest.raises(InvalidVariantError) as err:
        replace(get_variant("resnet18"), block="bottlenek")
    message = str(err.value)
    assert "\n" not in message
    assert "unknown block 'bottlenek'; registered: " in message
    assert all(name in message for name in block_names())


@pytest.mark.parametrize(("block", "depth", "n"), [("basic", 20, 3), ("bottleneck", 29, 3),
                                                   ("preact-bottleneck", 164, 18)])  # fmt: skip
def test_cifar_depth_follows_the_blocks_layers(block, depth, n):
    """depth = 2 + 3 * n * (layers per block): 6n+2 for two-conv blocks, 9n+2 for bottlenecks."""
    v = derive("resnet20", block=block, depth=depth)
    assert v.stage_blocks == (n, n, n)
    assert depth == 2 + 3 * n * get_block(block).layers
    with pytest.raises(InvalidVariantError, match=r"must be \d+n\+2 with n >= 1.*got"):
        derive("resnet20", block=block, depth=depth + 1)


def test_changing_the_block_of_a_cifar_net_keeps_its_depth_where_it_can():
    assert derive("resnet56", block="bottleneck").stage_blocks == (6, 6, 6)  # 56 = 9 * 6 + 2
    with pytest.raises(InvalidVariantError, match=r"9n\+2.*got 32"):
        derive("resnet32", block="bottleneck")


def test_a_block_declaration_limits_families_and_plain_nets():
    with pytest.raises(InvalidVariantError, match="preact blocks are declared for cifar nets"):
        derive("resnet18", block="preact")
    with pytest.raises(InvalidVariantError, match="preact blocks have no plain form"):
        derive("preresnet20", residual=False, shortcut="none")


@pytest.mark.parametrize("name", ALL)
def test_depth_counts_the_declared_layers(name):
    v = get_variant(name)
    assert v.depth == 2 + get_block(v.block).layers * sum(v.stage_blocks)
    assert v.expansion == get_block(v.block).expansion


def test_preactivation_nets_of_the_paper():
    """He et al. (2016b): two-conv pre-activation blocks up to 110 layers, bottlenecks beyond;
    CIFAR family defaults (shortcut A, k3 stem), spelled-out defaults as aliases."""
    nets = {f"preresnet{d}": "preact" for d in (20, 32, 44, 56, 110)}
    nets |= {"preresnet164": "preact-bottleneck", "preresnet1001": "preact-bottleneck"}
    assert list_variants("preresnet*") == list(nets)
    for name, block in nets.items():
        v = get_variant(name)
        assert (v.family, v.block, v.residual, v.shortcut, v.stem) == (
            "cifar", block, True, "a", "k3",
        )  # fmt: skip
        assert get_variant(f"{name}-a") is get_variant(f"{name}-a-k3") is v
    assert get_variant("preresnet1001").stage_blocks == (111, 111, 111)


def test_imagenet_depth_must_match_blocks():
    with pytest.raises(InvalidVariantError, match="does not match stage_blocks"):
        derive("resnet18", depth=20)


def test_unknown_axis_is_named():
    with pytest.raises(InvalidVariantError, match="unknown axis 'widht'"):
        derive("resnet20", widht=32)


def test_duplicate_registration_raises(scratch_registry):
    with pytest.raises(InvalidVariantError, match="already registered"):
        register_variant(get_variant("resnet20"))
    with pytest.raises(InvalidVariantError, match="already registered"):
        register_variant(replace(get_variant("resnet20"), name="mine"), aliases=["resnet56-a"])


def test_register_a_new_variant_in_a_few_lines(scratch_registry):
    # The README's worked example.
    register_variant(derive("resnet56", name="resnet56-w2", width=32))
    assert "resnet56-w2" in list_variants("resnet56*")
    model = ablations.create_model("resnet56-w2")
    assert model.conv1.out_channels == 32
    assert model.fc.in_features == 128


def test_derive_names_what_changed():
    assert derive("resnet20", width=32).name == "resnet20[width=32]"
    assert derive("resnet20", num_classes=100).name == "resnet20"  # the head follows the dataset
    assert derive("resnet20", width=16).name == "resnet20"  # nothing changed
    deeper = derive("resnet20", depth=56)
    assert deeper.stage_blocks == (9, 9, 9)
    assert deeper.name == "resnet20[depth=56]"


def test_list_variants_globs():
    assert list_variants("resnet5?") == ["resnet56", "resnet50"]
    assert list_variants(["resnet20", "plain20"]) == ["resnet20", "plain20"]
    assert "resnet56" not in list_variants("resnet*", exclude="*56*")
    assert list_variants("nothing*") == []
    assert len(set(ALL)) == len(ALL)


@pytest.mark.parametrize("name", ALL)
def test_axes_are_plain_values(name):
    v = get_variant(name)
    row = v.axes()
    assert all(isinstance(value, (str, int, bool)) for value in row.values())
    assert row["name"] == name
    assert len(v.fingerprint()) == 12
    # A variant round-trips through its row (the results table can name what it measured).
    rebuilt = Variant(**{**row, "stage_blocks": tuple(map(int, row["stage_blocks"].split("-")))})
    assert rebuilt == v


def test_fingerprint_ignores_the_name_only():
    v = get_variant("resnet20")
    assert replace(v, name="other").fingerprint() == v.fingerprint()
    assert derive(v, width=32).fingerprint() != v.fingerprint()
