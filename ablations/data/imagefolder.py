"""ImageFolder trees (`train/<class>/*.jpg` and `test/<class>/*.jpg`), from a folder or straight
from a tar archive of one (never extracted), decoded into uint8 arrays through a `Transform`."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np
from PIL import Image

from ablations.data.arrays import SPLITS, Arrays, DataError
from ablations.data.transform import Transform

Tree = dict[str, dict[str, list[str]]]  # split -> class -> image paths under the tree's root


@cache
def _image_extensions() -> frozenset[str]:
    return frozenset(ext.lower() for ext in Image.registered_extensions())


def is_image(filename: str) -> bool:
    return os.path.splitext(filename)[1].lower() in _image_extensions()


def member_parts(member_name: str) -> tuple[str, ...]:
    """An archive member's path parts, without "." and with hidden entries (".DS_Store",
    "._x.jpg" from macOS tar, "__MACOSX") turned into no parts at all."""
    parts = tuple(p for p in PurePosixPath(member_name).parts if p not in (".", "/"))
    return () if any(p.startswith(".") or p == "__MACOSX" for p in parts) else parts


def member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None  # isfile() members always have content
    with handle:
        return handle.read()


def split_index(parts: tuple[str, ...], *, splits: tuple[str, ...] = SPLITS) -> int | None:
    """Where the split ("train", ...) sits in an image path: 0 at the archive root, 1 under a
    top folder."""
    return next((i for i in (0, 1) if len(parts) > i + 2 and parts[i] in splits), None)


def folder_tree(root: Path) -> Tree:
    return {split: class_files(root, split) for split in SPLITS if (root / split).is_dir()}


def class_files(root: Path, split: str) -> dict[str, list[str]]:
    """Class -> its images under `root/split/<class>/` (paths relative to `root`, sorted);
    hidden files and folders are skipped."""
    top, tree = root / split, {}
    for cls in sorted(d for d in os.listdir(top) if (top / d).is_dir() and d[0] != "."):
        found = []
        for here, dirs, files in os.walk(top / cls, followlinks=True):
            dirs[:] = [d for d in dirs if d[0] != "."]
            rel = Path(here).relative_to(root).as_posix()
            found += [f"{rel}/{f}" for f in files if f[0] != "." and is_image(f)]
        tree[cls] = sorted(found)
    return tree


def tree_classes(tree: Tree, where: str) -> tuple[str, ...]:
    """The class names of a usable tree: train/'s folders, sorted (ImageFolder's rule)."""
    for split in SPLITS:
        if not tree.get(split):
            raise DataError(
                f"{where} has no {split}/<class>/ folders; an ImageFolder tree needs "
                "train/<class>/ and test/<class>/ with images in them"
            )
    train, test = sorted(tree["train"]), sorted(tree["test"])
    if train != test:
        missing = ", ".join(sorted(set(train) - set(test))) or "none"
        extra = ", ".join(sorted(set(test) - set(train))) or "none"
        raise DataError(
            f"{where}: test/ classes differ from train/ (missing in test/: {missing}; "
            f"only in test/: {extra}); give both the same class folders"
        )
    for split in SPLITS:
        empty = [c for c in train if not tree[split][c]]
        if empty:
            raise DataError(f"{where}: {split}/{empty[0]}/ has no images; add some or remove it")
    return tuple(train)


def group(files: Iterable[str]) -> Tree:
    """The tree of a listing of "<split>/<class>/..." image paths."""
    tree: Tree = {split: {} for split in SPLITS}
    for name in files:
        split, cls = name.split("/", 2)[:2]
        tree[split].setdefault(cls, []).append(name)
    return tree


def read_tree(
    tree: Tree,
    fetch: Callable[[str], Path | IO[bytes]],
    *,
    mode: str,
    transform: Transform,
    where: str,
) -> Arrays:
    """Every image of `tree`, read by `fetch`, in `mode` and through `transform`."""
    classes = tree_classes(tree, where)
    names = [n for split in SPLITS for c in classes for n in sorted(tree[split][c])]
    out: np.ndarray | None = None
    # One pass over both splits, so that every image is checked against the same size.
    for i, name in enumerate(names):
        pixels = _decode(fetch(name), mode=mode, transform=transform, name=name, where=where)
        if out is None:
            out = np.empty((len(names), *pixels.shape), dtype=np.uint8)
        elif pixels.shape != out.shape[1:]:
            (h, w), (h0, w0) = pixels.shape[:2], out[0].shape[:2]
            if transform.identity:
                resized, fix = "", "all images must have one size (resize or remove it)"
            else:  # only a resize without crop gets here: a crop makes every image one size
                resized = " after resizing"
                fix = "images of different aspect ratios need a crop as well to share one size"
            raise DataError(
                f"{where}: {name} is {w}x{h}{resized} but {names[0]} is {w0}x{h0}; {fix}"
            )
        out[i] = pixels
    assert out is not None  # tree_classes guarantees images in both splits
    y_train, y_test = (
        np.repeat(np.arange(len(classes)), [len(tree[split][c]) for c in classes]).astype(np.int64)
        for split in SPLITS
    )
    n_train = len(y_train)
    return Arrays(out[:n_train], y_train, out[n_train:], y_test, classes)


def _decode(
    src: Path | IO[bytes], *, mode: str, transform: Transform, name: str, where: str
) -> np.ndarray:
    try:
        with Image.open(src) as image:
            converted = image if image.mode == mode else image.convert(mode)
            # Inside the `with`: resizing reads the file, which can still fail as a decode does.
            pixels = np.asarray(transform.apply(converted, name=name, where=where), np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(
            f"{where}: cannot decode {name} as an image ({type(err).__name__}); "
            "replace or remove it"
        ) from None
    return pixels.reshape(*pixels.shape[:2], -1)  # "L" images get their channel axis


def read_tree_archive(path: Path, *, mode: str, transform: Transform) -> Arrays:
    """An ImageFolder tree straight from a tar archive, at its root or under one top folder."""
    tree: Tree = {}
    blobs: dict[str, bytes] = {}
    prefix: tuple[str, ...] | None = None
    with tarfile.open(path) as tar:
        for member in tar:
            parts = member_parts(member.name)
            if prefix is None and (at := split_index(parts)) is not None:
                prefix = parts[:at]
            if prefix is None or parts[: len(prefix)] != prefix:
                continue
            rel = parts[len(prefix) :]
            if len(rel) < 2 or rel[0] not in SPLITS:
                continue
            images = tree.setdefault(rel[0], {}).setdefault(rel[1], [])
            if member.isfile() and len(rel) > 2 and is_image(rel[-1]):
                images.append("/".join(rel))
                blobs[images[-1]] = member_bytes(tar, member)
    return read_tree(
        tree, lambda n: io.BytesIO(blobs[n]), mode=mode, transform=transform, where=str(path)
    )
