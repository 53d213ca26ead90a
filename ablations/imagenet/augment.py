"""The ImageNet protocols' training crops and test views (docs/imagenet.md): recipes as data,
and functions on uint8 CHW tensors that run alike in CPU workers and on decoded GPU images. The
geometry is drawn on the CPU from a `torch.Generator`, so a crop depends on its seed alone."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ablations.data.transform import Box, center_box, resized_shape

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# AlexNet's PCA of ImageNet's RGB pixels (in [0, 1]); fb.resnet.torch's transforms.lua.
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


@dataclass(frozen=True)
class Recipe:
    """One protocol's data handling. `train` is "he-scale" (He et al. §3.4) or
    "random-resized-crop" (torchvision's V1 recipe)."""

    name: str
    train: str
    crop: int = 224
    short_side: tuple[int, int] = (256, 480)  # he-scale
    scale: tuple[float, float] = (0.08, 1.0)  # random-resized-crop
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    lighting: float = 0.0  # std of the PCA lighting noise; 0 = none
    normalize: str = "fixed"  # "pixel-mean" (the paper) or "fixed" (IMAGENET_MEAN/STD)
    eval_resize: int = 256
    eval_crops: tuple[str, ...] = ("center",)  # of ablations.config.EVAL_CROPS
    multi_scale: tuple[int, ...] = (224, 256, 384, 480, 640)  # shorter sides, Table 4


# One per name in ablations.config.STREAMS (a test checks they agree).
RECIPES: dict[str, Recipe] = {
    "imagenet-paper": Recipe(
        name="imagenet-paper", train="he-scale", lighting=0.1, normalize="pixel-mean",
        eval_crops=("ten-crop", "center", "multi-scale"),
    ),
    "imagenet-torchvision": Recipe(name="imagenet-torchvision", train="random-resized-crop"),
}  # fmt: skip


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def rrc_box(
    height: int, width: int, *, scale: tuple[float, float], ratio: tuple[float, float],
    g: torch.Generator,
) -> Box:  # fmt: skip
    """torchvision's `RandomResizedCrop.get_params`: 10 tries of an area fraction in `scale`
    and a log-uniform aspect ratio in `ratio`; else the whole image, clamped to `ratio`."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * _uniform(g, *scale)
        aspect = math.exp(_uniform(g, *log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=g))
            left = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@dataclass(frozen=True)
class Geometry:
    """One training sample's draw: resize to `resized` (he-scale; None for random-resized-crop,
    which resizes the box), cut `box`, then flip or not."""

    resized: tuple[int, int] | None
    box: Box
    flip: bool


def sample_geometry(height: int, width: int, recipe: Recipe, *, g: torch.Generator) -> Geometry:
    """The recipe's random crop (and flip) of a `height` x `width` image, drawn from `g`."""
    resized: tuple[int, int] | None = None
    if recipe.train == "he-scale":
        low, high = recipe.short_side
        resized = resized_shape(height, width, int(torch.randint(low, high + 1, (1,), generator=g)))
        top = int(torch.randint(0, resized[0] - recipe.crop + 1, (1,), generator=g))
        left = int(torch.randint(0, resized[1] - recipe.crop + 1, (1,), generator=g))
        box = (top, left, recipe.crop, recipe.crop)
    elif recipe.train == "random-resized-crop":
        box = rrc_box(height, width, scale=recipe.scale, ratio=recipe.ratio, g=g)
    else:
        raise ValueError(f"unknown train augmentation {recipe.train!r}")
    return Geometry(resized=resized, box=box, flip=float(torch.rand((), generator=g)) < recipe.flip)


def _resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    # torchvision on first use: importing it costs seconds (it loads dynamo).
    import torchvision.transforms.v2.functional as TF

    return TF.resize(image, list(size), antialias=True)


def _cut(image: Tensor, box: Box) -> Tensor:
    top, left, h, w = box
    return image[..., top : top + h, left : left + w]


def train_sample(image: Tensor, recipe: Recipe, *, g: torch.Generator) -> Tensor:
    """One training crop (uint8 C x crop x crop) of a uint8 CHW image, drawn from `g`."""
    geometry = sample_geometry(image.shape[-2], image.shape[-1], recipe, g=g)
    if geometry.resized is not None:
        out = _cut(_resize(image, geometry.resized), geometry.box)
    else:
        out = _resize(_cut(image, geometry.box), (recipe.crop, recipe.crop))
    return (out.flip(-1) if geometry.flip else out).contiguous()


def eval_resize(image: Tensor, short: int) -> Tensor:
    return _resize(image, resized_shape(image.shape[-2], image.shape[-1], short))


def eval_center(image: Tensor, recipe: Recipe) -> Tensor:
    """Resize to `eval_resize` then the centre crop: uint8 C x crop x crop."""
    resized = eval_resize(image, recipe.eval_resize)
    return _cut(resized, center_box(resized.shape[-2], resized.shape[-1], recipe.crop)).contiguous()


def ten_crop(image: Tensor, recipe: Recipe) -> Tensor:
    """The 10 crops (10 x C x crop x crop) of the resized image: `FiveCrop`'s five (the corners,
    then the centre), then each flipped. `TenCrop` cuts its flipped centre from the flipped image
    instead: one column away when the margin is odd (tests/imagenet/test_augment.py)."""
    import torchvision.transforms.v2.functional as TF  # on first use, as in `_resize`

    five = torch.stack(TF.five_crop(eval_resize(image, recipe.eval_resize), [recipe.crop] * 2))
    return torch.cat([five, five.flip(-1)])


def multi_scale(image: Tensor, recipe: Recipe) -> list[Tensor]:
    """Table 4's fully-convolutional test: for each shorter side of `recipe.multi_scale`, the
    whole image resized to it and its flip (2 x C x H_s x W_s). The net's global pool averages
    the score map, and `evaluation.eval_sums` averages the views' logits."""
    views = (eval_resize(image, short) for short in recipe.multi_scale)
    return [torch.stack([v, v.flip(-1)]) for v in views]


def lighting(
    x: Tensor, *, std: float, g: torch.Generator, rows: slice | None = None,
    batch: int | None = None,
) -> Tensor:  # fmt: skip
    """AlexNet's PCA colour noise on a float batch in [0, 1] units (B x 3 x H x W): each image
    gets eigvec @ (alpha * eigval) added to every pixel, alpha ~ N(0, std) per component. `x`
    may be the `rows` of a global batch of `batch` images: alphas are drawn for all of it."""
    if std == 0:
        return x
    alpha = torch.randn(batch or x.shape[0], 3, generator=g)[rows or slice(None)] * std
    rgb = (alpha * torch.tensor(PCA_EIGVAL)) @ torch.tensor(PCA_EIGVEC).T
    if x.device.type == "cuda":  # from pinned memory, without waiting: no host sync per step
        rgb = rgb.pin_memory().to(x.device, non_blocking=True)
    return x + rgb.to(x.device, x.dtype).view(-1, 3, 1, 1)
