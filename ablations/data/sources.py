"""Dataset sources: where the images come from and how they become uint8 arrays.

A source is a path in one of four formats, told apart by what is there (never by a flag):
CIFAR-10's pickled batches (a folder or the original .tar.gz), an ImageFolder tree (a folder or a
tar archive of one, read without extracting), or Fashion-MNIST's idx files. With no path
configured, torchvision downloads CIFAR-10 and Fashion-MNIST and they are read the same way;
"imagefolder" (any ImageFolder tree, for transfer learning) is never downloaded. Images can be
resized and centre-cropped as they are decoded (`Transform`), so images of many sizes become one
array. Decoding is the slow step; `ablations.data.cache` makes sure it runs once per source
content and transform.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import tarfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
from PIL import Image

from ablations.registry import AblationsError

DATASETS: tuple[str, ...] = ("cifar10", "fashion-mnist", "imagefolder")
FORMATS: tuple[str, ...] = ("cifar-pickle", "imagefolder", "imagefolder-tar", "idx")

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_FILES = (*CIFAR_TRAIN, "test_batch", "batches.meta")
CIFAR_SIDE = 32

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

SPLITS = ("train", "test")
_TREE = "an ImageFolder tree with train/ and test/, or a .tar.gz of one"
ACCEPTED = {
    "cifar10": f"a {CIFAR_DIR} folder (or its parent, or cifar-10-python.tar.gz), {_TREE}",
    "fashion-mnist": (
        f"a folder with the four idx files ({', '.join(IDX_FILES.values())}, gzipped or not; "
        f"torchvision's FashionMNIST/raw is one), {_TREE}"
    ),
    "imagefolder": _TREE,
}
_DATASET_FORMATS = {
    "cifar10": ("cifar-pickle", "imagefolder", "imagefolder-tar"),
    "fashion-mnist": ("idx", "imagefolder", "imagefolder-tar"),
    "imagefolder": ("imagefolder", "imagefolder-tar"),
}
_FORMAT_WORDS = {
    "cifar-pickle": "CIFAR-10 pickled batches",
    "idx": "Fashion-MNIST idx files",
    "imagefolder": "an ImageFolder tree",
    "imagefolder-tar": "an ImageFolder tree",
}
# What every image is converted to.
_IMAGE_MODE = {"cifar10": "RGB", "fashion-mnist": "L", "imagefolder": "RGB"}
# The datasets torchvision downloads; "imagefolder" is whatever tree the user has.
_TORCHVISION = {
    "cifar10": ("CIFAR10", CIFAR_DIR),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw"),
}
# Archive members looked at to tell its format: the answer is in the first few of any real
# archive, and reading all 60,000 headers of the CIFAR-10 JPEG tar would cost a second per load.
_SNIFF_MEMBERS = 1000


class DataError(AblationsError):
    """A dataset that cannot be found, recognised or decoded; the message says how to fix it."""


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value, no hash
class ArrayDataset:
    """A whole dataset as uint8 NHWC images and int64 labels, with where it came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str  # an absolute path, or "download:<folder>"
    source_format: str  # one of FORMATS
    checksum: str  # sha256 of the source's content: results record which data they used
    resize: int | None = None  # the decode-time `Transform` the images went through
    crop: int | None = None

    @property
    def source_name(self) -> str:
        """The source as results record it: its file (or folder) name, never the machine's path
        (the format and sha256 identify the content; where it lay is no part of a result)."""
        return source_name(self.source)

    def describe(self) -> dict[str, str | int | None]:
        """The dataset as one flat record (for logs and results rows): the source by name,
        format and sha256 ("checksum"), without the producing machine's path."""
        _, height, width, channels = self.x_train.shape
        return {
            "name": self.name,
            "source": self.source_name,
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
    """`ArrayDataset.source` without its folder: "cifar10-jpeg.tar.gz", or "torchvision
    download" for data downloaded into the cache (an older record's absolute path is cut too)."""
    if source.startswith("download:"):
        return "torchvision download"
    return os.path.basename(source.rstrip("/\\")) or source


@dataclass(frozen=True, eq=False)
class Arrays:
    """What a reader decodes (and the cache stores): the arrays and the class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Transform:
    """How images are prepared as they are decoded: the shorter side resized to `resize` pixels
    (bilinear), then a centred `crop` x `crop` square cut out; exactly torchvision's
    `Resize(resize)` then `CenterCrop(crop)` on PIL images. None skips a step."""

    resize: int | None = None
    crop: int | None = None

    def __post_init__(self) -> None:
        for option in ("resize", "crop"):
            value = getattr(self, option)
            # bool is an int, but resize=True is surely a mistake.
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise DataError(f"{option} must be a whole number of pixels, got {value!r}")
            if value is not None and value < 1:
                raise DataError(f"{option} must be at least 1 pixel, got {value}")
        # The shorter side is exactly `resize` after resizing: a larger crop never fits.
        if self.resize is not None and self.crop is not None and self.crop > self.resize:
            raise DataError(
                f"crop {self.crop} is larger than resize {self.resize} (the shorter side after "
                f"resizing); pass a crop of at most {self.resize} or a larger resize"
            )

    @property
    def identity(self) -> bool:
        return self.resize is None and self.crop is None

    def suffix(self) -> str:
        """What tells this transform's cache files apart ("" for none, so those keep their
        names)."""
        steps = (("resize", self.resize), ("crop", self.crop))
        return "".join(f"-{step}{value}" for step, value in steps if value is not None)

    def apply(self, image: Image.Image, *, name: str, where: str) -> Image.Image:
        if self.resize is not None:
            size = _resized_size(image.size, self.resize)
            if size != image.size:  # torchvision leaves an image of the right size untouched
                image = image.resize(size, Image.Resampling.BILINEAR)
        if self.crop is not None:
            width, height = image.size
            if self.crop > min(width, height):
                raise DataError(
                    f"{where}: {name} is {width}x{height}, smaller than the {self.crop}x"
                    f"{self.crop} crop; pass a crop of at most {min(width, height)} "
                    "(or resize first)"
                )
            # torchvision's rounding (half to even), so the pixels match CenterCrop's exactly.
            top = round((height - self.crop) / 2.0)
            left = round((width - self.crop) / 2.0)
            image = image.crop((left, top, left + self.crop, top + self.crop))
        return image


NO_TRANSFORM = Transform()


def _resized_size(size: tuple[int, int], short: int) -> tuple[int, int]:
    """(width, height) with the shorter side `short`, the longer one scaled and truncated to an
    int, as torchvision's `Resize(short)` computes it."""
    width, height = size
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


