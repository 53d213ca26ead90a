"""CIFAR-10's pickled batches (the cifar-10-batches-py folder or the original .tar.gz), read
with an unpickler that admits numpy arrays and nothing else."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from ablations.data.arrays import Arrays, DataError, check_labels
from ablations.data.imagefolder import member_bytes, member_parts

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_FILES = (*CIFAR_TRAIN, "test_batch", "batches.meta")

# The only globals a CIFAR batch refers to: numpy arrays (pickled by numpy 1 or 2) and bytes.
# Anything else would be code run by pickle, which a data file has no business doing.
_NUMPY_CORE = ("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")
_PICKLE_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")} | {
    (f"numpy.{core}.{module}", name) for core in ("core", "_core") for module, name in _NUMPY_CORE
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def _fields(raw: bytes, *keys: str, file: str, where: str) -> list[Any]:
    """The values of `keys` in a pickled dict, whose keys are bytes (Python 2's) or str."""
    try:  # encoding="bytes": the batches were pickled by Python 2
        record = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # a damaged pickle can fail with almost any exception type
        raise DataError(
            f"{where}: cannot unpickle {file} ({type(err).__name__}); "
            "replace it with the original CIFAR-10 file"
        ) from None
    values = []
    for key in keys:
        found = [record[k] for k in (key.encode(), key) if isinstance(record, dict) and k in record]
        if not found:
            raise DataError(
                f"{where}: {file} has no {key!r}; replace it with the original CIFAR-10 file"
            )
        values.append(found[0])
    return values


def _cifar_batch(raw: bytes, *, file: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = map(np.asarray, _fields(raw, "data", "labels", file=file, where=where))
    size = 3 * 32 * 32
    if data.dtype != np.uint8 or data.shape[1:] != (size,) or labels.shape != data.shape[:1]:
        raise DataError(
            f"{where}: {file} is not a CIFAR-10 batch (needs N x {size} uint8 data and N "
            f"labels, has {data.dtype} {data.shape} and {labels.shape[0]} labels); "
            "replace it with the original file"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW -> HWC
    return images, labels.astype(np.int64)


def read_cifar(root: Path, *, where: str) -> Arrays:
    """The batches in folder `root`, or in the archive `root`."""
    blobs = (
        _archive_blobs(root)
        if root.is_file()
        else {f: (root / f).read_bytes() for f in CIFAR_FILES}
    )
    (names,) = _fields(blobs["batches.meta"], "label_names", file="batches.meta", where=where)
    train = [_cifar_batch(blobs[f], file=f, where=where) for f in CIFAR_TRAIN]
    x_test, y_test = _cifar_batch(blobs["test_batch"], file="test_batch", where=where)
    arrays = Arrays(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=np.ascontiguousarray(x_test),
        y_test=y_test,
        classes=tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names),
    )
    check_labels(arrays, where=where)
    return arrays


def _archive_blobs(path: Path) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            parts = member_parts(member.name)
            if member.isfile() and parts and parts[-1] in CIFAR_FILES:
                blobs.setdefault(parts[-1], member_bytes(tar, member))
    missing = [f for f in CIFAR_FILES if f not in blobs]
    if missing:
        raise DataError(
            f"{path} lacks {', '.join(missing)}; use the complete cifar-10-python.tar.gz"
        )
    return blobs
