"""`load_dataset`, and the cache that makes every load after the first take seconds: a source is
known by the sha256 of its content (memoised in checksums.json under a key of paths, sizes and
modification times), and its decoded arrays are saved once per (dataset, checksum, transform)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
import zipfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from ablations.data import sources
from ablations.data.arrays import SPLITS, ArrayDataset, Arrays, DataError, label_problem
from ablations.data.sources import Source
from ablations.data.transform import Transform
from ablations.io import write_binary, write_json

CACHE_VERSION = 1  # bump when a reader's output changes, so old cache files are rebuilt
MEMO_ENTRIES = 1000  # checksums.json keeps this many most recent sources
# A file modified this recently may change again within its timestamp's granularity (a few ms
# on some filesystems) without its size or mtime changing; such checksums are not memoised.
RACY_SECONDS = 2.0
_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")
# What each dataset's images are: an ImageFolder tree of other images is refused, not trained on.
# "imagefolder" is any tree, of any one size.
IMAGE_SHAPE = {"cifar10": (32, 32, 3), "fashion-mnist": (28, 28, 1)}


def default_cache_dir() -> Path:
    """$ABLATE_CACHE, else $XDG_CACHE_HOME/resnet-ablations, else ~/.cache/resnet-ablations."""
    if os.environ.get("ABLATE_CACHE"):
        return sources.absolute(os.environ["ABLATE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "resnet-ablations"


def load_dataset(
    name: str,
    *,
    data: str | os.PathLike[str] | None = None,
    cache_dir: Path | None = None,
    download: bool = True,
    resize: int | None = None,
    crop: int | None = None,
) -> ArrayDataset:
    """Dataset `name` ("cifar10", "fashion-mnist" or "imagefolder") as uint8 arrays: from
    `data`, else $ABLATE_DATA_<NAME> (or $ABLATE_DATA for cifar10), else torchvision's download
    (never for "imagefolder"). `resize` scales each image's shorter side and `crop` then cuts
    out a centred square (torchvision's Resize and CenterCrop) as images are decoded, so that
    images of different sizes become one array."""
    sources.check_name(name)
    transform = Transform(resize=resize, crop=crop)  # checked before any slow step
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    located = sources.locate(name, data)
    if located is None:
        folder = cache_dir / "downloads"
        path, origin = sources.download(name, folder, allowed=download), "the download"
        label = f"download:{folder}"
    else:
        (path, origin), label = located, str(located[0])
    source = sources.detect(path, name, origin=origin)
    checksum = source_checksum(source, cache_dir=cache_dir)
    arrays = _cached_arrays(
        cache_dir / "arrays" / f"{name}-{checksum[:16]}{transform.suffix()}.npz",
        source,
        read=lambda: sources.read_source(source, name, transform=transform),
    )
    shape = tuple(arrays.x_train.shape[1:])
    # A resized dataset is meant to differ from the native shape.
    if transform.identity and name in IMAGE_SHAPE and shape != IMAGE_SHAPE[name]:
        raise DataError(
            f"{label} holds {'x'.join(map(str, shape))} images; {name} images are "
            f"{'x'.join(map(str, IMAGE_SHAPE[name]))}: is --data the right dataset?"
        )
    return ArrayDataset(
        **vars(arrays),
        name=name,
        source=label,
        source_format=source.format,
        checksum=checksum,
        resize=resize,
        crop=crop,
    )


def source_checksum(source: Source, *, cache_dir: Path) -> str:
    """sha256 of what the reader uses: an archive's bytes, or a folder's files (sorted relative
    paths and contents); memoised in cache_dir/checksums.json while the files stay unchanged."""
    root = source.root
    files = {root.name: root} if source.archive else {f: root / f for f in sorted(source.files)}
    stats = {rel: path.stat() for rel, path in files.items()}
    listing = [str(source.root), [[rel, st.st_size, st.st_mtime_ns] for rel, st in stats.items()]]
    stat_key = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    memo_path = cache_dir / "checksums.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}  # missing or damaged: it is only a memo, checksums are recomputed
    memo = memo if isinstance(memo, dict) else {}
    if isinstance(memo.get(stat_key), str):
        return str(memo[stat_key])
    checksum = _content_checksum(source, files)
    settled = time.time_ns() - int(RACY_SECONDS * 1e9)
    if all(st.st_mtime_ns < settled for st in stats.values()):
        memo[stat_key] = checksum
        # A read-only cache still serves arrays; the checksum is then just computed each time.
        with contextlib.suppress(OSError):
            write_json(memo_path, dict(list(memo.items())[-MEMO_ENTRIES:]))
    return checksum


def _content_checksum(source: Source, files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    if source.archive:
        with open(source.root, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    for rel, path in files.items():  # sorted by relative path: independent of where it lives
        content = path.read_bytes()
        # Length-prefixed, so no two different folders can produce the same byte stream.
        digest.update(rel.encode() + b"\0" + len(content).to_bytes(8, "big"))
        digest.update(content)
    return digest.hexdigest()


class _StaleCache(Exception):
    """A cache file that must not be used: unreadable, damaged, or from another version."""


def _cached_arrays(path: Path, source: Source, *, read: Callable[[], Arrays]) -> Arrays:
    """The arrays at `path`; a missing file, or one that does not validate, is rebuilt."""
    if path.exists():
        try:
            return _load_arrays(*_stat_key(path))
        except _StaleCache as err:
            warnings.warn(
                f"discarding corrupt cache file {path} ({err}); decoding {source.path} again",
                stacklevel=3,
            )
            path.unlink(missing_ok=True)
    arrays = read()
    try:
        write_binary(
            path,
            lambda handle: np.savez(
                handle,
                **{key: getattr(arrays, key) for key in _ARRAY_KEYS},
                classes=np.array(arrays.classes, dtype=str),  # a str array: loads without pickle
                version=np.array(CACHE_VERSION),
            ),
        )
    except OSError as err:
        raise DataError(
            f"cannot write the dataset cache {path} ({type(err).__name__}); "
            "set ABLATE_CACHE to a writable folder"
        ) from None
    return _load_arrays(*_stat_key(path))


def _stat_key(path: Path) -> tuple[Path, int, int]:
    stat = path.stat()
    return path.resolve(), stat.st_mtime_ns, stat.st_size


# One file's arrays, by its stat: the runs of one `ablate run` share one copy (and, through it,
# one prepared split: ablations.data.prepare), while a rewritten file is read again.
@lru_cache(maxsize=1)
def _load_arrays(path: Path, mtime_ns: int, size: int) -> Arrays:
    try:
        with np.load(path, allow_pickle=False) as npz:
            loaded = {key: npz[key] for key in (*_ARRAY_KEYS, "classes", "version")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise _StaleCache(f"unreadable: {type(err).__name__}") from None
    version, classes = loaded.pop("version"), loaded.pop("classes")
    if version.shape != () or int(version) != CACHE_VERSION:
        raise _StaleCache(f"cache version {version}, expected {CACHE_VERSION}")
    if classes.ndim != 1 or classes.dtype.kind != "U" or not len(classes):
        raise _StaleCache("bad class names")
    for split in SPLITS:
        x, y = loaded[f"x_{split}"], loaded[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or y.dtype != np.int64 or y.shape != x.shape[:1]:
            raise _StaleCache(f"bad {split} arrays")
    if loaded["x_train"].shape[1:] != loaded["x_test"].shape[1:]:
        raise _StaleCache("train and test images differ in shape")
    arrays = Arrays(**loaded, classes=tuple(str(c) for c in classes))
    problem = label_problem(arrays)
    if problem:
        raise _StaleCache(problem)
    return arrays
