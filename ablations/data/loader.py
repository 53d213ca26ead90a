"""Batches for training and evaluation, built from uint8 arrays. Batch `i` of a run is a pure
function of (seed, i), so a resumed run sees exactly the batches an uninterrupted one would and
no RNG state is saved. Augmentation as the paper: zero-pad, random crop of the input size,
random horizontal flip; in batch on the device, uint8 until the last step."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import KW_ONLY, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from ablations.cluster.distributed import shard
from ablations.data.arrays import DataError

# An evaluation batch's input: a tensor of equal-sized views (B or B * V images), or a list of
# such tensors of several sizes for the same labels (multi-scale testing). Evaluation
# (ablations.train.evaluation) averages the logits of every view of an image.
Views = Tensor | list[Tensor]
# Independent random streams derived from one seed.
_ORDER, _AUGMENT = 1, 2


def split_indices(n: int, *, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random (train, val) split of range(n). Both parts are in random order, so their
    prefixes are random subsets (files are often sorted by class)."""
    if not 0 <= val_size < n:
        raise DataError(f"val_size must be in [0, {n}) for a training set of {n}; got {val_size}")
    order = np.random.default_rng(seed).permutation(n)
    return order[val_size:], order[:val_size]


def random_subset(n: int, size: int | None, *, seed: int) -> np.ndarray:
    """`size` sorted indices of range(n) drawn with `seed`; all of them for None."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:size])


def to_nchw(images: np.ndarray, *, size: int | None = None) -> Tensor:
    """uint8 NHWC array -> uint8 NCHW tensor, resized when `size` differs: by area averaging
    when shrinking (no aliasing), bilinearly when enlarging (as torchvision's Resize)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    if size is None or size == x.shape[-1]:
        return x
    mode = "area" if size < x.shape[-1] else "bilinear"
    align = False if mode == "bilinear" else None
    out = []
    for chunk in x.split(4096):  # chunk by chunk: bounds the float copy of a large split
        resized = F.interpolate(chunk.float(), size=(size, size), mode=mode, align_corners=align)
        out.append(resized.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


@dataclass(frozen=True)
class Normalizer:
    """x/255 minus the training split's mean (per pixel, as the paper, or per channel), divided
    by the per-channel std for "channel"."""

    mean: Tensor  # (C, H, W) or (C, 1, 1), in [0, 1] units
    std: Tensor  # (C, 1, 1); ones for "pixel-mean"
    kind: str

    @classmethod
    def fixed(cls, mean: Sequence[float], std: Sequence[float]) -> Normalizer:
        """Given per-channel constants, as tutorials write them (e.g. ImageNet's)."""
        return cls(
            mean=torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1),
            std=torch.tensor(std, dtype=torch.float32).view(-1, 1, 1),
            kind="fixed",
        )

    @classmethod
    def fit(cls, x: Tensor, *, kind: str) -> Normalizer:
        scaled = x.double() / 255
        if kind == "pixel-mean":
            mean = scaled.mean(dim=0)
            std = torch.ones(x.shape[1], 1, 1, dtype=torch.float64)
        elif kind == "channel":
            mean = scaled.mean(dim=(0, 2, 3)).view(-1, 1, 1)
            std = scaled.std(dim=(0, 2, 3)).view(-1, 1, 1)
        else:
            raise DataError(f"unknown normalisation {kind!r}; choose pixel-mean or channel")
        return cls(mean=mean.float(), std=std.float(), kind=kind)

    def to(self, device: torch.device) -> Normalizer:
        return Normalizer(mean=self.mean.to(device), std=self.std.to(device), kind=self.kind)

    def __call__(self, x: Tensor) -> Tensor:
        return (x.float() / 255 - self.mean) / self.std

    def describe(self) -> dict[str, object]:
        channel_mean = self.mean.mean(dim=(1, 2)) if self.mean.dim() == 3 else self.mean
        return {
            "normalize": self.kind,
            "mean": [round(float(v), 4) for v in channel_mean.flatten()],
            "std": [round(float(v), 4) for v in self.std.flatten()],
        }


def mix(*seeds: int) -> int:
    """A fixed, collision-poor mix of small non-negative integers into one seed."""
    mixed = 0
    for s in seeds:
        mixed = (mixed * 1_000_003 + s) % (2**63 - 1)
    return mixed


def generator(*seeds: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(mix(*seeds))


def augment(x: Tensor, *, pad: int, generator: torch.Generator) -> Tensor:
    """Random crop after zero padding, and random horizontal flip, of a uint8 batch."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    shifts = torch.randint(0, 2 * pad + 1, (2, b), generator=generator, device=x.device)
    rows = (shifts[0].view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (shifts[1].view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    flip = torch.rand(b, generator=generator, device=x.device) < 0.5
    cols = torch.where(flip.view(b, 1, 1, 1), cols.flip(-1), cols)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    channel = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows, cols]


@dataclass(eq=False)  # eq=False: tensors have no single truth value
class TrainStream:
    """The training batches of a run, on `device`, stored there whole (small datasets) or
    streamed from host memory through a DataLoader (`workers` > 0 or host storage)."""

    images: Tensor
    labels: Tensor
    _: KW_ONLY
    batch_size: int
    seed: int
    device: torch.device
    normalizer: Normalizer
    augment_pad: int
    storage: str = "device"
    workers: int = 0
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.batch_size > len(self.images):
            raise DataError(
                f"batch size {self.batch_size} exceeds the {len(self.images)} training images"
            )
        self.normalizer = self.normalizer.to(self.device)
        where = self.device if self.storage == "device" else torch.device("cpu")
        self.images, self.labels = self.images.to(where), self.labels.to(where)
        self.steps_per_epoch = len(self.images) // self.batch_size  # the last partial one dropped

    def order(self, epoch: int) -> Tensor:
        """The epoch's permutation of the training images (on CPU: cheap, and device-agnostic
        so that both storage paths see the same order)."""
        return torch.randperm(len(self.images), generator=generator(self.seed, _ORDER, epoch))

    def batches(self, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches `start`, `start + 1`, ... without end, augmented (seeded by the iteration)
        and normalised: under torchrun, this rank's shard of each global batch (augmented whole
        first, so the images are one process's)."""
        on_device = self.storage == "device"
        indices = self._index_batches(start, self.device if on_device else torch.device("cpu"))
        if on_device:
            source: Iterable[tuple[Tensor, Tensor]] = (
                (self.images[idx], self.labels[idx]) for idx in indices
            )
        else:  # each index batch gathered whole: TensorDataset indexes its tensors with it
            source = DataLoader(
                TensorDataset(self.images, self.labels),
                sampler=indices,
                batch_size=None,
                num_workers=self.workers,
                pin_memory=self.device.type == "cuda",
            )
        for iteration, (x, y) in enumerate(source, start=start):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self.augment_pad:
                g = generator(self.seed, _AUGMENT, iteration, device=self.device)
                x = augment(x, pad=self.augment_pad, generator=g)
            out = self.normalizer(x)
            if self.channels_last:
                out = out.contiguous(memory_format=torch.channels_last)
            yield shard(out, y)

    def _index_batches(self, start: int, where: torch.device) -> Iterator[Tensor]:
        """Index batches from iteration `start` on; each epoch's order is moved to `where` once,
        so the hot loop slices it there without a host-to-device copy per step."""
        epoch, step = divmod(start, self.steps_per_epoch)
        while True:
            order = self.order(epoch)
            # From pinned memory, non-blocking: a copy from pageable memory would synchronise.
            order = (
                order.pin_memory().to(where, non_blocking=True) if where.type == "cuda" else order
            )
            for s in range(step, self.steps_per_epoch):
                yield order[s * self.batch_size : (s + 1) * self.batch_size]
            epoch, step = epoch + 1, 0


def pinned(x: Tensor, device: torch.device) -> Tensor:
    """`x` in pinned memory when it is bound for a CUDA `device`, else as it is. A copy from
    pageable memory to the GPU may wait for it (a host sync); one from pinned memory is queued."""
    if device.type != "cuda" or x.is_pinned():
        return x
    return x.pin_memory()


def to_device(x: Tensor, device: torch.device) -> Tensor:
    """`x`, a CPU tensor, on `device`; to CUDA through pinned memory, queued on the current
    stream without a host sync."""
    if device.type != "cuda":
        return x.to(device)
    return pinned(x, device).to(device, non_blocking=True)


def share(n: int, part: tuple[int, int]) -> range:
    """Share `rank` of `world` of n images, contiguous; together the shares cover each once."""
    rank, world = part
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world}")
    return range(rank * n // world, (rank + 1) * n // world)


def eval_batches(
    images: Tensor,
    labels: Tensor,
    *,
    batch_size: int,
    device: torch.device,
    normalizer: Normalizer,
    channels_last: bool = False,
    part: tuple[int, int] = (0, 1),
) -> Iterator[tuple[Tensor, Tensor]]:
    """Every image of share `part` (rank, world) once, in order, without augmentation. Batches
    go to CUDA from pinned memory, queued without a host sync: a run's splits are pinned when
    they are prepared; other callers' batches are pinned one by one (a whole split pinned per
    call would leave a cached pinned block of its size, rounded up to a power of two)."""
    norm = normalizer.to(device)
    mine = share(len(images), part)
    images, labels = images[mine.start : mine.stop], labels[mine.start : mine.stop]
    for i in range(0, len(images), batch_size):
        x = norm(to_device(images[i : i + batch_size], device))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, to_device(labels[i : i + batch_size], device)