@dataclass(frozen=True)
class Source:
    """A located dataset in a known format. `root` holds the format's files; `files` lists the
    ones the reader uses, relative to `root` (empty for an archive, which is used whole)."""

    path: Path  # what was pointed at
    root: Path
    format: str
    archive: bool
    files: tuple[str, ...] = ()


def check_name(name: str) -> None:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


def env_vars(name: str) -> tuple[str, ...]:
    """Environment variables that point at `name`'s data, first match wins."""
    specific = "ABLATE_DATA_" + name.upper().replace("-", "_")
    return (specific, "ABLATE_DATA") if name == "cifar10" else (specific,)


def env_hint(name: str) -> str:
    """The variable an error message suggests setting."""
    return env_vars(name)[-1]


def check_downloadable(name: str) -> None:
    """Refuse, naming the fix, a dataset that has no data configured and no download."""
    if name not in _TORCHVISION:
        raise DataError(
            f"no {name} data configured (it is never downloaded); pass --data (or set "
            f"{env_hint(name)}) to {ACCEPTED[name]}"
        )


def locate(name: str, data: str | os.PathLike[str] | None = None) -> tuple[Path, str] | None:
    """The configured path of `name`'s data and what configured it ("--data" or a variable);
    None when nothing is configured (the caller downloads)."""
    check_name(name)
    if data is not None and os.fspath(data):
        return _absolute(data), "--data"
    for var in env_vars(name):
        if os.environ.get(var):
            return _absolute(os.environ[var]), var
    return None


def resolve_source(name: str, data: str | os.PathLike[str] | None = None) -> Path | None:
    """Where `name` is read from: `data`, else ABLATE_DATA_<NAME> (then ABLATE_DATA for
    cifar10); None means torchvision's download."""
    located = locate(name, data)
    return None if located is None else located[0]


def _absolute(path: str | os.PathLike[str]) -> Path:
    # abspath, not resolve(): normalises "../x" against the working directory, keeps symlinks.
    return Path(os.path.abspath(Path(path).expanduser()))


