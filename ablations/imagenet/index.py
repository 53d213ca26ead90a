"""ImageNet (or any large ImageFolder set) as a cached `ImageIndex` of files and labels, read from
class folders, a flat devkit val/ or tar shards (docs/imagenet.md). The cache key hashes the
listing, not the bytes (150 GB): an edit in place that keeps file sizes needs `refresh=True`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import torch

from ablations.data.arrays import DataError
from ablations.data.cache import default_cache_dir
from ablations.data.image_index import ImageIndex, load_index, save_index
from ablations.data.imagefolder import (
    class_files,
    is_image,
    member_bytes,
    member_parts,
    split_index,
)
from ablations.data.sources import locate

ENV_VAR = "ABLATE_DATA_IMAGENET"
SPLITS = ("train", "val")
META_FILE = "meta.bin"  # torchvision's parsed devkit: (wnid_to_classes, val_wnids)
DEVKIT = "ILSVRC2012_devkit_t12"
GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"
ACCEPTED = (
    "an ImageNet root with train/<wnid>/ and val/ (val/ in class folders, or flat with "
    f"torchvision's {META_FILE} or the {DEVKIT} devkit beside it), or a folder of .tar shards "
    "holding train/<wnid>/*.JPEG and val/<wnid>/*.JPEG; ImageNet is never downloaded"
)
_ORIGINAL_TARS = ("ILSVRC2012_img_",)  # the download's archives: not shards of a tree
_INDEX_VERSION = 1  # bump when the index format changes: old cache entries are then ignored


def build_index(
    split: str, data: str | os.PathLike[str] | None = None, *, refresh: bool = False
) -> ImageIndex:
    """The index of `split` ("train" or "val"), read from the cache when the listing matches."""
    return build_indexes((split,), data, refresh=refresh)[0]


def build_indexes(
    splits: tuple[str, ...], data: str | os.PathLike[str] | None = None, *, refresh: bool = False
) -> tuple[ImageIndex, ...]:
    """The indexes of `splits` from one listing: a stat per file, 1.3M of them on ImageNet."""
    located = locate("imagenet", data)  # --data, else ENV_VAR
    if located is None:
        raise DataError(
            f"no ImageNet data configured; pass --data (or set {ENV_VAR}) to {ACCEPTED}"
        )
    path, origin = located
    layout = detect_layout(path, origin=origin)
    listing = [_INDEX_VERSION, layout, layout_listing(path, layout)]
    checksum = hashlib.sha256(json.dumps(listing, separators=(",", ":")).encode()).hexdigest()
    cached = [default_cache_dir() / "imagenet-index" / f"{checksum[:32]}-{s}.npz" for s in splits]
    if all(c.is_file() for c in cached) and not refresh:
        return tuple(load_index(c, path) for c in cached)
    indexes = tuple(read_index(path, split, layout, checksum) for split in splits)
    for index, file in zip(indexes, cached, strict=True):
        save_index(index, file)
    return indexes


def detect_layout(path: Path, *, origin: str = "--data") -> str:
    """The layout at `path`: "imagefolder", "devkit" (a flat val/) or "tar-shards"."""
    if not path.exists():
        raise DataError(f"ImageNet not found: {path} does not exist (from {origin}); {ACCEPTED}")
    # Folders first: torchvision's root keeps ILSVRC2012_img_*.tar beside train/ and val/.
    if path.is_dir() and (path / "train").is_dir() and (path / "val").is_dir():
        sorted_val = any(e.is_dir() and e.name[0] != "." for e in os.scandir(path / "val"))
        return "imagefolder" if sorted_val else "devkit"
    originals = [n for n in _tar_names(path) if n.startswith(_ORIGINAL_TARS)]
    if originals:
        raise DataError(
            f"{path} holds {originals[0]}, the original archive (one tar per class inside); "
            "extract it into train/<wnid>/ and val/ (torchvision.datasets.ImageNet(root) does), "
            "or point at tar shards of train/<wnid>/x.JPEG members"
        )
    if _tar_names(path):
        return "tar-shards"
    raise DataError(f"{path} is no ImageNet layout this reader knows (from {origin}); {ACCEPTED}")


def _tar_names(path: Path, *, originals: bool = True) -> tuple[str, ...]:
    if path.is_file():
        names: tuple[str, ...] = (path.name,) if tarfile.is_tarfile(path) else ()
    else:
        names = tuple(sorted(e.name for e in os.scandir(path) if e.name.endswith(".tar")))
    return names if originals else tuple(n for n in names if not n.startswith(_ORIGINAL_TARS))


def layout_listing(path: Path, layout: str) -> list[list[str | int]]:
    """What the checksum covers: shards by (name, size, mtime), trees by (path, size)."""
    if layout == "tar-shards":
        root = path if path.is_dir() else path.parent
        stats = [(name, (root / name).stat()) for name in _tar_names(path, originals=False)]
        return [[name, st.st_size, st.st_mtime_ns] for name, st in stats]
    out: list[list[str | int]] = []
    for split in SPLITS:
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


def _labels(where: str, classes: tuple[str, ...], wnids: list[str]) -> np.ndarray:
    """Each image's label: its WNID's place among the train split's sorted WNIDs."""
    position = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(wnids) - set(position))
    if unknown:
        raise DataError(
            f"{where} names classes not in train/ ({', '.join(unknown[:5])}); "
            "give both splits the same <wnid> folders"
        )
    return np.array([position[w] for w in wnids], dtype=np.int64)


