"""Reading each ImageNet layout (see ablations.imagenet.index) into an `ImageIndex`: which
layout a path holds, the listing its checksum covers, class folders, a flat devkit val/, and tar
shards read by member offset."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np

from ablations.data.arrays import DataError
from ablations.data.image_index import ImageIndex
from ablations.data.imagefolder import class_files, is_image, member_parts, split_index
from ablations.imagenet.devkit import DEVKIT, GROUND_TRUTH, META_FILE, val_wnids

IMAGENET_SPLITS = ("train", "val")
ACCEPTED = (
    "an ImageNet root with train/<wnid>/ and val/ (val/ in class folders, or flat with "
    f"torchvision's {META_FILE} or the {DEVKIT} devkit beside it), or a folder of .tar shards "
    "holding train/<wnid>/*.JPEG and val/<wnid>/*.JPEG; ImageNet is never downloaded"
)
_ORIGINAL_TARS = ("ILSVRC2012_img_",)  # the download's archives: not shards of a tree


def detect_layout(path: Path, *, origin: str = "--data") -> str:
    if not path.exists():
        raise DataError(f"ImageNet not found: {path} does not exist (from {origin}); {ACCEPTED}")
    # Folders first: torchvision's root keeps ILSVRC2012_img_*.tar beside train/ and val/.
    if path.is_dir() and (path / "train").is_dir() and (path / "val").is_dir():
        val = path / "val"
        if any(e.is_dir() and e.name[0] != "." for e in os.scandir(val)):
            return "imagefolder"
        return "devkit"
    originals = [n for n in _tar_names(path) if n.startswith(_ORIGINAL_TARS)]
    if originals:
        raise DataError(
            f"{path} holds {originals[0]}, the original archive (one tar per class inside); "
            "extract it into train/<wnid>/ and val/ (torchvision.datasets.ImageNet(root) does), "
            "or point at tar shards of train/<wnid>/x.JPEG members"
        )
    if _shard_files(path):
        return "tar-shards"
    raise DataError(f"{path} is no ImageNet layout this reader knows (from {origin}); {ACCEPTED}")


# --- listings ----------------------------------------------------------------------------------


def _tar_names(path: Path) -> tuple[str, ...]:
    if path.is_file():
        return (path.name,) if tarfile.is_tarfile(path) else ()
    if not path.is_dir():
        return ()
    return tuple(sorted(e.name for e in os.scandir(path) if e.name.endswith(".tar")))


def _shard_files(path: Path) -> tuple[str, ...]:
    return tuple(n for n in _tar_names(path) if not n.startswith(_ORIGINAL_TARS))


def layout_listing(path: Path, layout: str) -> list[list[str | int]]:
    """What the checksum covers: shards by (name, size, mtime), trees by (path, size)."""
    if layout == "tar-shards":
        root = path if path.is_dir() else path.parent
        stats = [(name, (root / name).stat()) for name in _shard_files(path)]
        return [[name, st.st_size, st.st_mtime_ns] for name, st in stats]
    out: list[list[str | int]] = []
    for split in IMAGENET_SPLITS:
        for here, dirs, files in os.walk(path / split, followlinks=True):
            dirs[:] = sorted(d for d in dirs if d[0] != ".")
            rel = Path(here).relative_to(path).as_posix()
            for f in sorted(files):
                if f[0] != "." and is_image(f):
                    out.append([f"{rel}/{f}", os.stat(os.path.join(here, f)).st_size])
    for extra in (META_FILE, f"{DEVKIT}.tar.gz", f"{DEVKIT}/{GROUND_TRUTH}"):
        if (path / extra).is_file():
            out.append([extra, (path / extra).stat().st_size])
    return out


# --- folders -----------------------------------------------------------------------------------


def folder_index(path: Path, split: str, layout: str, checksum: str) -> ImageIndex:
    train = class_files(path, "train")
    classes = tuple(c for c in train if train[c])
    if not classes:
        raise DataError(f"{path}/train has no <wnid>/ folders with images; {ACCEPTED}")
    if split == "val" and layout == "devkit":
        return _devkit_val(path, classes, checksum)
    tree = train if split == "train" else class_files(path, split)
    unknown = sorted(set(c for c in tree if tree[c]) - set(classes))
    if unknown:
        raise DataError(
            f"{path}/{split} has classes not in train/ ({', '.join(unknown[:5])}); "
            "give both splits the same <wnid> folders"
        )
    files = [f for c in classes for f in tree.get(c, [])]
    labels = np.repeat(np.arange(len(classes)), [len(tree.get(c, [])) for c in classes])
    if not files:
        raise DataError(f"{path}/{split} has no images; {ACCEPTED}")
    return ImageIndex(
        root=path, layout=layout, split=split, files=tuple(files),
        labels=labels.astype(np.int64), classes=classes, checksum=checksum,
    )  # fmt: skip


def _devkit_val(path: Path, classes: tuple[str, ...], checksum: str) -> ImageIndex:
    files = sorted(
        f"val/{e.name}" for e in os.scandir(path / "val") if e.is_file() and is_image(e.name)
    )
    wnids = val_wnids(path)
    if len(wnids) != len(files):
        raise DataError(
            f"{path}/val has {len(files)} images but the ground truth lists {len(wnids)}; "
            "copy the complete val/ (50,000 images for ILSVRC2012) or sort it into class folders"
        )
    position = {c: i for i, c in enumerate(classes)}
    missing = sorted(set(wnids) - set(position))
    if missing:
        raise DataError(f"val labels name classes not in train/: {', '.join(missing[:5])}")
    return ImageIndex(
        root=path, layout="devkit", split="val", files=tuple(files),
        labels=np.array([position[w] for w in wnids], dtype=np.int64), classes=classes,
        checksum=checksum,
    )  # fmt: skip


# --- tar shards --------------------------------------------------------------------------------


def shard_index(path: Path, split: str, checksum: str) -> ImageIndex:
    root = path if path.is_dir() else path.parent
    shards = _shard_files(path)
    rows: list[tuple[str, str, int, int, int]] = []  # (name, class, shard, offset, size)
    classes: set[str] = set()
    for s, shard in enumerate(shards):
        with tarfile.open(root / shard) as tar:
            for member in tar:
                parts = member_parts(member.name)
                at = split_index(parts, splits=IMAGENET_SPLITS)
                if at is None or not member.isfile() or not is_image(parts[-1]):
                    continue
                if parts[at] == "train":
                    classes.add(parts[at + 1])
                if parts[at] == split:
                    name = "/".join(parts[at:])
                    rows.append((name, parts[at + 1], s, member.offset_data, member.size))
    ordered = tuple(sorted(classes))
    if not ordered or not rows:
        raise DataError(
            f"{path}: no {split}/<wnid>/ images in {len(shards)} tar shard(s); {ACCEPTED}"
        )
    position = {c: i for i, c in enumerate(ordered)}
    unknown = sorted({c for _, c, *_ in rows} - set(position))
    if unknown:
        raise DataError(f"{path}: {split} classes not in train: {', '.join(unknown[:5])}")
    rows.sort(key=lambda r: (position[r[1]], r[0]))
    return ImageIndex(
        root=root, layout="tar-shards", split=split,
        files=tuple(f"{shards[r[2]]}:{r[0]}" for r in rows),
        labels=np.array([position[r[1]] for r in rows], dtype=np.int64), classes=ordered,
        checksum=checksum, shards=shards,
        shard=np.array([r[2] for r in rows], dtype=np.int32),
        offset=np.array([r[3] for r in rows], dtype=np.int64),
        size=np.array([r[4] for r in rows], dtype=np.int64),
    )  # fmt: skip
