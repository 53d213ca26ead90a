"""A run's streamed data (ImageNet-size), the counterpart of `prepare.prepare_data` for arrays:
the train index as an `ImageStream`, the val index for evaluation with the recipe's crops, the
normaliser, and the record that results keep (source by name, layout, listing checksum)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ablations.data.arrays import DataError
from ablations.data.imagenet import ImageIndex, build_index, subset_index
from ablations.data.imagenet_augment import RECIPES, Recipe
from ablations.data.loader import Normalizer
from ablations.data.streaming import Decode, ImageStream, eval_batches, fit_normalizer

PIXEL_MEAN_IMAGES = 10_000  # training images averaged for the paper's per-pixel mean


@dataclass
class StreamData:
    """The train stream, the val index (ImageNet's 50k val images: what the paper reports on and
    watches for the plateau), and how to evaluate on it."""

    train: ImageStream
    val: ImageIndex
    recipe: Recipe
    normalizer: Normalizer
    record: dict[str, Any] = field(default_factory=dict)
    in_channels: int = 3

    @property
    def num_classes(self) -> int:
        return len(self.train.index.classes)

    def eval_batches(
        self, *, crops: str, batch_size: int, workers: int | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Val batches: "center" (B images) or "ten-crop" (B * 10 images, average the logits
        with `imagenet_augment.average_ten_crop_logits`)."""
        if crops not in self.recipe.eval_crops and crops != "center":
            raise DataError(
                f"{self.recipe.name} evaluates with {', '.join(self.recipe.eval_crops)}"
            )
        return eval_batches(
            self.val, recipe=self.recipe, crops=crops, batch_size=batch_size,
            device=self.train.device, normalizer=self.normalizer, workers=workers,
        )  # fmt: skip


def prepare_stream(
    *,
    recipe: str,
    batch_size: int,
    seed: int,
    device: torch.device,
    data: str | os.PathLike[str] | None = None,
    decode: Decode = "cpu",
    workers: int | None = None,
    classes: int | None = None,
    train_per_class: int | None = None,
    val_per_class: int | None = None,
    split_seed: int = 0,
    channels_last: bool = False,
) -> StreamData:
    """Index (cached), subset (`classes` and per-class caps, drawn with `split_seed`), the
    recipe's normaliser, and the stream."""
    if recipe not in RECIPES:
        raise DataError(f"unknown ImageNet recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    spec = RECIPES[recipe]
    train, val = build_index("train", data), build_index("val", data)
    if val.classes != train.classes:
        raise DataError("train/ and val/ name different classes; give both the same WNIDs")
    if classes is not None or train_per_class is not None:
        train = subset_index(
            train, classes=classes or len(train.classes), per_class=train_per_class,
            seed=split_seed,
        )  # fmt: skip
    if train.classes != val.classes or val_per_class is not None:
        val = subset_index(val, classes=train.classes, per_class=val_per_class, seed=split_seed)
    normalizer = fit_normalizer(train, spec, n=min(PIXEL_MEAN_IMAGES, len(train)), seed=split_seed)
    stream = ImageStream(
        train, recipe=spec, batch_size=batch_size, seed=seed, device=device,
        normalizer=normalizer, decode=decode, workers=workers, channels_last=channels_last,
    )  # fmt: skip
    described = train.describe()
    record = {
        "name": "imagenet", "source": described["source"], "source_format": train.layout,
        "checksum": train.checksum, "train_images": len(train), "val_images": len(val),
        "classes": len(train.classes), "recipe": spec.name, "train_augment": spec.train,
        "decode": decode, **normalizer.describe(),
    }  # fmt: skip
    return StreamData(train=stream, val=val, recipe=spec, normalizer=normalizer, record=record)
