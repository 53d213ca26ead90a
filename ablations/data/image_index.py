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
            paths = np.array([f.encode() for f in self.files], dtype=bytes)
            return ByteReader(root=self.root, paths=paths)
        return ByteReader(
            root=self.root, shards=self.shards, shard=self.shard, offset=self.offset,
            size=self.size,
        )  # fmt: skip

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
    paths: np.ndarray | None = None  # bytes paths relative to root, for folder layouts
    shards: tuple[str, ...] = ()
    shard: np.ndarray | None = None
    offset: np.ndarray | None = None
    size: np.ndarray | None = None

    def __call__(self, i: int) -> bytes:
        if self.paths is not None:
            return (self.root / self.paths[i].decode()).read_bytes()
        assert self.shard is not None
        assert self.offset is not None
        assert self.size is not None
        with open(self.root / self.shards[int(self.shard[i])], "rb") as f:
            f.seek(int(self.offset[i]))
            return f.read(int(self.size[i]))


def subset_index(
    index: ImageIndex, *, classes: int | Sequence[str], per_class: int | None, seed: int
) -> ImageIndex:
    """A class subset (for budgets that fit one GPU): `classes` WNIDs (or that many drawn with
    `seed`), up to `per_class` images of each drawn with `seed`, relabelled 0..k-1 in WNID order.
    Give the val split the train subset's `classes` so both share labels."""
    if isinstance(classes, int):
        if not 0 < classes <= len(index.classes):
            raise DataError(f"classes must be in 1..{len(index.classes)}, got {classes}")
        drawn = np.random.default_rng(seed).permutation(len(index.classes))[:classes]
        chosen = tuple(sorted(index.classes[i] for i in drawn))
    else:
        chosen = tuple(sorted(classes))
        unknown = sorted(set(chosen) - set(index.classes))
        if unknown:
            raise DataError(f"classes not in the index: {', '.join(unknown[:5])}")
    keep: list[int] = []
    rng = np.random.default_rng(seed + 1)
    for c in chosen:
        members = np.flatnonzero(index.labels == index.classes.index(c))
        if per_class is not None and per_class < len(members):
            members = np.sort(rng.permutation(members)[:per_class])
        keep += members.tolist()
    relabel = {index.classes.index(c): i for i, c in enumerate(chosen)}
    return _take(
        index, np.array(keep, dtype=np.int64), classes=chosen,
        labels=np.array([relabel[int(index.labels[i])] for i in keep], dtype=np.int64),
        checksum=hashlib.sha256(f"{index.checksum}:{chosen}:{per_class}:{seed}".encode()).hexdigest(),
    )  # fmt: skip


def sample_index(index: ImageIndex, n: int, *, seed: int) -> ImageIndex:
    """A fixed random subset of `n` images (all of them when `n` >= the index's size), in index
    order, labels and classes unchanged (`ablate evaluate --limit`)."""
    if n < 1:
        raise DataError(f"a subset needs at least 1 image, not {n}")
    if n >= len(index):
        return index
    rows = np.sort(np.random.default_rng(seed).permutation(len(index))[:n])
    return _take(
        index,
        rows,
        labels=index.labels[rows],
        checksum=hashlib.sha256(f"{index.checksum}:sample:{n}:{seed}".encode()).hexdigest(),
    )


def _take(index: ImageIndex, rows: np.ndarray, **changes: Any) -> ImageIndex:
    """`index` cut to `rows` (files and tar offsets), with `changes` (labels, classes,
    checksum) replaced."""
    pick = lambda a: None if a is None else a[rows]  # noqa: E731
    return replace(
        index, files=tuple(index.files[int(i)] for i in rows), shard=pick(index.shard),
        offset=pick(index.offset), size=pick(index.size), **changes,
    )  # fmt: skip


def save_index(index: ImageIndex, file: Path) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "files": np.array([f.encode() for f in index.files], dtype=bytes),
        "labels": index.labels,
        "classes": np.array([c.encode() for c in index.classes], dtype=bytes),
        "shards": np.array([s.encode() for s in index.shards], dtype=bytes),
        "meta": np.array([index.layout, index.split, index.checksum]),
    }
    for key in ("shard", "offset", "size"):
        if getattr(index, key) is not None:
            arrays[key] = getattr(index, key)
    tmp = file.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub types allow_pickle only
    os.replace(tmp, file)  # atomic: a reader never sees half an index


def load_index(file: Path, root: Path) -> ImageIndex:
    with np.load(file) as z:
        layout, split, checksum = (str(v) for v in z["meta"])
        extra = {k: z[k] for k in ("shard", "offset", "size") if k in z}
        return ImageIndex(
            root=root if layout != "tar-shards" or root.is_dir() else root.parent,
            layout=layout, split=split,
            files=tuple(f.decode() for f in z["files"]), labels=z["labels"],
            classes=tuple(c.decode() for c in z["classes"]), checksum=checksum,
            shards=tuple(s.decode() for s in z["shards"]), **extra,
        )  # fmt: skip
