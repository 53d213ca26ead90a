"""One split of a large image set as files and labels, never decoded whole: `ImageIndex`, the
reader DataLoader workers hold, the subsets short budgets train on, and the index's on-disk form
(the cache `ablations.imagenet.index.build_index` reads before listing a tree again)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ablations.data.arrays import DataError

_SHARD_ARRAYS = ("shard", "offset", "size")  # where each file's bytes lie in a tar shard
_ARRAYS = ("labels", *_SHARD_ARRAYS)
_NAMES = ("files", "classes", "shards")  # saved as bytes: numpy arrays of str need no pickle


def _bytes(names: Sequence[str]) -> np.ndarray:
    return np.array([n.encode() for n in names], dtype=bytes)


@dataclass(frozen=True, eq=False)  # eq=False: arrays
class ImageIndex:
    """One split's images: `files[i]` (relative to `root`, or "shard.tar:member"), its label,
    and for tar shards where its bytes lie (`shard`, `offset`, `size`). Sorted by file name."""

    root: Path
    layout: str
    split: str
    files: tuple[str, ...]
    labels: np.ndarray  # int64, index into `classes`
    classes: tuple[str, ...]  # WNIDs, sorted
    checksum: str  # sha256 of the listing (see the module docstring), not of the bytes
    shards: tuple[str, ...] = ()
    shard: np.ndarray | None = None  # int32 per file
    offset: np.ndarray | None = None  # int64 per file
    size: np.ndarray | None = None  # int64 per file

    def __len__(self) -> int:
        return len(self.files)

    def read(self, i: int) -> bytes:
        """The encoded bytes of image `i` (a seek and a read)."""
        return self.reader(i)

    @cached_property
    def reader(self) -> ByteReader:
        """What DataLoader workers hold: numpy arrays only (a tuple of 1.28M str objects would
        be copied into every forked worker as reference counts touch its pages)."""
        if self.shard is None:  # a folder layout (tar shards set shard, offset and size)
            return ByteReader(self.root, _bytes(self.files))
        return ByteReader(self.root, _bytes(self.shards)[self.shard], self.offset, self.size)

    def describe(self) -> dict[str, str | int]:
        return {
            "name": "imagenet",
            "source": os.path.basename(str(self.root).rstrip("/")),
            "source_format": self.layout,
            "checksum": self.checksum,
            "split": self.split,
            "n": len(self.files),
            "classes": len(self.classes),
        }


@dataclass(frozen=True, eq=False)
class ByteReader:
    """Reads image `i`'s bytes: a file under `root`, or a slice of a tar shard."""

    root: Path
    paths: np.ndarray  # bytes: each image's file, or its tar shard, relative to root
    offset: np.ndarray | None = None  # int64 per file, for tar shards
    size: np.ndarray | None = None

    def __call__(self, i: int) -> bytes:
        path = self.root / self.paths[i].decode()
        if self.offset is None or self.size is None:
            return path.read_bytes()
        with open(path, "rb") as f:
            f.seek(int(self.offset[i]))
            return f.read(int(self.size[i]))


def subset_index(
    index: ImageIndex, *, classes: int | Sequence[str], per_class: int | None, seed: int
) -> ImageIndex:
    """A class subset: `classes` WNIDs (or that many drawn with `seed`), up to `per_class`
    images of each drawn with `seed`, relabelled 0..k-1 in WNID order. Give the val split the
    train subset's `classes` so both share labels."""
    if isinstance(classes, int):
        if not 0 < classes <= len(index.classes):
            raise DataError(f"classes must be in 1..{len(index.classes)}, got {classes}")
        drawn = np.random.default_rng(seed).permutation(len(index.classes))[:classes]
        classes = [index.classes[i] for i in drawn]
    chosen = tuple(sorted(classes))
    unknown = sorted(set(chosen) - set(index.classes))
    if unknown:
        raise DataError(f"classes not in the index: {', '.join(unknown[:5])}")
    keep, labels = [], []
    rng = np.random.default_rng(seed + 1)
    for label, c in enumerate(chosen):
        members = np.flatnonzero(index.labels == index.classes.index(c))
        if per_class is not None and per_class < len(members):
            members = np.sort(rng.permutation(members)[:per_class])
        keep += members.tolist()
        labels += [label] * len(members)
    key = f"{index.checksum}:{chosen}:{per_class}:{seed}"
    return _take(index, keep, classes=chosen, labels=np.array(labels, dtype=np.int64), key=key)


def sample_index(index: ImageIndex, n: int, *, seed: int) -> ImageIndex:
    """A fixed random subset of `n` images in index order (`ablate evaluate --limit`)."""
    if n < 1:
        raise DataError(f"a subset needs at least 1 image, not {n}")
    if n >= len(index):
        return index
    rows = np.sort(np.random.default_rng(seed).permutation(len(index))[:n])
    key = f"{index.checksum}:sample:{n}:{seed}"
    return _take(index, rows.tolist(), classes=index.classes, labels=index.labels[rows], key=key)


def _take(
    index: ImageIndex, rows: list[int], *, classes: tuple[str, ...], labels: np.ndarray, key: str
) -> ImageIndex:
    """`index` cut to `rows`, with new labels and classes, its checksum the sha256 of `key`."""
    return replace(
        index,
        files=tuple(index.files[i] for i in rows),
        labels=labels,
        classes=classes,
        checksum=hashlib.sha256(key.encode()).hexdigest(),
        **{k: getattr(index, k)[rows] for k in _SHARD_ARRAYS if getattr(index, k) is not None},
    )


def save_index(index: ImageIndex, file: Path) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: _bytes(getattr(index, k)) for k in _NAMES}
    arrays |= {k: getattr(index, k) for k in _ARRAYS if getattr(index, k) is not None}
    arrays["meta"] = np.array([index.layout, index.split, index.checksum])
    tmp = file.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub types allow_pickle only
    os.replace(tmp, file)  # atomic: a reader never sees half an index


def load_index(file: Path, root: Path) -> ImageIndex:
    with np.load(file) as z:
        layout, split, checksum = (str(v) for v in z["meta"])
        fields: dict[str, Any] = {k: z[k] for k in _ARRAYS if k in z}
        fields |= {k: tuple(v.decode() for v in z[k]) for k in _NAMES}
    root = root if layout != "tar-shards" or root.is_dir() else root.parent
    return ImageIndex(root=root, layout=layout, split=split, checksum=checksum, **fields)