# --- detection ---------------------------------------------------------------------------------


def detect(path: Path, name: str, *, origin: str = "--data") -> Source:
    """The source at `path` for dataset `name`, its format checked and its files listed."""
    check_name(name)
    if not path.exists():
        raise DataError(
            f"{name} data not found: {path} does not exist (from {origin}); "
            f"point {origin} at {ACCEPTED[name]}"
        )
    found = _probe(path)
    if found is None:
        kind = "file" if path.is_file() else "folder"
        raise DataError(
            f"{path} is no {name} data this reader knows (a {kind}, from {origin}); "
            f"{name} accepts {ACCEPTED[name]}"
        )
    fmt, root = found
    if fmt not in _DATASET_FORMATS[name]:
        raise DataError(
            f"{path} holds {_FORMAT_WORDS[fmt]}, which is not {name} data; "
            f"{name} accepts {ACCEPTED[name]}"
        )
    archive = root.is_file()
    files = () if archive else _used_files(root, fmt)
    return Source(path=path, root=root, format=fmt, archive=archive, files=files)


def _probe(path: Path) -> tuple[str, Path] | None:
    """(format, root) of what is at `path`, from names alone; completeness is checked later, so
    a half-copied dataset gets an error naming the missing file rather than "unknown format"."""
    if path.is_file():
        fmt = _probe_archive(path)
        return None if fmt is None else (fmt, path)
    for root in (path, path / CIFAR_DIR):
        if any((root / f).is_file() for f in CIFAR_FILES):
            return "cifar-pickle", root
    for root in (path, path / "raw", path / "FashionMNIST" / "raw"):
        if any(_idx_file(root, stem) for stem in IDX_FILES.values()):
            return "idx", root
    if any((path / split).is_dir() for split in SPLITS):
        return "imagefolder", path
    return None


def _probe_archive(path: Path) -> str | None:
    try:
        with tarfile.open(path) as tar:
            for i, member in enumerate(tar):
                parts = _parts(member.name)
                if parts and parts[-1] in CIFAR_FILES:
                    return "cifar-pickle"
                if member.isfile() and _split_index(parts) is not None and _is_image(parts[-1]):
                    return "imagefolder-tar"
                if i >= _SNIFF_MEMBERS:
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        return None  # not a (readable) tar archive: reported as an unknown source
    return None


def _used_files(root: Path, fmt: str) -> tuple[str, ...]:
    if fmt == "cifar-pickle":
        missing = [f for f in CIFAR_FILES if not (root / f).is_file()]
        if missing:
            raise DataError(
                f"{root} lacks {', '.join(missing)}; a {CIFAR_DIR} folder holds "
                f"{', '.join(CIFAR_FILES)} (copy them all)"
            )
        return CIFAR_FILES
    if fmt == "idx":
        found = {stem: _idx_file(root, stem) for stem in IDX_FILES.values()}
        missing = [stem for stem, file in found.items() if file is None]
        if missing:
            raise DataError(
                f"{root} lacks {', '.join(f'{m}[.gz]' for m in missing)}; "
                "copy all four Fashion-MNIST idx files there"
            )
        return tuple(file for file in found.values() if file is not None)
    tree = _folder_tree(root)
    _tree_classes(tree, str(root))
    return tuple(n for split in SPLITS for images in tree[split].values() for n in images)


def _idx_file(root: Path, stem: str) -> str | None:
    """The idx file `stem` in `root`: uncompressed if both are there (torchvision keeps both)."""
    for candidate in (stem, stem + ".gz"):
        if (root / candidate).is_file():
            return candidate
    return None


# --- ImageFolder trees -------------------------------------------------------------------------

Tree = dict[str, dict[str, list[str]]]  # split -> class -> image paths under the tree's root


@cache
def _image_extensions() -> frozenset[str]:
    return frozenset(ext.lower() for ext in Image.registered_extensions())


def _is_image(filename: str) -> bool:
    return os.path.splitext(filename)[1].lower() in _image_extensions()


def _parts(member_name: str) -> tuple[str, ...]:
    """An archive member's path parts, without "." and with hidden entries (".DS_Store",
    "._x.jpg" from macOS tar, "__MACOSX") turned into no parts at all."""
    parts = tuple(p for p in PurePosixPath(member_name).parts if p not in (".", "/"))
    return () if any(p.startswith(".") or p == "__MACOSX" for p in parts) else parts


