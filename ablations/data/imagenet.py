"""ImageNet (or any large ImageFolder set) as an index of files and labels, never decoded whole.

Three layouts, told apart by what is there:
- "imagefolder": train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (also torchvision's `ImageNet` root
  once it has sorted val/ into class folders; its meta.bin is then not needed).
- "devkit": train/<wnid>/ with a flat val/ (ILSVRC2012_val_00000001.JPEG, ...) whose labels come
  from torchvision's meta.bin (written by `torchvision.datasets.ImageNet(root)`), or from the
  devkit (ILSVRC2012_devkit_t12.tar.gz, or its extracted folder): meta.mat maps ILSVRC2012_ID to
  WNID and data/ILSVRC2012_validation_ground_truth.txt gives one ID per val image, in sorted file
  name order, as torchvision's `parse_devkit_archive` reads them (meta.mat needs scipy).
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
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from ablations.data.arrays import DataError
from ablations.data.imagefolder import is_image, member_parts
from ablations.data.imagenet_devkit import DEVKIT, GROUND_TRUTH, META_FILE, val_wnids

ENV_VAR = "ABLATE_DATA_IMAGENET"
IMAGENET_SPLITS = ("train", "val")
LAYOUTS = ("imagefolder", "devkit", "tar-shards")
ACCEPTED = (
    "an ImageNet root with train/<wnid>/ and val/ (val/ in class folders, or flat with "
    f"torchvision's {META_FILE} or the {DEVKIT} devkit beside it), or a folder of .tar shards "
    "holding train/<wnid>/*.JPEG and val/<wnid>/*.JPEG; ImageNet is never downloaded"
)
_ORIGINAL_TARS = ("ILSVRC2012_img_",)  # the download's archives: not shards of a tree
_INDEX_VERSION = 1  # bump when the index format changes: old cache entries are then ignored


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
        if self.shard is None or self.offset is None or self.size is None:
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


def locate_imagenet(data: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """`--data`, else ABLATE_DATA_IMAGENET; an error naming both when neither is set."""
    if data is not None and os.fspath(data):
        return Path(os.path.abspath(Path(data).expanduser())), "--data"
    if os.environ.get(ENV_VAR):
        return Path(os.path.abspath(Path(os.environ[ENV_VAR]).expanduser())), ENV_VAR
    raise DataError(f"no ImageNet data configured; pass --data (or set {ENV_VAR}) to {ACCEPTED}")


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


def build_index(
    split: str,
    data: str | os.PathLike[str] | None = None,
    *,
    cache_dir: Path | None = None,
    refresh: bool = False,
) -> ImageIndex:
    """The index of `split` ("train" or "val"), read from the cache when the listing matches."""
    if split not in IMAGENET_SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(IMAGENET_SPLITS)}")
    path, origin = locate_imagenet(data)
    layout = detect_layout(path, origin=origin)
    listing = _listing(path, layout)
    checksum = hashlib.sha256(
        json.dumps([_INDEX_VERSION, layout, listing], separators=(",", ":")).encode()
    ).hexdigest()
    cached = _cache_file(cache_dir, checksum, split)
    if cached is not None and cached.is_file() and not refresh:
        return _load(cached, path)
    if layout == "tar-shards":
        index = _shard_index(path, split, checksum)
    else:
        index = _folder_index(path, split, layout, checksum)
    if cached is not None:
        _save(index, cached)
    return index


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
    rows = np.array(keep, dtype=np.int64)
    relabel = {index.classes.index(c): i for i, c in enumerate(chosen)}
    pick = lambda a: None if a is None else a[rows]  # noqa: E731
    return replace(
        index, files=tuple(index.files[i] for i in keep),
        labels=np.array([relabel[int(index.labels[i])] for i in keep], dtype=np.int64),
        classes=chosen, shard=pick(index.shard), offset=pick(index.offset),
        size=pick(index.size),
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
    pick = lambda a: None if a is None else a[rows]  # noqa: E731
    return replace(
        index, files=tuple(index.files[i] for i in rows), labels=index.labels[rows],
        shard=pick(index.shard), offset=pick(index.offset), size=pick(index.size),
        checksum=hashlib.sha256(f"{index.checksum}:sample:{n}:{seed}".encode()).hexdigest(),
    )  # fmt: skip


# --- listings ----------------------------------------------------------------------------------


def _tar_names(path: Path) -> tuple[str, ...]:
    if path.is_file():
        return (path.name,) if tarfile.is_tarfile(path) else ()
    if not path.is_dir():
        return ()
    return tuple(sorted(e.name for e in os.scandir(path) if e.name.endswith(".tar")))


def _shard_files(path: Path) -> tuple[str, ...]:
    return tuple(n for n in _tar_names(path) if not n.startswith(_ORIGINAL_TARS))


def _listing(path: Path, layout: str) -> list[list[str | int]]:
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


def _class_files(path: Path, split: str) -> dict[str, list[str]]:
    top = path / split
    classes = sorted(d for d in os.listdir(top) if (top / d).is_dir() and d[0] != ".")
    found: dict[str, list[str]] = {}
    for c in classes:
        files = []
        for here, dirs, names in os.walk(top / c, followlinks=True):
            dirs[:] = [d for d in dirs if d[0] != "."]
            rel = Path(here).relative_to(path).as_posix()
            files += [f"{rel}/{n}" for n in names if n[0] != "." and is_image(n)]
        found[c] = sorted(files)
    return found


def _folder_index(path: Path, split: str, layout: str, checksum: str) -> ImageIndex:
    train = _class_files(path, "train")
    classes = tuple(c for c in train if train[c])
    if not classes:
        raise DataError(f"{path}/train has no <wnid>/ folders with images; {ACCEPTED}")
    if split == "val" and layout == "devkit":
        return _devkit_val(path, classes, checksum)
    tree = train if split == "train" else _class_files(path, split)
    unknown = sorted(set(c for c in tree if tree[c]) - set(classes))
    if unknown:
        raise DataError(
            f"{path}/{split} has classes not in train/ ({', '.join(unknown[:5])}); "
            "give both splits the same <wnid> folders"
        )
    files = [f for i, c in enumerate(classes) for f in tree.get(c, [])]
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


def _shard_index(path: Path, split: str, checksum: str) -> ImageIndex:
    root = path if path.is_dir() else path.parent
    shards = _shard_files(path)
    rows: list[tuple[str, str, int, int, int]] = []  # (name, class, shard, offset, size)
    classes: set[str] = set()
    for s, shard in enumerate(shards):
        with tarfile.open(root / shard) as tar:
            for member in tar:
                parts = member_parts(member.name)
                at = next(
                    (i for i in (0, 1) if len(parts) > i + 2 and parts[i] in IMAGENET_SPLITS), None
                )
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


# --- the cache ---------------------------------------------------------------------------------


def _cache_file(cache_dir: Path | None, checksum: str, split: str) -> Path | None:
    if cache_dir is None:
        from ablations.data.cache import default_cache_dir

        cache_dir = default_cache_dir()
    return cache_dir / "imagenet-index" / f"{checksum[:32]}-{split}.npz"


def _save(index: ImageIndex, file: Path) -> None:
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


def _load(file: Path, root: Path) -> ImageIndex:
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
