"""A run's data, prepared once from a decoded dataset and its config: the fixed train/val split,
the training subset, the resize to the run's input size, the normaliser fitted on the training
split, and the device-resident (or DataLoader) training stream. Training, the speed comparison
and the layer-response measurement all prepare data here, so they see the same images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ablations.config import TrainConfig
from ablations.data.cache import ArrayDataset
from ablations.data.loader import Normalizer, TrainStream, random_subset, split_indices, to_nchw
from ablations.registry import AblationsError


@dataclass
class Data:
    """A run's data, split and prepared once: uint8 NCHW tensors and the normaliser."""

    train: TrainStream
    val: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    normalizer: Normalizer
    record: dict[str, Any]
    in_channels: int
    num_classes: int


def prepare_data(config: TrainConfig, dataset: ArrayDataset, device: torch.device) -> Data:
    """Split (fixed seed), subset, resize and normalise per the config."""
    train_idx, val_idx = split_indices(
        len(dataset.x_train), val_size=config.val_size, seed=config.split_seed
    )
    if config.train_size is not None:
        train_idx = train_idx[: config.train_size]
    size = config.input_size
    x_train = to_nchw(dataset.x_train[train_idx], size=size)
    x_val = to_nchw(dataset.x_train[val_idx], size=size)
    test_idx = random_subset(len(dataset.x_test), config.test_size, seed=config.split_seed)
    x_test = to_nchw(dataset.x_test[test_idx], size=size)
    y = torch.from_numpy(dataset.y_train)
    y_test = torch.from_numpy(dataset.y_test[test_idx])
    normalizer = _normalizer(config, x_train)
    native = dataset.x_train.shape[1]
    pad = round(4 * x_train.shape[-1] / 32) if config.augment else 0
    stream = TrainStream(
        x_train, y[train_idx], batch_size=config.batch_size, seed=config.seed, device=device,
        normalizer=normalizer, augment_pad=pad, storage=config.storage, workers=config.workers,
        channels_last=config.channels_last,
    )  # fmt: skip
    record = {
        **dataset.describe(),
        "train_images": len(train_idx), "val_images": len(val_idx), "test_images": len(x_test),
        "input_size": x_train.shape[-1], "native_size": native, "augment_pad": pad,
        **normalizer.describe(),
    }  # fmt: skip
    return Data(
        train=stream, val=(x_val, y[val_idx]), test=(x_test, y_test), normalizer=normalizer,
        record=record, in_channels=x_train.shape[1], num_classes=len(dataset.classes),
    )  # fmt: skip


def _normalizer(config: TrainConfig, x_train: Tensor) -> Normalizer:
    if config.normalize != "fixed":
        return Normalizer.fit(x_train, kind=config.normalize)
    if len(config.mean) != x_train.shape[1]:
        raise AblationsError(
            f"normalize mean/std have {len(config.mean)} values but the images have "
            f"{x_train.shape[1]} channels; give one per channel"
        )
    return Normalizer.fixed(config.mean, config.std)
