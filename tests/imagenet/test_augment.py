"""The paper's 10-crop testing (imagenet-paper's ten-crop error) against torchvision's
Resize(256) + TenCrop(224), on noise images (a crop one pixel off changes every value) whose
resized width leaves an even or an odd margin (CenterCrop's rounding), in both orientations. The
centre path is checked against the published preset in test_published_preprocessing."""

from __future__ import annotations

import pytest
import torch

from ablations.imagenet.augment import RECIPES, ten_crop

# TenCrop flips the image and then cuts its five crops, so its flipped half lists the flip of
# the top-right crop first; ours flips each of the five crops. ours[k] is theirs[ORDER[k]].
ORDER = (0, 1, 2, 3, 4, 6, 5, 8, 7, 9)
SHAPES = [(375, 500), (300, 398), (500, 333), (300, 401), (257, 256), (225, 227)]


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{h}x{w}" for h, w in SHAPES])
def test_ten_crop_cuts_torchvisions_ten_crops(shape):
    from torchvision.transforms import v2

    recipe = RECIPES["imagenet-paper"]
    assert "ten-crop" in recipe.eval_crops and (recipe.eval_resize, recipe.crop) == (256, 224)
    g = torch.Generator().manual_seed(sum(shape))
    image = torch.randint(0, 256, (3, *shape), dtype=torch.uint8, generator=g)
    resized = v2.Resize(256, antialias=True)(image)
    theirs = v2.TenCrop(224)(resized)
    ours = ten_crop(image, recipe)
    assert ours.shape == (10, 3, 224, 224) and ours.dtype == torch.uint8
    for k, j in enumerate(ORDER[:9]):
        assert torch.equal(ours[k], theirs[j]), (shape, k)
    # The flipped centre crop: ours mirrors our centre crop; theirs is the centre crop of the
    # mirrored image, which CenterCrop's rounding puts one column away when the margin is odd
    # (a 1/224 shift of one crop in ten; changing ours would change recorded ten-crop errors).
    height, width = resized.shape[-2:]
    top, left = round((height - 224) / 2), round((width - 224) / 2)
    mirrored_left = width - 224 - left
    assert abs(mirrored_left - left) == (width - 224) % 2
    assert torch.equal(ours[9], ours[4].flip(-1))
    expected = resized[:, top : top + 224, mirrored_left : mirrored_left + 224].flip(-1)
    assert torch.equal(theirs[9], expected)