def _split_index(parts: tuple[str, ...]) -> int | None:
    """Where "train"/"test" sits in an image path: 0 at the archive root, 1 under a top folder."""
    for i in (0, 1):
        if len(parts) > i + 2 and parts[i] in SPLITS:
            return i
    return None


def _folder_tree(root: Path) -> Tree:
    tree: Tree = {}
    for split in SPLITS:
        top = root / split
        if top.is_dir():
            classes = sorted(d for d in os.listdir(top) if (top / d).is_dir() and d[0] != ".")
            tree[split] = {c: _images_under(top / c, root) for c in classes}
    return tree


def _images_under(folder: Path, root: Path) -> list[str]:
    found = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if d[0] != "."]
        rel = Path(here).relative_to(root).as_posix()
        found += [f"{rel}/{f}" for f in files if f[0] != "." and _is_image(f)]
    return sorted(found)


def _tree_classes(tree: Tree, where: str) -> tuple[str, ...]:
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


def _group(files: Iterable[str]) -> Tree:
    tree: Tree = {split: {} for split in SPLITS}
    for name in files:
        split, cls = name.split("/", 2)[:2]
        tree[split].setdefault(cls, []).append(name)
    return tree


def _read_tree(
    tree: Tree,
    fetch: Callable[[str], Path | IO[bytes]],
    *,
    mode: str,
    transform: Transform,
    where: str,
) -> Arrays:
    classes = _tree_classes(tree, where)
    names = {split: [n for c in classes for n in sorted(tree[split][c])] for split in SPLITS}
    labels = {
        split: np.repeat(np.arange(len(classes)), [len(tree[split][c]) for c in classes])
        for split in SPLITS
    }
    # One pass over both splits, so that every image is checked against the same size.
    x = _decode_images(
        [*names["train"], *names["test"]], fetch, mode=mode, transform=transform, where=where
    )
    n_train = len(names["train"])
    return Arrays(
        x_train=x[:n_train],
        y_train=labels["train"].astype(np.int64),
        x_test=x[n_train:],
        y_test=labels["test"].astype(np.int64),
        classes=classes,
    )


def _decode_images(
    names: list[str],
    fetch: Callable[[str], Path | IO[bytes]],
    *,
    mode: str,
    transform: Transform,
    where: str,
) -> np.ndarray:
    out: np.ndarray | None = None
    for i, name in enumerate(names):
        pixels = _decode_image(fetch(name), mode=mode, transform=transform, name=name, where=where)
        if out is None:
            out = np.empty((len(names), *pixels.shape), dtype=np.uint8)
        elif pixels.shape != out.shape[1:]:
            raise DataError(
                _size_mismatch(name, pixels, first=(names[0], out[0]), transform=transform,
                               where=where)
            )  # fmt: skip
        out[i] = pixels
    assert out is not None  # _tree_classes guarantees images in both splits
    return out


def _size_mismatch(
    name: str,
    pixels: np.ndarray,
    *,
    first: tuple[str, np.ndarray],
    transform: Transform,
    where: str,
) -> str:
    (h, w), (h0, w0) = pixels.shape[:2], first[1].shape[:2]
    if transform.identity:
        return (
            f"{where}: {name} is {w}x{h} but {first[0]} is {w0}x{h0}; "
            "all images must have one size (resize or remove it)"
        )
    # Only resize without crop gets here: a crop makes every image crop x crop.
    return (
        f"{where}: {name} is {w}x{h} after resizing but {first[0]} is {w0}x{h0}; images of "
        "different aspect ratios need a crop as well to share one size"
    )


