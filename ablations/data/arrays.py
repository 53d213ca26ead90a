"""What every source decodes to: uint8 arrays with their class names (`Arrays`), the dataset
record that says where they came from (`ArrayDataset`), and the error every reader raises."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ablations.registry import AblationsError

SPLITS = ("train", "test")  # every array dataset has both


class DataError(AblationsError):
    """A dataset that cannot be found, recognised or decoded; the message says how to fix it."""


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value, no hash
class Arrays:
    """What a reader decodes (and the cache stores): the arrays and the class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class ArrayDataset(Arrays):
    """A whole dataset as uint8 NHWC images and int64 labels, with where it came from."""

    name: str
    source: str  # an absolute path, or "download:<folder>"
    source_format: str  # "cifar-pickle", "idx", "imagefolder" or "imagefolder-tar"
    checksum: str  # sha256 of the source's content: results record which data they used
    resize: int | None = None  # the decode-time `Transform` the images went through
    crop: int | None = None

    def describe(self) -> dict[str, str | int | None]:
        """A flat record for logs and results rows, without the producing machine's path."""
        _, height, width, channels = self.x_train.shape
        return {
            "name": self.name,
            "source": source_name(self.source),
            "source_format": self.source_format,
            "checksum": self.checksum,
            "n_train": len(self.x_train),
            "n_test": len(self.x_test),
            "height": int(height),
            "width": int(width),
            "channels": int(channels),
            "resize": self.resize,
            "crop": self.crop,
        }


def source_name(source: str) -> str:
    """`ArrayDataset.source` without its folder, or "torchvision download"."""
    if source.startswith("download:"):
        return "torchvision download"
    return os.path.basename(source.rstrip("/\\")) or source


def label_problem(arrays: Arrays) -> str | None:
    """Which split has labels outside the class list, if any."""
    for split in SPLITS:
        y = getattr(arrays, f"y_{split}")
        if len(y) and not (y.min() >= 0 and y.max() < len(arrays.classes)):
            return f"{split} labels out of range"
    return None


def check_labels(arrays: Arrays, *, where: str) -> None:
    if label_problem(arrays):
        raise DataError(
            f"{where}: labels outside 0..{len(arrays.classes) - 1}; "
            "the label files do not match the class list, use the original files"
        )
