"""Our ImageNet evaluation path prepares an image as torchvision's published weights were
evaluated (`ResNet*_Weights.IMAGENET1K_V1.transforms()`: PIL decode, bilinear antialiased resize
of the shorter side to 256, centre crop 224, ImageNet mean/std), so `ablate evaluate` can
reproduce their acc@1 to 0.1 point. Images of every shape and kind ImageNet holds, each compared
pixel by pixel with torchvision's own preset."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_imagenet import jpeg, members, odd_members, write_tree

from ablations.data.loader import Normalizer
from ablations.imagenet.augment import IMAGENET_MEAN, IMAGENET_STD, RECIPES, eval_center
from ablations.imagenet.index import build_index
from ablations.imagenet.streaming import decode, eval_batches
from ablations.weights import TORCHVISION

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
SHAPES = [(500, 375), (333, 500), (200, 150), (256, 256), (257, 401), (640, 480), (224, 300)]
# libjpeg-turbo decodes alike in PIL and torchvision.io; the two bilinear antialiased resizes
# (PIL's and torchvision's uint8 tensor kernel) round apart by at most one level (measured:
# max 1, mean <= 0.011 levels over these shapes). A crop off by one pixel, a resize of the
# other side or without antialiasing moves these noise images by tens of levels.
MAX_LEVELS, MEAN_LEVELS = 1.0, 0.05


def published() -> object:
    from torchvision.models import ResNet50_Weights

    return ResNet50_Weights.IMAGENET1K_V1.transforms()


def test_our_constants_are_the_presets():
    preset = published()
    assert (preset.resize_size, preset.crop_size) == ([TORCHVISION.resize], [TORCHVISION.crop])
    assert list(TORCHVISION.mean) == list(IMAGENET_MEAN) == list(preset.mean)  # type: ignore[attr-defined]
    assert list(TORCHVISION.std) == list(IMAGENET_STD) == list(preset.std)  # type: ignore[attr-defined]


def levels(ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """|ours - theirs| in 0..255 levels of each channel (both normalised by ImageNet's std)."""
    std = torch.tensor(TORCHVISION.std).view(3, 1, 1)
    return (ours - theirs).abs() * std * 255


def ours_normalised(raw: bytes) -> torch.Tensor:
    recipe = RECIPES["imagenet-torchvision"]
    assert (recipe.eval_resize, recipe.crop) == (TORCHVISION.resize, TORCHVISION.crop)
    norm = Normalizer.fixed(TORCHVISION.mean, TORCHVISION.std)
    return (eval_center(decode(raw), recipe).float() / 255 - norm.mean) / norm.std


def theirs_normalised(raw: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(raw)) as image:
        return published()(image.convert("RGB"))  # type: ignore[operator]


@pytest.mark.parametrize("raw", [jpeg(w, h, seed=w) for w, h in SHAPES]
                         + list(odd_members().values()),
                         ids=[f"{w}x{h}" for w, h in SHAPES] + ["gray", "cmyk", "png"])  # fmt: skip
def test_centre_crop_matches_torchvisions_published_preset(raw):
    d = levels(ours_normalised(raw), theirs_normalised(raw))
    assert d.shape == (3, 224, 224)
    assert d.max() <= MAX_LEVELS + 1e-3 and d.mean() <= MEAN_LEVELS, (d.max(), d.mean())


def test_the_loader_gives_the_preset_for_every_image_of_a_tree(tmp_path):
    # Through the evaluation loader (workers, batches, normalisation on the device), on a tree
    # with grayscale, CMYK and PNG-named-JPEG files beside ordinary JPEGs.
    files = {**members(train_per_class=2, val_per_class=1), **odd_members()}
    index = build_index("train", write_tree(tmp_path / "in", files))
    batches = eval_batches(
        index, recipe=RECIPES["imagenet-torchvision"], crops="center", batch_size=4,
        device=torch.device("cpu"), workers=0,
        normalizer=Normalizer.fixed(TORCHVISION.mean, TORCHVISION.std),
    )  # fmt: skip
    x = torch.cat([b for b, _ in batches])
    assert len(x) == len(index) == len(files) - 3
    for i in range(len(index)):
        d = levels(x[i], theirs_normalised(index.read(i)))
        assert d.max() <= MAX_LEVELS + 1e-3 and d.mean() <= MEAN_LEVELS, (index.files[i], d.max())
    assert np.isfinite(x.numpy()).all()