def _decode_image(
    src: Path | IO[bytes], *, mode: str, transform: Transform, name: str, where: str
) -> np.ndarray:
    try:
        with Image.open(src) as image:
            converted = image if image.mode == mode else image.convert(mode)
            # Inside the `with`: resizing reads the file, which can still fail as a decode does.
            prepared = transform.apply(converted, name=name, where=where)
            pixels = np.asarray(prepared, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(
            f"{where}: cannot decode {name} as an image ({type(err).__name__}); "
            "replace or remove it"
        ) from None
    return pixels.reshape(*pixels.shape[:2], -1)  # "L" images get their channel axis


def _read_tree_archive(path: Path, *, mode: str, transform: Transform) -> Arrays:
    """An ImageFolder tree straight from a tar archive, at its root or under one top folder."""
    tree: Tree = {}
    blobs: dict[str, bytes] = {}
    prefix: tuple[str, ...] | None = None
    with tarfile.open(path) as tar:
        for member in tar:
            parts = _parts(member.name)
            if prefix is None and (at := _split_index(parts)) is not None:
                prefix = parts[:at]
            if prefix is None or parts[: len(prefix)] != prefix:
                continue
            rel = parts[len(prefix) :]
            if len(rel) < 2 or rel[0] not in SPLITS:
                continue
            images = tree.setdefault(rel[0], {}).setdefault(rel[1], [])
            if member.isfile() and len(rel) > 2 and _is_image(rel[-1]):
                name = "/".join(rel)
                images.append(name)
                blobs[name] = _member_bytes(tar, member)
    return _read_tree(
        tree, lambda n: io.BytesIO(blobs[n]), mode=mode, transform=transform, where=str(path)
    )


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:  # pragma: no cover  (isfile() members always have content)
        raise DataError(f"cannot read archive member {member.name}; recreate the archive")
    with handle:
        return handle.read()


# --- CIFAR-10 pickled batches ------------------------------------------------------------------

# The only globals a CIFAR batch refers to: numpy arrays (pickled by numpy 1 or 2) and bytes.
# Anything else would be code run by pickle, which a data file has no business doing.
_PICKLE_GLOBALS = frozenset(
    [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")]
    + [
        (f"numpy.{core}.multiarray", f)
        for core in ("core", "_core")
        for f in ("_reconstruct", "scalar")
    ]
    + [(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")]
)


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def _unpickle(raw: bytes, *, file: str, where: str) -> Any:
    try:  # encoding="bytes": the batches were pickled by Python 2
        return _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # a damaged pickle can fail with almost any exception type
        raise DataError(
            f"{where}: cannot unpickle {file} ({type(err).__name__}); "
            "replace it with the original CIFAR-10 file"
        ) from None


def _field(record: Any, key: str, *, file: str, where: str) -> Any:
    """`record[key]`, whether the pickle's keys came back as bytes (Python 2) or str."""
    if isinstance(record, dict):
        for k in (key.encode(), key):
            if k in record:
                return record[k]
    raise DataError(f"{where}: {file} has no {key!r}; replace it with the original CIFAR-10 file")


def _cifar_batch(raw: bytes, *, file: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(raw, file=file, where=where)
    data = np.asarray(_field(batch, "data", file=file, where=where))
    labels = np.asarray(_field(batch, "labels", file=file, where=where))
    size = 3 * CIFAR_SIDE * CIFAR_SIDE
    if data.dtype != np.uint8 or data.shape[1:] != (size,) or labels.shape != data.shape[:1]:
        raise DataError(
            f"{where}: {file} is not a CIFAR-10 batch (needs N x {size} uint8 data and N "
            f"labels, has {data.dtype} {data.shape} and {labels.shape[0]} labels); "
            "replace it with the original file"
        )
    images = data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1)  # CHW -> HWC
    return images, labels.astype(np.int64)


def _read_cifar(blobs: Mapping[str, bytes], *, where: str) -> Arrays:
    meta = _unpickle(blobs["batches.meta"], file="batches.meta", where=where)
    names = _field(meta, "label_names", file="batches.meta", where=where)
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    train = [_cifar_batch(blobs[f], file=f, where=where) for f in CIFAR_TRAIN]
    x_test, y_test = _cifar_batch(blobs["test_batch"], file="test_batch", where=where)
    arrays = Arrays(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=np.ascontiguousarray(x_test),
        y_test=y_test,
        classes=classes,
    )
    _check_labels(arrays, where=where)
    return arrays


def _cifar_archive_blobs(path: Path) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            parts = _parts(member.name)
            if member.isfile() and parts and parts[-1] in CIFAR_FILES:
                blobs.setdefault(parts[-1], _member_bytes(tar, member))
    missing = [f for f in CIFAR_FILES if f not in blobs]
    if missing:
        raise DataError(
            f"{path} lacks {', '.join(missing)}; use the complete cifar-10-python.tar.gz"
        )
    return blobs


# --- Fashion-MNIST idx files -------------------------------------------------------------------


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


def _read_idx(root: Path, files: tuple[str, ...], *, where: str) -> Arrays:
    arrays = {
        key: _idx_array(
            (root / file).read_bytes(), ndim=3 if key[0] == "x" else 1, file=file, where=where
        )
        for key, file in zip(IDX_FILES, files, strict=True)
    }
    for split in SPLITS:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise DataError(
                f"{where}: {len(x)} {split} images but {len(y)} labels; "
                "the idx files come from different datasets, copy a matching set"
            )
    result = Arrays(
        x_train=arrays["x_train"][..., None],
        y_train=arrays["y_train"].astype(np.int64),
        x_test=arrays["x_test"][..., None],
        y_test=arrays["y_test"].astype(np.int64),
        classes=FASHION_MNIST_CLASSES,
    )
    _check_labels(result, where=where)
    return result


def _check_labels(arrays: Arrays, *, where: str) -> None:
    for y in (arrays.y_train, arrays.y_test):
        if len(y) and not (y.min() >= 0 and y.max() < len(arrays.classes)):
            raise DataError(
                f"{where}: labels outside 0..{len(arrays.classes) - 1}; "
                "the label files do not match the class list, use the original files"
            )


# --- reading and downloading -------------------------------------------------------------------


def read_source(source: Source, name: str, *, transform: Transform = NO_TRANSFORM) -> Arrays:
    """Decode `source` into arrays, each image through `transform` (the slow step, which the
    cache runs once per content and transform)."""
    where = str(source.root)
    mode = _IMAGE_MODE[name]
    if source.format == "cifar-pickle":
        if source.archive:
            arrays = _read_cifar(_cifar_archive_blobs(source.root), where=where)
        else:
            blobs = {f: (source.root / f).read_bytes() for f in source.files}
            arrays = _read_cifar(blobs, where=where)
        return _transformed(arrays, transform, where=where)
    if source.format == "idx":
        arrays = _read_idx(source.root, source.files, where=where)
        return _transformed(arrays, transform, where=where)
    if source.format == "imagefolder-tar":
        return _read_tree_archive(source.root, mode=mode, transform=transform)
    root = source.root
    return _read_tree(
        _group(source.files), lambda n: root / n, mode=mode, transform=transform, where=where
    )


def _transformed(arrays: Arrays, transform: Transform, *, where: str) -> Arrays:
    """Arrays read whole (pickles, idx files) through `transform`, image by image as PIL sees
    them, so they match what the same transform gives the same images as files."""
    if transform.identity:
        return arrays
    return replace(
        arrays,
        x_train=_transform_all(arrays.x_train, transform, split="train", where=where),
        x_test=_transform_all(arrays.x_test, transform, split="test", where=where),
    )


def _transform_all(x: np.ndarray, transform: Transform, *, split: str, where: str) -> np.ndarray:
    out: np.ndarray | None = None
    for i, pixels in enumerate(x):
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        prepared = transform.apply(image, name=f"{split} image {i}", where=where)
        done = np.asarray(prepared, dtype=np.uint8)
        if out is None:  # all the same size, as the inputs are
            out = np.empty((len(x), *done.shape[:2], x.shape[-1]), dtype=np.uint8)
        out[i] = done.reshape(out.shape[1:])
    return x if out is None else out  # an empty split stays empty


def download(name: str, folder: Path) -> Path:
    """torchvision's copy of `name` under `folder`, fetched the first time only; returns the
    folder holding the original files, which `detect` and `read_source` then read."""
    check_name(name)
    check_downloadable(name)
    class_name, subdir = _TORCHVISION[name]
    target = folder / subdir
    if _complete(target, name):
        return target  # no network, and no pass of torchvision's integrity check
    try:
        import torchvision.datasets  # a slow import, needed only here

        folder.mkdir(parents=True, exist_ok=True)
        getattr(torchvision.datasets, class_name)(str(folder), train=True, download=True)
    except Exception as err:  # offline, HTTP, integrity, archive errors: one remedy for all
        raise DataError(
            f"could not download {name} ({type(err).__name__}; offline?); point --data or "
            f"{env_hint(name)} at a local copy: {ACCEPTED[name]}"
        ) from err
    return target


def _complete(folder: Path, name: str) -> bool:
    try:
        return folder.is_dir() and bool(detect(folder, name).files)
    except DataError:
        return False
