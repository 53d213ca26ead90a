"""Fashion-MNIST's idx files (gzipped or not; torchvision's FashionMNIST/raw is such a folder)."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ablations.data.arrays import Arrays, DataError, check_labels

# Array -> idx file name (each may also be gzipped, with ".gz" appended), in reading order.
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def idx_file(root: Path, stem: str) -> str | None:
    """The idx file `stem` in `root`: uncompressed if both are there (torchvision keeps both)."""
    return next((f for f in (stem, stem + ".gz") if (root / f).is_file()), None)


def _idx_array(raw: bytes, *, ndim: int, file: str, where: str) -> np.ndarray:
    """An idx file: magic (0, 0, 0x08 = uint8, ndim), ndim big-endian uint32 sizes, the data."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(
                f"{where}: {file} is not a readable gzip file ({type(err).__name__}); "
                "download it again"
            ) from None
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:4] != bytes((0, 0, 8, ndim)):
        raise DataError(
            f"{where}: {file} is not an idx file of {ndim}-d uint8 data (bad header); "
            "replace it with the original"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != math.prod(dims):
        raise DataError(
            f"{where}: {file} holds {data.size} values but its header says {dims}; "
            "it is truncated or damaged, replace it with the original"
        )
    return data.reshape(dims).copy()  # a writable array, like one loaded from the cache


def read_idx(root: Path, files: tuple[str, ...], *, where: str) -> Arrays:
    arrays = {
        key: _idx_array(
            (root / file).read_bytes(), ndim=3 if key[0] == "x" else 1, file=file, where=where
        )
        for key, file in zip(IDX_FILES, files, strict=True)
    }
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise DataError(
                f"{where}: {len(x)} {split} images but {len(y)} labels; "
                "the idx files come from different datasets, copy a matching set"
            )
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x[..., None], y.astype(np.int64)
    result = Arrays(**arrays, classes=FASHION_MNIST_CLASSES)
    check_labels(result, where=where)
    return result
