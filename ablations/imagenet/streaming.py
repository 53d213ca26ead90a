"""Training and evaluation batches streamed from an `ImageIndex`: decoded on the fly, never held
in memory whole (ImageNet-size data; the in-memory `TrainStream` stays for CIFAR-size sets).

`ImageStream.batches(start)` yields (x, y) on the device, as `TrainStream` does, and batch `i` is
a pure function of (seed, i): the epoch's order is a permutation seeded by (seed, epoch), and each
sample's crop and flip come from a generator seeded by (seed, epoch, position in the epoch), so a
run resumed at iteration k skips to that position and sees the uninterrupted stream's batches.

Two decode paths (decoding.py), one contract:
- "cpu": DataLoader workers read, decode (`torchvision.io.decode_jpeg`, PIL for other formats)
  and crop each image; uint8 batches travel through pinned memory to the device.
- "gpu": workers only read bytes; the batch is decoded at once by `decode_jpeg(list, device=...)`
  (nvJPEG on CUDA) and cropped there. On a CPU device the same code decodes on the CPU, which is
  how the tests cover it.
Both paths draw the same crops from the same seeds (tested equal on the CPU); on CUDA, nvJPEG's
pixels differ slightly from libjpeg's, so the two paths' batches are close, not identical, while
each path alone is reproducible. Colour noise and normalisation run on the device in batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ablations.cluster import distributed
from ablations.data.arrays import DataError
from ablations.data.loader import Normalizer, Views, generator, mix, share
from ablations.imagenet.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Recipe,
    eval_center,
    lighting,
    multi_scale,
    ten_crop,
    train_sample,
)
from ablations.imagenet.decoding import decode, decode_batch
from ablations.imagenet.index import ImageIndex
from ablations.imagenet.prefetch import prefetched
from ablations.results import provenance

Decode = Literal["cpu", "gpu"]
_ORDER, _AUGMENT, _LIGHT = 1, 2, 3  # independent random streams derived from one seed


_VIEWS = {"center": eval_center, "ten-crop": ten_crop, "multi-scale": multi_scale}


class _Samples(Dataset[Any]):
    """Items are (index, sample seed) pairs, given as the image's bytes (mode "bytes"), its
    training crop ("train") or the views of an evaluation protocol (its name, in `_VIEWS`)."""

    def __init__(self, index: ImageIndex, recipe: Recipe, *, mode: str) -> None:
        self.read, self.labels = index.reader, index.labels  # numpy only: see `reader`
        self.recipe, self.mode = recipe, mode

    def __getitem__(self, item: tuple[int, int]) -> tuple[Any, int]:
        i, seed = item
        raw = self.read(i)
        label = int(self.labels[i])
        if self.mode == "bytes":
            return raw, label
        image = decode(raw)
        if self.mode in _VIEWS:
            return _VIEWS[self.mode](image, self.recipe), label
        return train_sample(image, self.recipe, g=generator(seed)), label


def _collate(batch: list[tuple[Any, int]]) -> tuple[Any, Tensor]:
    images, labels = zip(*batch, strict=True)
    y = torch.tensor(labels, dtype=torch.int64)
    if isinstance(images[0], bytes | list):  # gpu decode's bytes; multi-scale's views per image
        return list(images), y
    return torch.stack(images), y


def _by_shape(images: list[list[Tensor]], y: Tensor) -> Iterator[tuple[list[Tensor], Tensor]]:
    """Multi-scale batches: the images whose views have equal shapes (most photos share a few
    sizes) stacked image-major, one tensor per scale, with their labels."""
    groups: dict[tuple[torch.Size, ...], list[int]] = {}
    for i, views in enumerate(images):
        groups.setdefault(tuple(v.shape for v in views), []).append(i)
    for members in groups.values():
        scales = zip(*(images[i] for i in members), strict=True)
        yield [torch.cat(views) for views in scales], y[members]


class ImageStream:
    """The training batches of a run over `index`, on `device` (the `TrainStream` contract:
    `batches(start)` without end, `steps_per_epoch`, the last partial batch dropped)."""

    def __init__(
        self,
        index: ImageIndex,
        *,
        recipe: Recipe,
        batch_size: int,
        seed: int,
        device: torch.device,
        normalizer: Normalizer,
        decode: Decode = "cpu",
        workers: int | None = None,
        channels_last: bool = False,
    ) -> None:
        if not 0 < batch_size <= len(index):
            raise DataError(f"batch size {batch_size} must be in 1..{len(index)} images")
        self.index, self.recipe, self.seed = index, recipe, seed
        self.batch_size, self.device, self.decode = batch_size, device, decode
        self.workers = provenance.available_cores() if workers is None else workers
        self.normalizer = normalizer.to(device)
        self.channels_last = channels_last
        self.steps_per_epoch = len(index) // batch_size
        # Under torchrun each rank reads and decodes only its contiguous slice of the global
        # batch (the slice `distributed.shard` would cut), with the same seeds per image.
        world = distributed.world_size()
        if batch_size % world:
            raise DataError(f"batch size {batch_size} does not split over {world} processes")
        self.rows = slice(distributed.rank() * (batch_size // world),
                          (distributed.rank() + 1) * (batch_size // world))  # fmt: skip

    def order(self, epoch: int) -> Tensor:
        """The epoch's permutation: a pure function of (seed, epoch)."""
        return torch.randperm(len(self.index), generator=generator(self.seed, _ORDER, epoch))

    def sample_seeds(self, start: int) -> Iterator[list[tuple[int, int]]]:
        """Batches of (image index, sample seed) from iteration `start` on."""
        epoch, step = divmod(start, self.steps_per_epoch)
        while True:
            order = self.order(epoch).tolist()
            for s in range(step, self.steps_per_epoch):
                lo = s * self.batch_size
                yield [
                    (order[p], mix(self.seed, _AUGMENT, epoch, p))
                    for p in range(lo, lo + self.batch_size)
                ][self.rows]
            epoch, step = epoch + 1, 0

    def _loader(self, start: int) -> DataLoader[Any]:
        mode = "bytes" if self.decode == "gpu" else "train"
        return DataLoader(
            _Samples(self.index, self.recipe, mode=mode),
            batch_sampler=self.sample_seeds(start),
            collate_fn=_collate,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda" and mode == "train",
            persistent_workers=self.workers > 0,
            prefetch_factor=4 if self.workers > 0 else None,
        )

    def uint8_batches(self, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Augmented uint8 batches (before colour noise and normalisation) on the device."""
        seeds = self.sample_seeds(start)
        for raw, y in prefetched(self._loader(start), self.device):
            if self.decode == "gpu":
                images = decode_batch(raw, device=self.device)
                batch_seeds = [s for _, s in next(seeds)]
                raw = torch.stack(
                    [
                        train_sample(im, self.recipe, g=generator(s))
                        for im, s in zip(images, batch_seeds, strict=True)
                    ]
                )
            yield raw, y

    def batches(self, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches `start`, `start + 1`, ...: float, colour-noised and normalised, on the device
        (under torchrun, this rank's shard of each)."""
        for iteration, (x, y) in enumerate(self.uint8_batches(start), start=start):
            out = x.float() / 255
            out = lighting(out, std=self.recipe.lighting, g=generator(self.seed, _LIGHT, iteration),
                           rows=self.rows, batch=self.batch_size)  # fmt: skip
            out = (out - self.normalizer.mean) / self.normalizer.std
            if self.channels_last:
                out = out.contiguous(memory_format=torch.channels_last)
            yield out, y


def eval_batches(
    index: ImageIndex,
    *,
    recipe: Recipe,
    crops: str,
    batch_size: int,
    device: torch.device,
    normalizer: Normalizer,
    workers: int | None = None,
    part: tuple[int, int] = (0, 1),
) -> Iterator[tuple[Views, Tensor]]:
    """Every image of share `part` (rank, world; default: all) once, in index order: "center"
    gives (B, 3, 224, 224), "ten-crop" gives (B * 10, 3, 224, 224), image-major (the logits'
    views are averaged by `evaluation.view_average`), "multi-scale" a list of (G * 2, 3, H_s,
    W_s), one per scale, for each group of G images of one size among half of `batch_size`
    images (its largest forward then holds about a 10-crop batch's pixels: 2 x 640 x 853 per
    4:3 image against 10 x 224 x 224), normalised by the per-channel mean (a per-pixel mean is
    224 x 224: it fits no other size)."""
    n_workers = provenance.available_cores() if workers is None else workers
    mine = share(len(index), part)
    step = max(1, batch_size // 2) if crops == "multi-scale" else batch_size
    loader = DataLoader(
        _Samples(index, recipe, mode=crops),
        batch_sampler=[[(i, 0) for i in range(lo, min(lo + step, mine.stop))]
                       for lo in range(mine.start, mine.stop, step)],
        collate_fn=_collate,
        num_workers=n_workers,
        pin_memory=device.type == "cuda",
    )  # fmt: skip
    norm = normalizer.to(device)
    if crops == "multi-scale":
        mean = norm.mean.mean(dim=(1, 2), keepdim=True)
        for images, y in prefetched(loader, device):
            for views, labels in _by_shape(images, y):
                yield [(v.float() / 255 - mean) / norm.std for v in views], labels
        return
    for x, y in prefetched(loader, device):
        yield norm(x.flatten(0, 1) if x.dim() == 5 else x), y


def fit_normalizer(
    index: ImageIndex, recipe: Recipe, *, n: int, seed: int, workers: int | None = None
) -> Normalizer:
    """The recipe's normalisation: ImageNet's mean/std, or (the paper) the per-pixel mean of
    `n` training images drawn with `seed`, each resized and centre-cropped as for evaluation;
    decoded by workers and summed batch by batch (10,000 crops would be 1.5 GB held at once)."""
    if recipe.normalize == "fixed":
        return Normalizer.fixed(IMAGENET_MEAN, IMAGENET_STD)
    chosen = torch.randperm(len(index), generator=generator(seed, 4))[:n].tolist()
    loader = DataLoader(
        _Samples(index, recipe, mode="center"),
        batch_sampler=[[(i, 0) for i in chosen[lo : lo + 64]] for lo in range(0, len(chosen), 64)],
        collate_fn=_collate,
        num_workers=provenance.available_cores() if workers is None else workers,
    )
    total = torch.zeros(3, recipe.crop, recipe.crop, dtype=torch.float64)
    for x, _ in loader:
        total += x.double().sum(dim=0)
    mean = total / (255 * len(chosen))
    return Normalizer(mean=mean.float(), std=torch.ones(3, 1, 1), kind="pixel-mean")
