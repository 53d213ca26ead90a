"""Training and evaluation batches decoded on the fly from an `ImageIndex` (docs/imagenet.md).
Batch `i` is a function of (seed, i): a run resumed at iteration k sees the uninterrupted
stream's batches. Workers decode on the CPU ("cpu"), or read bytes for one batched decode on
the device ("gpu": nvJPEG on CUDA); both draw the same crops from the same seeds."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ablations import gpu
from ablations.cluster import distributed
from ablations.data.arrays import DataError
from ablations.data.image_index import ImageIndex
from ablations.data.loader import Normalizer, Views, generator, mix, share, to_device
from ablations.imagenet import augment
from ablations.imagenet.augment import Recipe, lighting, train_sample
from ablations.imagenet.prefetch import prefetched
from ablations.results import provenance

Decode = Literal["cpu", "gpu"]
_ORDER, _AUGMENT, _LIGHT = 1, 2, 3  # independent random streams derived from one seed
_VIEWS = {
    "center": augment.eval_center,
    "ten-crop": augment.ten_crop,
    "multi-scale": augment.multi_scale,
}
_JPEG_MAGIC = b"\xff\xd8"
# A JPEG's start-of-frame markers (baseline, progressive, lossless, arithmetic): FFC0-FFCF less
# DHT (C4), JPG (C8) and DAC (CC), which share the range.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # markers without a length: TEM, RST0-7
# torchvision 0.29 deprecates its decoders in favour of torchcodec, warning on every call (once per
# image, in every worker); they still work.
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision",
    category=DeprecationWarning,
)  # fmt: skip


def decode(raw: bytes) -> Tensor:
    """uint8 RGB CHW: JPEGs by torchvision's decoder, anything else by PIL."""
    if raw[:2] == _JPEG_MAGIC:
        from torchvision.io import ImageReadMode, decode_jpeg  # on first use: seconds to import

        data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        return decode_jpeg(data, mode=ImageReadMode.RGB)
    with Image.open(io.BytesIO(raw)) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def jpeg_components(raw: bytes) -> int | None:
    """The component count of a JPEG's frame (1 grey, 3 colour, 4 CMYK or YCCK), read from its
    start-of-frame segment: length (2 bytes), precision (1), height (2), width (2), components
    (1). None for bytes that are no JPEG or hold no frame before the first scan."""
    if raw[:2] != _JPEG_MAGIC:
        return None
    at = 2
    while at + 1 < len(raw) and raw[at] == 0xFF:
        marker = raw[at + 1]
        if marker == 0xFF:  # a fill byte before the marker
            at += 1
        elif marker in _SOF:
            return raw[at + 9] if at + 9 < len(raw) else None
        elif marker in (0xD9, 0xDA):  # end of image, start of scan: a frame comes before both
            return None
        elif marker in _STANDALONE:
            at += 2
        else:
            at += 2 + int.from_bytes(raw[at + 2 : at + 4], "big")
    return None


def decode_batch(raws: list[bytes], *, device: torch.device) -> list[Tensor]:
    """Images decoded on `device`: the JPEGs nvJPEG takes (1 or 3 components) in one
    `_decode_jpegs` call, whose errors are the run's. The rest (CMYK JPEGs, which nvJPEG refuses
    and ImageNet's train split holds a few of; other formats) are decoded on the CPU, as the
    "cpu" path decodes them, and copied over without a host sync."""
    batched = [i for i, r in enumerate(raws) if jpeg_components(r) in (1, 3)]
    decoded: dict[int, Tensor] = {}
    if batched:
        decoded = dict(zip(batched, _decode_jpegs([raws[i] for i in batched], device), strict=True))
    return [
        decoded[i] if i in decoded else to_device(decode(r), device) for i, r in enumerate(raws)
    ]


