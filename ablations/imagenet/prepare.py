"""A run's streamed data (ImageNet-size), the counterpart of the arrays in
ablations.data.prepare, whose `prepare_data` comes here for a config that names a `stream`: the
train index as an `ImageStream`, the val index for evaluation with the recipe's crops, the
normaliser, and the record that results keep (source by name, layout, listing checksum)."""

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

from ablations.config import EVAL_CROPS, TrainConfig
from ablations.data.arrays import DataError
from ablations.data.cache import CACHE_VERSION, default_cache_dir
from ablations.data.image_index import ImageIndex, subset_index
from ablations.data.loader import Normalizer, Views
from ablations.imagenet import augment, decoding, streaming
from ablations.imagenet.augment import RECIPES, Recipe
from ablations.imagenet.index import build_indexes
from ablations.imagenet.streaming import Decode, ImageStream, eval_batches, fit_normalizer
from ablations.io import write_binary
from ablations.results import provenance

PIXEL_MEAN_IMAGES = 10_000  # training images averaged for the paper's per-pixel mean


@dataclass
class StreamData:
    """The train stream, the val index (ImageNet's 50k val images: what the paper reports on and
    watches for the plateau), and how to evaluate on it."""

    train: ImageStream
    val: ImageIndex
    recipe: Recipe
    normalizer: Normalizer
    record: dict[str, Any]
    in_channels: int = 3
    workers: int | None = None  # evaluation's DataLoader workers (None: one per core)
    # The trainer's view (ablations.data.prepare.RunData): ImageNet's labelled held-out images
    # are its val split, so runs evaluate there, with top-5 beside top-1.
    splits: ClassVar[tuple[str, ...]] = ("val",)
    top5: ClassVar[bool] = True

    @property
    def num_classes(self) -> int:
        return len(self.train.index.classes)

    @property
    def final_crops(self) -> tuple[str, ...]:
        return tuple(c for c in self.recipe.eval_crops if c != "center")

    def eval_batches(
        self, split: str = "val", *, crops: str = "center", batch_size: int,
        workers: int | None = None, channels_last: bool = False, part: tuple[int, int] = (0, 1),
    ) -> Iterator[tuple[Views, Tensor]]:  # fmt: skip
        """Val batches (of share `part`: rank, world) of any crop protocol (shapes as
        `streaming.eval_batches` gives them), not only the recipe's own (`final_crops`, what a run
        evaluates at its end): `ablate evaluate --crops` tests a run's weights with the others."""
        if split != "val":
            raise DataError(f"streamed data evaluates on its val split, not {split!r}")
        if crops not in EVAL_CROPS:
            raise DataError(f"unknown crops {crops!r}; choose from {', '.join(EVAL_CROPS)}")
        batches = eval_batches(
            self.val, recipe=self.recipe, crops=crops, batch_size=batch_size,
            device=self.train.device, normalizer=self.normalizer,
            workers=self.workers if workers is None else workers, part=part,
        )  # fmt: skip
        if not channels_last:
            return batches
        return ((_channels_last(x), y) for x, y in batches)


def _channels_last(x: Views) -> Views:
    if isinstance(x, list):
        return [v.contiguous(memory_format=torch.channels_last) for v in x]
    return x.contiguous(memory_format=torch.channels_last)


def prepare_stream_run(
    config: TrainConfig, *, data: str | os.PathLike[str] | None, device: torch.device
) -> StreamData:
    """A streamed run's data, as its config says (reached through
    ablations.data.prepare.prepare_data, which every caller asks): the index (cached), the
    subset (`classes` and per-class caps, drawn with `split_seed`), the recipe's normaliser,
    and the stream."""
    recipe = str(config.stream)
    if recipe not in RECIPES:
        raise DataError(f"unknown ImageNet recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    spec = scaled(RECIPES[recipe], config.input_size)
    train, val = build_indexes(("train", "val"), _tree(config, data))
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
    workers = _workers(config)
    decode: Decode = "gpu" if config.decode == "gpu" else "cpu"
    normalizer = pixel_mean_normalizer(train, spec, seed=seed, workers=workers)
    stream = ImageStream(
        train, recipe=spec, batch_size=config.batch_size, seed=config.seed, device=device,
        normalizer=normalizer, decode=decode, workers=workers, channels_last=config.channels_last,
    )  # fmt: skip
    described = train.describe()
    record = {
        "name": config.dataset, "source": described["source"], "source_format": train.layout,
        "checksum": train.checksum, "train_images": len(train), "val_images": len(val),
        "classes": len(train.classes), "recipe": spec.name, "train_augment": spec.train,
        "decode": decode, "input_size": spec.crop, **normalizer.describe(),
    }  # fmt: skip
    return StreamData(train=stream, val=val, recipe=spec, normalizer=normalizer, record=record,
                      workers=workers)  # fmt: skip


def pixel_mean_normalizer(
    train: ImageIndex, recipe: Recipe, *, seed: int, workers: int | None,
    cache_dir: Path | None = None,
) -> Normalizer:  # fmt: skip
    """`fit_normalizer` over PIXEL_MEAN_IMAGES training images, decoded once per (training
    listing, recipe, seed, decoding code): every run of a profile and every resume of a run
    averages the same crops, so the mean is kept under the data cache (pixel-means/<key>.npy);
    a file that does not load as the expected shape is rebuilt, never trusted."""
    n = min(PIXEL_MEAN_IMAGES, len(train))
    if recipe.normalize == "fixed":  # nothing decoded
        return fit_normalizer(train, recipe, n=n, seed=seed, workers=workers)
    spec = [CACHE_VERSION, train.checksum, asdict(recipe), n, seed,
            provenance.source_hash(streaming, decoding, augment)]  # fmt: skip
    key = hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]
    path = (cache_dir or default_cache_dir()) / "pixel-means" / f"{key}.npy"
    mean = _cached_mean(path, shape=(3, recipe.crop, recipe.crop))
    if mean is not None:
        return Normalizer(mean=mean, std=torch.ones(3, 1, 1), kind="pixel-mean")
    normalizer = fit_normalizer(train, recipe, n=n, seed=seed, workers=workers)
    write_binary(path, lambda handle: np.save(handle, normalizer.mean.numpy()))
    return normalizer


def _cached_mean(path: Path, *, shape: tuple[int, ...]) -> Tensor | None:
    if not path.exists():
        return None
    try:
        mean = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        warnings.warn(f"rebuilding the pixel mean {path.name}: {e}", stacklevel=3)
        return None
    if mean.shape != shape or mean.dtype != np.float32 or not np.isfinite(mean).all():
        warnings.warn(f"rebuilding the pixel mean {path.name}: not a finite {shape}", stacklevel=3)
        return None
    return torch.from_numpy(mean)


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


def _tree(
    config: TrainConfig, data: str | os.PathLike[str] | None
) -> str | os.PathLike[str] | None:
    """ImageNet falls back to $ABLATE_DATA_IMAGENET (in `build_index`); another ImageFolder tree
    to --data, else $ABLATE_DATA."""
    if config.dataset == "imagenet" or data is not None:
        return data
    if os.environ.get("ABLATE_DATA"):
        return os.environ["ABLATE_DATA"]
    raise DataError(f"a streamed {config.dataset} run reads a tree with train/ and val/ class "
                    "folders: pass --data DIR (or set ABLATE_DATA)")  # fmt: skip


def _workers(config: TrainConfig) -> int:
    """The config's loader workers; None: this process's share of the available cores (the
    ranks torchrun starts on one node share them)."""
    if config.workers is not None:
        return config.workers
    return max(1, provenance.available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
