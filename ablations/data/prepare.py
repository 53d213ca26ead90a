"""A run's data, prepared once from its config by `prepare_data`, the one function every caller
asks (training, `ablate evaluate`, the speed measurements, the layer responses). Arrays become a
`Data`; a config that names a `stream` is streamed by ablations.imagenet.prepare, imported only
then. Either is a `RunData`, the trainer's view."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, overload

import torch
from torch import Tensor

from ablations.config import TrainConfig
from ablations.data.cache import ArrayDataset, load_dataset
from ablations.data.loader import (
    Normalizer,
    TrainStream,
    Views,
    eval_batches,
    pinned,
    random_subset,
    split_indices,
    to_nchw,
)
from ablations.registry import AblationsError

if TYPE_CHECKING:
    from ablations.imagenet.prepare import StreamData

# What the trainer sees of a run's data, in memory or streamed (see `Data`).
RunData: TypeAlias = "Data | StreamData"


@dataclass
class Data:
    """A run's data, split and prepared once: uint8 NCHW tensors and the normaliser. As a
    `StreamData`: training batches of (x, y) on the device, a pure function of (seed,
    iteration); the `splits` it evaluates on, crop protocols besides "center" evaluated once at
    the end (`final_crops`), whether runs record top-5 error, and evaluation batches of a split.
    A "ten-crop" batch holds 10 views per label, a "multi-scale" one a list of view tensors."""

    train: TrainStream
    val: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    normalizer: Normalizer
    record: dict[str, Any]
    in_channels: int
    num_classes: int
    splits: ClassVar[tuple[str, ...]] = ("val", "test")
    final_crops: ClassVar[tuple[str, ...]] = ()
    top5: ClassVar[bool] = False  # CIFAR-size sets: top-1 only, as the paper reports

    def eval_batches(
        self, split: str, *, crops: str = "center", batch_size: int, channels_last: bool = False,
        part: tuple[int, int] = (0, 1),
    ) -> Iterator[tuple[Views, Tensor]]:  # fmt: skip
        """Every image of `split` (of its share `part`: rank, world) once, in order, normalised
        (arrays have one view: `crops` is accepted for the common interface and must be
        "center")."""
        if crops != "center":
            raise AblationsError(f"in-memory data has no {crops!r} evaluation")
        x, y = self.val if split == "val" else self.test
        return eval_batches(
            x, y, batch_size=batch_size, device=self.train.device, normalizer=self.normalizer,
            channels_last=channels_last, part=part,
        )  # fmt: skip


@dataclass(frozen=True)
class _Split:
    """The seed-independent part of a run's data, which the runs of one set share."""

    train: tuple[Tensor, Tensor]
    val: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    normalizer: Normalizer


# The last split made, by the dataset's arrays (held, so that their ids stay theirs) and every
# config field the split reads: the runs of one `ablate run` differ by seed and net, not by
# data, and each would otherwise resize and refit the same images (a second per run at 16x16).
# Nothing writes into these tensors (batches are gathered copies).
_last_split: tuple[tuple[Any, ...], tuple[Any, ...], _Split] | None = None


def _split(config: TrainConfig, dataset: ArrayDataset, device: torch.device) -> _Split:
    """Split (fixed seed), subset, resize and fit the normaliser per the config. For a CUDA
    `device` the val and test splits are pinned: every evaluation copies them over batch by
    batch, and from pinned memory the copies are queued without a host sync. They stay on the
    host, though training images may be stored on the device: the pinned split is one, shared
    by the runs of a set (runs at once too), where each run would hold a device copy of its own
    (CIFAR's val and test splits are 15 and 30 MB)."""
    global _last_split
    arrays = (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    fields = (config.val_size, config.split_seed, config.train_size, config.input_size,
              config.test_size, config.normalize, *config.mean, None, *config.std,
              device.type)  # fmt: skip
    if _last_split is not None:
        held, known, split = _last_split
        if known == fields and all(a is b for a, b in zip(held, arrays, strict=True)):
            return split
    seed, size = config.split_seed, config.input_size
    train_idx, val_idx = split_indices(len(dataset.x_train), val_size=config.val_size, seed=seed)
    train_idx = train_idx[: config.train_size]  # a train_size of None keeps them all
    test_idx = random_subset(len(dataset.x_test), config.test_size, seed=seed)
    x_train = to_nchw(dataset.x_train[train_idx], size=size)
    if config.normalize != "fixed":
        normalizer = Normalizer.fit(x_train, kind=config.normalize)
    elif len(config.mean) != x_train.shape[1]:
        raise AblationsError(
            f"normalize mean/std have {len(config.mean)} values but the images have "
            f"{x_train.shape[1]} channels; give one per channel"
        )
    else:
        normalizer = Normalizer.fixed(config.mean, config.std)
    y_train, y_test = torch.from_numpy(dataset.y_train), torch.from_numpy(dataset.y_test)
    split = _Split(
        train=(x_train, y_train[train_idx]),
        val=(
            pinned(to_nchw(dataset.x_train[val_idx], size=size), device),
            pinned(y_train[val_idx], device),
        ),
        test=(
            pinned(to_nchw(dataset.x_test[test_idx], size=size), device),
            pinned(y_test[test_idx], device),
        ),
        normalizer=normalizer,
    )
    _last_split = arrays, fields, split
    return split


@overload
def prepare_data(config: TrainConfig, source: ArrayDataset, device: torch.device) -> Data: ...


@overload
def prepare_data(
    config: TrainConfig, source: str | PathLike[str] | None, device: torch.device
) -> RunData: ...


def prepare_data(
    config: TrainConfig, source: ArrayDataset | str | PathLike[str] | None, device: torch.device
) -> RunData:
    """`config`'s data on `device`: streamed when the config names a `stream`, else decoded
    into arrays. `source` is where the data lives (--data; None: the dataset's usual place), or
    the dataset already decoded (callers that prepare several configs of one dataset decode it
    once; a streamed run reads its files and takes no arrays)."""
    if isinstance(source, ArrayDataset):
        if config.stream is not None:
            raise AblationsError(
                f"a streamed {config.dataset} run reads its image files: pass where they are, "
                "not decoded arrays"
            )
        return _prepare_arrays(config, source, device)
    if config.stream is not None:
        from ablations.imagenet.prepare import prepare_stream_run  # only for streamed runs

        return prepare_stream_run(config, data=source, device=device)
    dataset = load_dataset(config.dataset, data=source, resize=config.resize, crop=config.crop)
    return _prepare_arrays(config, dataset, device)


def _prepare_arrays(config: TrainConfig, dataset: ArrayDataset, device: torch.device) -> Data:
    split = _split(config, dataset, device)
    (x_train, y_train), normalizer = split.train, split.normalizer
    pad = round(4 * x_train.shape[-1] / 32) if config.augment else 0
    stream = TrainStream(
        x_train, y_train, batch_size=config.batch_size, seed=config.seed, device=device,
        normalizer=normalizer, augment_pad=pad, storage=config.storage,
        workers=config.workers or 0, channels_last=config.channels_last,
    )  # fmt: skip
    record = {
        **dataset.describe(),
        "train_images": len(x_train), "val_images": len(split.val[0]),
        "test_images": len(split.test[0]),
        "input_size": x_train.shape[-1], "native_size": dataset.x_train.shape[1],
        "augment_pad": pad, **normalizer.describe(),
    }  # fmt: skip
    return Data(
        train=stream, val=split.val, test=split.test, normalizer=normalizer, record=record,
        in_channels=x_train.shape[1], num_classes=len(dataset.classes),
    )  # fmt: skip
