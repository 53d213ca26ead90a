"""Checkpoint formats: an akamaster net, written here in their layout from the description of
their resnet.py (module names, option A padding planes//4 zeros before and after), converts to
our architecture with equal logits."""

import hashlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablations.models import ResNet
from ablations.registry import AblationsError, get_variant
from ablations.runners import checkpoints
from ablations.runners.checkpoints import akamaster, torchvision


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class TheirBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:  # option A, symmetric zero channels
            self.shortcut = _Lambda(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class TheirResNet(nn.Module):
    def __init__(self, num_blocks, num_classes=10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks, 1)
        self.layer2 = self._make_layer(32, num_blocks, 2)
        self.layer3 = self._make_layer(64, num_blocks, 2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(TheirBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3]).flatten(1)
        return self.linear(out)


def _randomised(net):
    """Random weights and non-trivial BN statistics and affine parameters, so that a wrong
    channel order cannot hide behind identical values."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):  # fan-in scaled: deep nets stay finite
                m.weight.normal_(0, m.weight[0].numel() ** -0.5, generator=gen)
            if isinstance(m, nn.Linear):
                m.bias.normal_(0, 0.3, generator=gen)
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.2, generator=gen)
                m.running_mean.normal_(0, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
    return net.eval()


def _save_as_they_do(net, path):
    """trainer.py: torch.save({'state_dict': DataParallel(model).state_dict(), ...}); their
    files predate BN's num_batches_tracked."""
    state = nn.DataParallel(net).state_dict()
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state, "best_prec1": 91.7}, path)


@pytest.mark.parametrize("depth", [20, 56])
def test_akamaster_checkpoint_gives_their_logits(tmp_path, depth):
    theirs = _randomised(TheirResNet((depth - 2) // 6))
    path = tmp_path / f"resnet{depth}-test.th"
    _save_as_they_do(theirs, path)
    assert all(k.startswith("module.") for k in torch.load(path)["state_dict"])
    variant = get_variant(f"resnet{depth}")
    state, weights = checkpoints.load_weights(str(path), variant=variant, runs_dir=tmp_path)
    ours = ResNet(variant)
    ours.load_state_dict(state)  # strict: every key of our architecture, nothing else
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs(x), ours.eval()(x)
    assert 0.1 < expected.std() < 100  # neither degenerate nor blown up
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert weights.format == "akamaster" and weights.source == path.name
    assert weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert weights.preprocessing.mean == (0.485, 0.456, 0.406)
    assert weights.preprocessing.std == (0.229, 0.224, 0.225)


def test_permutation_puts_old_channels_in_the_middle():
    perms = akamaster.stream_permutations(get_variant("resnet20"))
    assert perms[0].tolist() == list(range(16))
    assert perms[1].tolist() == [*range(8, 24), *range(8), *range(24, 32)]
    assert perms[2][:16].tolist() == list(range(24, 40))  # stage 1's channels, twice shifted
    assert sorted(perms[2].tolist()) == list(range(64))


def test_akamaster_checkpoint_of_another_depth_is_refused(tmp_path):
    path = tmp_path / "resnet20.th"
    _save_as_they_do(_randomised(TheirResNet(3)), path)
    with pytest.raises(AblationsError, match=r"deeper|no layer"):
        checkpoints.load_weights(str(path), variant=get_variant("resnet32"), runs_dir=tmp_path)
    with pytest.raises(AblationsError, match="option-A CIFAR"):
        checkpoints.load_weights(str(path), variant=get_variant("resnet20-b"), runs_dir=tmp_path)


def test_a_plain_state_dict_file_is_not_taken_for_akamaster(tmp_path):
    path = tmp_path / "ours.pt"
    torch.save(ResNet(get_variant("resnet20")).state_dict(), path)
    with pytest.raises(AblationsError, match="not an akamaster checkpoint"):
        checkpoints.load_weights(str(path), variant=get_variant("resnet20"), runs_dir=tmp_path)


def test_torchvision_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    variant = get_variant("resnet18")
    with pytest.raises(AblationsError, match=r"put resnet18-f37072fd\.pth at .*hub/checkpoints"):
        checkpoints.load_weights("torchvision:IMAGENET1K_V1", variant=variant, runs_dir=tmp_path)
    # A file in the hub cache is used as it is, with torchvision's preprocessing.
    expected = torchvision.hub_file(variant, "IMAGENET1K_V1")
    expected.parent.mkdir(parents=True)
    torch.save(ResNet(variant).state_dict(), expected)
    state, weights = checkpoints.load_weights(
        "torchvision:IMAGENET1K_V1", variant=variant, runs_dir=tmp_path
    )
    ResNet(variant).load_state_dict(state)
    assert weights.source == "torchvision:IMAGENET1K_V1" and weights.format == "torchvision"
    assert (weights.preprocessing.resize, weights.preprocessing.crop) == (256, 224)


def test_a_run_without_weights_says_how_to_get_them(tmp_path):
    with pytest.raises(AblationsError, match="does not exist; train that run"):
        checkpoints.load_weights("run:nope", variant=get_variant("resnet20"), runs_dir=tmp_path)