def _decode_jpegs(raws: list[bytes], device: torch.device) -> list[Tensor]:
    """JPEGs decoded on `device`: on CUDA in one batched nvJPEG call, on a stream of its own.
    torchvision allocates the outputs on the current stream but nvJPEG writes them on a private
    one that does not wait for it: a freed block could be written while a queued kernel still
    reads it (pytorch/vision#9606). So the decode stream has no other work, and each output is
    marked as used by the current stream. Each run at once (a stream of its own, see
    ablations.gpu.streams) has its decode stream, so no run's decodes queue behind another's."""
    if device.type != "cuda":
        return [decode(r).to(device) for r in raws]
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(r), dtype=torch.uint8) for r in raws]
    current = torch.cuda.current_stream(device)
    stream = gpu.stream(device, f"decode for stream {current.cuda_stream}")
    with torch.cuda.stream(stream):
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    current.wait_stream(stream)
    for image in images:
        image.record_stream(current)
    return images


class _Samples(Dataset[Any]):
    """Items are (index, sample seed) pairs, given as the image's bytes (mode "bytes"), its
    training crop ("train") or the views of a test protocol (its name, in `_VIEWS`)."""

    def __init__(self, index: ImageIndex, recipe: Recipe, *, mode: str) -> None:
        self.read, self.labels = index.reader, index.labels  # numpy only: see `reader`
        self.recipe, self.mode = recipe, mode

    def __getitem__(self, item: tuple[int, int]) -> tuple[Any, int]:
        i, seed = item
        raw, label = self.read(i), int(self.labels[i])
        if self.mode == "bytes":
            return raw, label
        if self.mode in _VIEWS:
            return _VIEWS[self.mode](decode(raw), self.recipe), label
        return train_sample(decode(raw), self.recipe, g=generator(seed)), label


def _collate(batch: list[tuple[Any, int]]) -> tuple[Any, Tensor]:
    images, labels = zip(*batch, strict=True)
    y = torch.tensor(labels, dtype=torch.int64)
    if isinstance(images[0], bytes | list):  # gpu decode's bytes; multi-scale's views per image
        return list(images), y
    return torch.stack(images), y


def _loader(
    samples: _Samples, batches: Any, *, workers: int | None, pin: bool = False
) -> DataLoader[Any]:
    """`batches` of (index, sample seed) pairs, read by `workers` (None: one per core). Each
    worker has 2 batches queued (PyTorch's default): `prefetched` reads one more ahead, and every
    queued batch is held in pinned memory (a 256-image training batch, 38.5 MB, takes a cached
    64 MiB pinned block), for each run at once."""
    n_workers = provenance.available_cores() if workers is None else workers
    return DataLoader(
        samples,
        batch_sampler=batches,
        collate_fn=_collate,
        num_workers=n_workers,
        pin_memory=pin,
        prefetch_factor=2 if n_workers > 0 else None,
    )


def _by_shape(images: list[list[Tensor]], y: Tensor) -> Iterator[tuple[list[Tensor], Tensor]]:
    """Multi-scale batches: the images whose views have equal shapes (most photos share a few
    sizes) stacked image-major, one tensor per scale, with their labels."""
    groups: dict[tuple[torch.Size, ...], list[int]] = {}
    for i, views in enumerate(images):
        groups.setdefault(tuple(v.shape for v in views), []).append(i)
    for members in groups.values():
        scales = zip(*(images[i] for i in members), strict=True)
        # A list index would be copied to y's device with a host sync: a tensor goes over first.
        rows = to_device(torch.tensor(members), y.device)
        yield [torch.cat(views) for views in scales], y.index_select(0, rows)


