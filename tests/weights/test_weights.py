"""Checkpoint formats: an akamaster net, written here in their layout from the description of
their resnet.py (module names, option A padding planes//4 zeros before and after), converts to
our architecture with equal logits."""

import hashlib
import re
from dataclasses import replace

import pytest
import torch
from akamaster_layout import TheirResNet, randomised, save_as_they_do

from ablations.config import TrainConfig
from ablations.io import write_json
from ablations.models import ResNet
from ablations.registry import AblationsError, get_variant, list_variants
from ablations.weights import PREPROCESSING, akamaster, load_weights, torchvision


@pytest.mark.parametrize("depth", [20, 56])
def test_akamaster_checkpoint_gives_their_logits(tmp_path, depth):
    theirs = randomised(TheirResNet((depth - 2) // 6))
    path = tmp_path / f"resnet{depth}-test.th"
    save_as_they_do(theirs, path)
    assert all(k.startswith("module.") for k in torch.load(path)["state_dict"])
    variant = get_variant(f"resnet{depth}")
    state, weights = load_weights(str(path), variant=variant, runs_dir=tmp_path)
    ours = ResNet(variant)
    ours.load_state_dict(state)  # strict: every key of our architecture, nothing else
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs(x), ours.eval()(x)
    assert 0.1 < expected.std() < 100  # neither degenerate nor blown up
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert weights.format == "akamaster" and weights.source == path.name
    assert weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert PREPROCESSING[weights.format].mean == (0.485, 0.456, 0.406)
    assert PREPROCESSING[weights.format].std == (0.229, 0.224, 0.225)


def test_permutation_puts_old_channels_in_the_middle():
    perms = akamaster.stream_permutations(get_variant("resnet20"))
    assert perms[0].tolist() == list(range(16))
    assert perms[1].tolist() == [*range(8, 24), *range(8), *range(24, 32)]
    assert perms[2][:16].tolist() == list(range(24, 40))  # stage 1's channels, twice shifted
    assert sorted(perms[2].tolist()) == list(range(64))


def test_akamaster_checkpoint_of_another_depth_is_refused(tmp_path):
    path = tmp_path / "resnet20.th"
    save_as_they_do(randomised(TheirResNet(3)), path)
    with pytest.raises(AblationsError, match=r"deeper|no layer"):
        load_weights(str(path), variant=get_variant("resnet32"), runs_dir=tmp_path)
    with pytest.raises(AblationsError, match="option-A CIFAR"):
        load_weights(str(path), variant=get_variant("resnet20-b"), runs_dir=tmp_path)


def test_a_plain_state_dict_file_is_not_taken_for_akamaster(tmp_path):
    path = tmp_path / "ours.pt"
    torch.save(ResNet(get_variant("resnet20")).state_dict(), path)
    with pytest.raises(AblationsError, match="not an akamaster checkpoint"):
        load_weights(str(path), variant=get_variant("resnet20"), runs_dir=tmp_path)


def test_torchvision_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    variant = get_variant("resnet18")
    with pytest.raises(AblationsError, match=r"put resnet18-f37072fd\.pth at .*hub/checkpoints"):
        load_weights("torchvision:IMAGENET1K_V1", variant=variant, runs_dir=tmp_path)
    # A file in the hub cache is used as it is, with torchvision's preprocessing.
    expected = torchvision.hub_file(variant, "IMAGENET1K_V1")
    expected.parent.mkdir(parents=True)
    torch.save(ResNet(variant).state_dict(), expected)
    state, weights = load_weights("torchvision:IMAGENET1K_V1", variant=variant, runs_dir=tmp_path)
    ResNet(variant).load_state_dict(state)
    assert weights.source == "torchvision:IMAGENET1K_V1" and weights.format == "torchvision"
    assert (PREPROCESSING[weights.format].resize, PREPROCESSING[weights.format].crop) == (256, 224)


def test_a_run_without_weights_says_how_to_get_them(tmp_path):
    with pytest.raises(AblationsError, match="does not exist; train that run"):
        load_weights("run:nope", variant=get_variant("resnet20"), runs_dir=tmp_path)


def _architecture(model: torch.nn.Module) -> dict[str, tuple]:
    """Every parameter and buffer's shape, and every conv's stride, by qualified name: what a
    state_dict fixes and what it does not (a conv's stride holds no weight)."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    strides = {f"{k}:stride": m.stride for k, m in model.named_modules()
               if isinstance(m, torch.nn.Conv2d)}  # fmt: skip
    return {**shapes, **strides}


def _torchvision_architecture(depth: int) -> dict[str, tuple]:
    from torchvision import models

    with torch.device("meta"):
        return _architecture(getattr(models, f"resnet{depth}")(weights=None))


@pytest.mark.parametrize("name", list_variants())
def test_torchvision_weights_are_taken_by_exactly_torchvision_s_architectures(name):
    # Recomputed, not declared: a variant takes torchvision's weights iff building both nets
    # gives the same tensors and the same conv strides (v1 bottlenecks and option A/C match
    # torchvision's keys, or most of them, and would load into the wrong net otherwise).
    variant = get_variant(name)
    same = False
    if variant.family == "imagenet" and variant.depth in (18, 34, 50, 101, 152):
        with torch.device("meta"):
            ours = _architecture(ResNet(replace(variant, num_classes=1000)))
        same = ours == _torchvision_architecture(variant.depth)
    if same:
        torchvision.check_variant(variant)
    else:
        with pytest.raises(AblationsError, match="torchvision's weights fit only"):
            torchvision.check_variant(variant)


def test_a_torchvision_file_for_another_architecture_is_refused(tmp_path):
    # resnet50's weights load key for key into resnet50-v1 (only a stride differs).
    path = tmp_path / "resnet50-0676ba61.pth"
    path.write_bytes(b"")  # refused before it is read
    v1 = get_variant("resnet50-v1")
    with pytest.raises(
        AblationsError, match=r"stride_at '1x1' \(torchvision's: '3x3'\); use resnet50"
    ):
        load_weights(f"torchvision:{path}", variant=v1, runs_dir=tmp_path)


def test_evaluate_refuses_a_near_twin_before_reading_any_data(tmp_path):
    from ablations.weights.evaluate import evaluate_checkpoint

    with pytest.raises(AblationsError, match=r"stride_at '1x1'.*use resnet50"):
        evaluate_checkpoint("resnet50-v1", weights="torchvision:IMAGENET1K_V1",
                            data=tmp_path / "no-imagenet-here", results=tmp_path)  # fmt: skip


@pytest.mark.parametrize(
    ("variant", "weights", "message"),
    [
        ("resnet50", "torchvision:IMAGENET1K_V9", "no resnet50 weights 'IMAGENET1K_V9'"),
        ("resnet18", "torchvision:IMAGENET1K_V1", "not found: put resnet18-"),
        ("resnet20", "run:nope", "no run record at"),
        ("resnet20", "run:committed", "does not exist; train that run"),  # a record, no weights
        ("resnet20", "missing.th", "no such file"),
    ],
)
def test_evaluate_refuses_missing_weights_before_reading_any_data(
    tmp_path, monkeypatch, variant, weights, message
):
    from ablations.weights.evaluate import evaluate_checkpoint

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty hub cache
    weights = str(tmp_path / weights) if weights.endswith(".th") else weights
    if weights == "run:committed":  # committed records hold no weights: config.json alone
        run = tmp_path / "runs" / "committed"
        run.mkdir(parents=True)
        write_json(run / "config.json", TrainConfig(variant="resnet20").to_json())
    with pytest.raises(AblationsError, match=re.escape(message)):
        evaluate_checkpoint(variant, weights=weights, data=tmp_path / "no-data-here",
                            results=tmp_path)  # fmt: skip
