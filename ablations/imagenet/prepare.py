"""A streamed run's data (`StreamData`), which ablations.data.prepare.prepare_data returns for a
config that names a `stream`: the train stream, the val index, and the record results keep."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ablations.config import TrainConfig
from ablations.data.arrays import DataError
from ablations.data.cache import CACHE_VERSION, default_cache_dir
from ablations.data.image_index import ImageIndex, subset_index
from ablations.data.loader import Normalizer, Views
from ablations.imagenet import augment, streaming
from ablations.imagenet.augment import IMAGENET_MEAN, IMAGENET_STD, RECIPES, Recipe
from ablations.imagenet.index import build_indexes
from ablations.imagenet.streaming import Decode, ImageStream, eval_batches, fit_normalizer
from ablations.io import write_binary
from ablations.results import provenance

PIXEL_MEAN_IMAGES = 10_000  # training images averaged for the paper's per-pixel mean


@dataclass
class StreamData:
    """A streamed run's data, as the trainer sees it (ablations.data.prepare.RunData): the train
    stream, and the val index, ImageNet's labelled held-out images, with top-5 beside top-1."""

    train: ImageStream
    val: ImageIndex
    record: dict[str, Any]
    in_channels: ClassVar[int] = 3
    splits: ClassVar[tuple[str, ...]] = ("val",)
    top5: ClassVar[bool] = True

    @property
    def num_classes(self) -> int:
        return len(self.train.index.classes)

    @property
    def final_crops(self) -> tuple[str, ...]:
        return tuple(c for c in self.train.recipe.eval_crops if c != "center")

    def eval_batches(
        self, split: str = "val", *, crops: str = "center", batch_size: int,
        channels_last: bool = False, part: tuple[int, int] = (0, 1),
    ) -> Iterator[tuple[Views, Tensor]]:  # fmt: skip
        """Val batches of any test protocol, not only the recipe's (`ablate evaluate --crops`)."""
        if split != "val":
            raise DataError(f"streamed data evaluates on its val split, not {split!r}")
        stream = self.train
        return eval_batches(
            self.val, recipe=stream.recipe, crops=crops, batch_size=batch_size,
            device=stream.device, normalizer=stream.normalizer, workers=stream.workers,
            channels_last=channels_last, part=part,
        )  # fmt: skip


def prepare_stream_run(
    config: TrainConfig, *, data: str | os.PathLike[str] | None, device: torch.device
) -> StreamData:
    """A streamed run's data, as its config says: the indexes (cached), the class subset and
    per-class caps (drawn with `split_seed`), the recipe's normaliser, and the stream."""
    recipe = scaled(RECIPES[str(config.stream)], config.input_size)
    if data is None and config.dataset != "imagenet":  # ImageNet falls back to its own variable
        data = os.environ.get("ABLATE_DATA")
        if not data:
            raise DataError(f"a streamed {config.dataset} run reads a tree with train/ and val/ "
                            "class folders: pass --data DIR (or set ABLATE_DATA)")  # fmt: skip
    train, val = build_indexes(("train", "val"), data)
    if val.classes != train.classes:
        raise DataError("train/ and val/ name different classes; give both the same WNIDs")
    seed = config.split_seed
    if config.classes is not None or config.train_per_class is not None:
        train = subset_index(
            train, classes=config.classes or len(train.classes),
            per_class=config.train_per_class, seed=seed,
        )  # fmt: skip
    if train.classes != val.classes or config.val_per_class is not None:
        val = subset_index(val, classes=train.classes, per_class=config.val_per_class, seed=seed)
    workers = config.workers
    if workers is None:  # this process's share of the cores: torchrun's ranks on a node share them
        workers = max(1, provenance.available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    decode: Decode = "gpu" if config.decode == "gpu" else "cpu"
    normalizer = pixel_mean_normalizer(train, recipe, seed=seed, workers=workers)
    stream = ImageStream(
        train, recipe=recipe, batch_size=config.batch_size, seed=config.seed, device=device,
        normalizer=normalizer, decode=decode, workers=workers, channels_last=config.channels_last,
    )  # fmt: skip
    record = {
        "name": config.dataset, "source": train.describe()["source"], "source_format": train.layout,
        "checksum": train.checksum, "train_images": len(train), "val_images": len(val),
        "classes": len(train.classes), "recipe": recipe.name, "train_augment": recipe.train,
        "decode": decode, "input_size": recipe.crop, **normalizer.describe(),
    }  # fmt: skip
    return StreamData(train=stream, val=val, record=record)


def pixel_mean_normalizer(
    train: ImageIndex, recipe: Recipe, *, seed: int, workers: int | None,
    cache_dir: Path | None = None,
) -> Normalizer:  # fmt: skip
    """The recipe's normaliser: ImageNet's mean/std, or the paper's per-pixel mean of
    PIXEL_MEAN_IMAGES training crops. Every run of a profile and every resume averages the same
    crops, so that mean is decoded once per (training listing, recipe, seed, decoding code) and
    kept under the data cache (pixel-means/<key>.npy)."""
    if recipe.normalize == "fixed":
        return Normalizer.fixed(IMAGENET_MEAN, IMAGENET_STD)
    n = min(PIXEL_MEAN_IMAGES, len(train))
    spec = [CACHE_VERSION, train.checksum, asdict(recipe), n, seed,
            provenance.source_hash(streaming, augment)]  # fmt: skip
    key = hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]
    path = (cache_dir or default_cache_dir()) / "pixel-means" / f"{key}.npy"
    if path.exists():  # a file that is not the finite float32 mean expected is never trusted
        shape = (3, recipe.crop, recipe.crop)
        try:
            mean = np.load(path, allow_pickle=False)
            if mean.shape != shape or mean.dtype != np.float32 or not np.isfinite(mean).all():
                raise ValueError(f"not a finite {shape}")
            return Normalizer(
                mean=torch.from_numpy(mean), std=torch.ones(3, 1, 1), kind="pixel-mean"
            )
        except (OSError, ValueError) as e:
            warnings.warn(f"rebuilding the pixel mean {path.name}: {e}", stacklevel=2)
    normalizer = fit_normalizer(train, recipe, n=n, seed=seed, workers=workers)
    write_binary(path, lambda handle: np.save(handle, normalizer.mean.numpy()))
    return normalizer


def scaled(recipe: Recipe, size: int | None) -> Recipe:
    """`recipe` with its crop at `size` and every resize scaled by size/crop (smoke budgets:
    the geometry's shape at a fraction of the pixels); None or the crop itself: unchanged."""
    if size is None or size == recipe.crop:
        return recipe
    f = size / recipe.crop
    low, high = recipe.short_side
    return replace(
        recipe, name=f"{recipe.name}@{size}", crop=size, eval_resize=round(recipe.eval_resize * f),
        short_side=(max(size, round(low * f)), max(size, round(high * f))),
        multi_scale=tuple(round(s * f) for s in recipe.multi_scale),
    )  # fmt: skip