@dataclass
class ImageStream:
    """The training batches of a run over `index`, on `device` (the `TrainStream` contract:
    `batches(start)` without end, `steps_per_epoch`, the last partial batch dropped)."""

    index: ImageIndex
    _: KW_ONLY
    recipe: Recipe
    batch_size: int
    seed: int
    device: torch.device
    normalizer: Normalizer
    decode: Decode = "cpu"
    workers: int | None = None  # None: one per core
    channels_last: bool = False

    def __post_init__(self) -> None:
        size, world, rank = self.batch_size, distributed.world_size(), distributed.rank()
        if not 0 < size <= len(self.index):
            raise DataError(f"batch size {size} must be in 1..{len(self.index)} images")
        if size % world:
            raise DataError(f"batch size {size} does not split over {world} processes")
        self.normalizer = self.normalizer.to(self.device)
        self.steps_per_epoch = len(self.index) // size
        # Under torchrun each rank reads and decodes only its contiguous slice of the global
        # batch (the slice `distributed.shard` would cut), with the same seeds per image.
        self.rows = slice(rank * size // world, (rank + 1) * size // world)

    def sample_seeds(self, start: int) -> Iterator[list[tuple[int, int]]]:
        """Batches of (image index, sample seed) from iteration `start` on. The epoch's order is
        a permutation seeded by (seed, epoch); a sample's seed mixes in its epoch position."""
        epoch, step = divmod(start, self.steps_per_epoch)
        while True:
            g = generator(self.seed, _ORDER, epoch)
            order = torch.randperm(len(self.index), generator=g).tolist()
            for s in range(step, self.steps_per_epoch):
                positions = range(s * self.batch_size, (s + 1) * self.batch_size)[self.rows]
                yield [(order[p], mix(self.seed, _AUGMENT, epoch, p)) for p in positions]
            epoch, step = epoch + 1, 0

    def batches(self, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches `start`, `start + 1`, ...: float, colour-noised and normalised, on the device
        (under torchrun, this rank's shard of each)."""
        on_device = self.decode == "gpu"  # workers read bytes, decoded and cropped here
        samples = _Samples(self.index, self.recipe, mode="bytes" if on_device else "train")
        # Pinned on CUDA, so the copies over need no host sync (bytes stay as they are).
        pin = self.device.type == "cuda"
        loader = _loader(samples, self.sample_seeds(start), workers=self.workers, pin=pin)
        seeds = self.sample_seeds(start)
        for iteration, (x, y) in enumerate(prefetched(loader, self.device), start=start):
            if on_device:
                pairs = zip(decode_batch(x, device=self.device), next(seeds), strict=True)
                x = torch.stack(
                    [train_sample(i, self.recipe, g=generator(s)) for i, (_, s) in pairs]
                )
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
    channels_last: bool = False,
    part: tuple[int, int] = (0, 1),
) -> Iterator[tuple[Views, Tensor]]:
    """Every image of share `part` (rank, world) once, in index order: "center" gives (B, 3, 224,
    224), "ten-crop" (B * 10, 3, 224, 224), image-major. "multi-scale" gives, per group of G
    images of one size among half of `batch_size` (about a 10-crop batch's pixels), a list of
    (G * 2, 3, H_s, W_s) per scale, less the per-channel mean: a per-pixel mean fits no size."""
    mine = share(len(index), part)
    step = max(1, batch_size // 2) if crops == "multi-scale" else batch_size
    sampler = [[(i, 0) for i in mine[lo : lo + step]] for lo in range(0, len(mine), step)]
    loader = _loader(
        _Samples(index, recipe, mode=crops), sampler, workers=workers, pin=device.type == "cuda"
    )
    norm = normalizer.to(device)
    channel_mean = norm.mean.mean(dim=(1, 2), keepdim=True)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for x, y in prefetched(loader, device):
        if crops != "multi-scale":
            yield norm(x.flatten(0, 1) if x.dim() == 5 else x).contiguous(memory_format=layout), y
            continue
        for views, labels in _by_shape(x, y):
            normed = ((v.float() / 255 - channel_mean) / norm.std for v in views)
            yield [v.contiguous(memory_format=layout) for v in normed], labels


def fit_normalizer(
    index: ImageIndex, recipe: Recipe, *, n: int, seed: int, workers: int | None = None
) -> Normalizer:
    """The paper's per-pixel mean of `n` training images drawn with `seed`, each resized and
    centre-cropped as for evaluation; summed batch by batch (10,000 crops are 1.5 GB)."""
    chosen = torch.randperm(len(index), generator=generator(seed, 4))[:n].tolist()
    sampler = [[(i, 0) for i in chosen[lo : lo + 64]] for lo in range(0, len(chosen), 64)]
    total = torch.zeros(3, recipe.crop, recipe.crop, dtype=torch.float64)
    for x, _ in _loader(_Samples(index, recipe, mode="center"), sampler, workers=workers):
        total += x.double().sum(dim=0)
    mean = total / (255 * len(chosen))
    return Normalizer(mean=mean.float(), std=torch.ones(3, 1, 1), kind="pixel-mean")
