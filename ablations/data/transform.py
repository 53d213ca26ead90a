"""The decode-time transform: images of many sizes resized and centre-cropped to one array
shape, exactly as torchvision's `Resize` then `CenterCrop` on PIL images."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from ablations.data.arrays import Arrays, DataError

Box = tuple[int, int, int, int]  # (top, left, height, width)


@dataclass(frozen=True)
class Transform:
    """The shorter side resized to `resize` pixels (bilinear), then a centred `crop` x `crop`
    square cut out; None skips a step."""

    resize: int | None = None
    crop: int | None = None

    def __post_init__(self) -> None:
        for option, value in (("resize", self.resize), ("crop", self.crop)):
            # bool is an int, but resize=True is surely a mistake.
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise DataError(f"{option} must be a whole number of pixels, got {value!r}")
            if value is not None and value < 1:
                raise DataError(f"{option} must be at least 1 pixel, got {value}")
        # The shorter side is exactly `resize` after resizing: a larger crop never fits.
        if self.resize is not None and self.crop is not None and self.crop > self.resize:
            raise DataError(
                f"crop {self.crop} is larger than resize {self.resize} (the shorter side after "
                f"resizing); pass a crop of at most {self.resize} or a larger resize"
            )

    @property
    def identity(self) -> bool:
        return self.resize is None and self.crop is None

    def suffix(self) -> str:
        """What tells this transform's cache files apart ("" for none)."""
        steps = (("resize", self.resize), ("crop", self.crop))
        return "".join(f"-{step}{value}" for step, value in steps if value is not None)

    def apply(self, image: Image.Image, *, name: str, where: str) -> Image.Image:
        if self.resize is not None:
            height, width = resized_shape(image.height, image.width, self.resize)
            if (width, height) != image.size:  # torchvision leaves the right size untouched
                image = image.resize((width, height), Image.Resampling.BILINEAR)
        if self.crop is not None:
            width, height = image.size
            if self.crop > min(width, height):
                raise DataError(
                    f"{where}: {name} is {width}x{height}, smaller than the {self.crop}x"
                    f"{self.crop} crop; pass a crop of at most {min(width, height)} "
                    "(or resize first)"
                )
            top, left, _, _ = center_box(height, width, self.crop)
            image = image.crop((left, top, left + self.crop, top + self.crop))
        return image


def resized_shape(height: int, width: int, short: int) -> tuple[int, int]:
    """(height, width) with the shorter side `short` and the longer one scaled and truncated, as
    torchvision's `Resize(short)` computes it."""
    if width <= height:
        return int(short * height / width), short
    return short, int(short * width / height)


def center_box(height: int, width: int, crop: int) -> Box:
    """torchvision's `CenterCrop` box: its rounding (half to even), so the pixels match."""
    return round((height - crop) / 2.0), round((width - crop) / 2.0), crop, crop


def transformed(arrays: Arrays, transform: Transform, *, where: str) -> Arrays:
    """Arrays read whole (pickles, idx files) through `transform`, image by image as PIL sees
    them, so they match what the same transform gives the same images as files."""
    if transform.identity:
        return arrays
    return replace(
        arrays,
        x_train=_transform_all(arrays.x_train, transform, split="train", where=where),
        x_test=_transform_all(arrays.x_test, transform, split="test", where=where),
    )


def _transform_all(x: np.ndarray, transform: Transform, *, split: str, where: str) -> np.ndarray:
    out: np.ndarray | None = None
    for i, pixels in enumerate(x):
        done = np.asarray(transform.apply(to_image(pixels), name=f"{split} image {i}", where=where))
        if out is None:  # all the same size, as the inputs are
            out = np.empty((len(x), *done.shape[:2], x.shape[-1]), dtype=np.uint8)
        out[i] = done.reshape(out.shape[1:])
    return x if out is None else out  # an empty split stays empty


def to_image(pixels: np.ndarray) -> Image.Image:
    """An HWC uint8 image as PIL sees it ("L" for one channel)."""
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