def read_index(path: Path, split: str, layout: str, checksum: str) -> ImageIndex:
    """`split`'s images and labels, as `layout` holds them."""
    if layout == "tar-shards":
        return shard_index(path, split, checksum)
    train = class_files(path, "train")
    classes = tuple(c for c in train if train[c])
    if not classes:
        raise DataError(f"{path}/train has no <wnid>/ folders with images; {ACCEPTED}")
    if split == "val" and layout == "devkit":
        flat = os.scandir(path / "val")
        files = sorted(f"val/{e.name}" for e in flat if e.is_file() and is_image(e.name))
        wnids = val_wnids(path)
        if len(wnids) != len(files):
            raise DataError(
                f"{path}/val has {len(files)} images but the ground truth lists {len(wnids)}; "
                "copy the complete val/ (50,000 images for ILSVRC2012) or sort it into class "
                "folders"
            )
    else:
        tree = train if split == "train" else class_files(path, split)
        files = [f for c in tree for f in tree[c]]
        wnids = [c for c in tree for _ in tree[c]]
    if not files:
        raise DataError(f"{path}/{split} has no images; {ACCEPTED}")
    return ImageIndex(
        root=path, layout=layout, split=split, files=tuple(files), classes=classes,
        labels=_labels(f"{path}/{split}", classes, wnids), checksum=checksum,
    )  # fmt: skip


def shard_index(path: Path, split: str, checksum: str) -> ImageIndex:
    root = path if path.is_dir() else path.parent
    shards = _tar_names(path, originals=False)
    rows: list[tuple[str, str, int, int, int]] = []  # (wnid, name, shard, offset, size)
    classes: set[str] = set()
    for s, shard in enumerate(shards):
        with tarfile.open(root / shard) as tar:
            for member in tar:
                parts = member_parts(member.name)
                at = split_index(parts, splits=SPLITS)
                if at is None or not member.isfile() or not is_image(parts[-1]):
                    continue
                if parts[at] == "train":
                    classes.add(parts[at + 1])
                if parts[at] == split:
                    name = "/".join(parts[at:])
                    rows.append((parts[at + 1], name, s, member.offset_data, member.size))
    if not classes or not rows:
        raise DataError(
            f"{path}: no {split}/<wnid>/ images in {len(shards)} tar shard(s); {ACCEPTED}"
        )
    wnids, names, in_shard, offsets, sizes = zip(*sorted(rows), strict=True)
    ordered = tuple(sorted(classes))
    return ImageIndex(
        root=root, layout="tar-shards", split=split, classes=ordered, checksum=checksum,
        files=tuple(f"{shards[s]}:{n}" for s, n in zip(in_shard, names, strict=True)),
        labels=_labels(f"{path}: {split}", ordered, list(wnids)), shards=shards,
        shard=np.array(in_shard, dtype=np.int32), offset=np.array(offsets, dtype=np.int64),
        size=np.array(sizes, dtype=np.int64),
    )  # fmt: skip


def val_wnids(path: Path) -> list[str]:
    """The WNID of each flat val image (sorted by name), as torchvision reads them: from its
    meta.bin, else the devkit (its tar.gz or folder), whose meta.mat maps ILSVRC2012_ID to
    WNID; the ground-truth file lists one ID per val image."""
    if (path / META_FILE).is_file():
        _, wnids = torch.load(path / META_FILE, weights_only=True)
        return [str(w) for w in wnids]
    for name in (f"{DEVKIT}.tar.gz", DEVKIT):
        if (path / name).exists():
            meta, truth = _devkit_files(path / name)
            return ground_truth_wnids(parse_meta_mat(meta), truth.decode())
    raise DataError(
        f"{path}/val is flat but neither {META_FILE} nor the {DEVKIT} devkit is in {path}; "
        f"copy {DEVKIT}.tar.gz there, or sort val/ into <wnid>/ folders"
    )


def ground_truth_wnids(id_to_wnid: dict[int, str], text: str) -> list[str]:
    """The ground-truth file (one ILSVRC2012_ID per line) as WNIDs."""
    try:
        return [id_to_wnid[int(line)] for line in text.split()]
    except (KeyError, ValueError) as err:
        raise DataError(
            f"the val ground truth names an unknown ILSVRC2012_ID ({err}); use the devkit's "
            "own meta.mat and ground-truth file"
        ) from None


def _devkit_files(devkit: Path) -> list[bytes]:
    """meta.mat and the ground truth, from the devkit's folder or tar.gz."""
    wanted = ["data/meta.mat", GROUND_TRUTH]
    if devkit.is_dir():
        return [(devkit / w).read_bytes() for w in wanted]
    with tarfile.open(devkit) as tar:
        found = {"/".join(member_parts(m.name)[1:]): m for m in tar if m.isfile()}
        if missing := [w for w in wanted if w not in found]:
            raise DataError(f"{devkit} lacks {' or '.join(missing)}")
        return [member_bytes(tar, found[w]) for w in wanted]


def parse_meta_mat(raw: bytes) -> dict[int, str]:
    """ILSVRC2012_ID -> WNID of the leaf synsets, as torchvision's `parse_meta_mat`."""
    import scipy.io as sio

    meta = sio.loadmat(io.BytesIO(raw), squeeze_me=True)["synsets"]
    return {int(m[0]): str(m[1]) for m in meta if int(m[4]) == 0}
