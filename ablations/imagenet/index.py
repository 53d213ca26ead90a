"""ImageNet (or any large ImageFolder set) as an index of files and labels, never decoded whole.

Three layouts, told apart by what is there:
- "imagefolder": train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (also torchvision's `ImageNet` root
  once it has sorted val/ into class folders; its meta.bin is then not needed).
- "devkit": train/<wnid>/ with a flat val/ (ILSVRC2012_val_00000001.JPEG, ...) whose labels come
  from torchvision's meta.bin or the ILSVRC2012 devkit beside it (ablations.imagenet.devkit).
- "tar-shards": a folder of .tar files (or one .tar) whose members are train/<wnid>/x.JPEG and
  val/<wnid>/x.JPEG, optionally under one top folder; read by offset, never extracted.

Classes are the train split's WNIDs, sorted (ImageFolder's and torchvision's class order). The
index is cached under the data cache, keyed by a sha256 of the listing (relative paths and
sizes, plus shard mtimes): not of the bytes, since ImageNet is about 150 GB and hashing it would
cost minutes to hours per run. A copy whose files change in place with equal sizes is therefore
not told apart; rebuild with `build_index(..., refresh=True)` after such an edit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ablations.data.arrays import DataError
from ablations.data.cache import default_cache_dir
from ablations.data.image_index import ImageIndex, load_index, save_index
from ablations.data.sources import locate
from ablations.imagenet.layouts import (
    ACCEPTED,
    IMAGENET_SPLITS,
    detect_layout,
    folder_index,
    layout_listing,
    shard_index,
)

ENV_VAR = "ABLATE_DATA_IMAGENET"
_INDEX_VERSION = 1  # bump when the index format changes: old cache entries are then ignored


def build_index(
    split: str,
    data: str | os.PathLike[str] | None = None,
    *,
    cache_dir: Path | None = None,
    refresh: bool = False,
) -> ImageIndex:
    """The index of `split` ("train" or "val"), read from the cache when the listing matches."""
    (index,) = build_indexes((split,), data, cache_dir=cache_dir, refresh=refresh)
    return index


def build_indexes(
    splits: tuple[str, ...],
    data: str | os.PathLike[str] | None = None,
    *,
    cache_dir: Path | None = None,
    refresh: bool = False,
) -> tuple[ImageIndex, ...]:
    """The indexes of `splits` from one listing: the checksum covers both splits, and listing
    1.3M files (a stat each) is what a start of a run spends most of its set-up on."""
    for split in splits:
        if split not in IMAGENET_SPLITS:
            raise DataError(f"unknown split {split!r}; choose from {', '.join(IMAGENET_SPLITS)}")
    located = locate("imagenet", data)  # --data, else ENV_VAR
    if located is None:
        raise DataError(
            f"no ImageNet data configured; pass --data (or set {ENV_VAR}) to {ACCEPTED}"
        )
    path, origin = located
    layout = detect_layout(path, origin=origin)
    listed = layout_listing(path, layout)
    checksum = hashlib.sha256(
        json.dumps([_INDEX_VERSION, layout, listed], separators=(",", ":")).encode()
    ).hexdigest()
    folder = (default_cache_dir() if cache_dir is None else cache_dir) / "imagenet-index"
    return tuple(
        _split_index(path, split, layout, checksum, folder=folder, refresh=refresh)
        for split in splits
    )


def _split_index(
    path: Path, split: str, layout: str, checksum: str, *, folder: Path, refresh: bool
) -> ImageIndex:
    cached = folder / f"{checksum[:32]}-{split}.npz"
    if cached.is_file() and not refresh:
        return load_index(cached, path)
    if layout == "tar-shards":
        index = shard_index(path, split, checksum)
    else:
        index = folder_index(path, split, layout, checksum)
    save_index(index, cached)
    return index
