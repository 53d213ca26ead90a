"""`load_dataset`, and the cache that makes every load after the first take seconds.

A source is identified by a sha256 of its content, so results can record exactly which data they
used and a changed copy is never mistaken for the old one. The decoded uint8 arrays are saved
once per (dataset, checksum, resize, crop) as an uncompressed .npz, written atomically; a file
there that does not load and validate is discarded with a warning and rebuilt, never trusted.
Hashing a folder of 60,000 small files takes seconds, so checksums are memoised under a cheap
key of paths, sizes and modification times (checksums.json).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from ablations.data import sources
from ablations.data.arrays import ArrayDataset, Arrays, DataError
from ablations.data.sources import ACCEPTED, Source
from ablations.data.transform import Transform
from ablations.io import write_binary, write_json

CACHE_VERSION = 1  # bump when a reader's output changes, so old cache files are rebuilt
MEMO_ENTRIES = 1000  # checksums.json keeps this many most recent sources
# A file modified this recently may change again within its timestamp's granularity (a few ms
# on some filesystems) without its size or mtime changing; such checksums are not memoised.
RACY_SECONDS = 2.0
_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")


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
    (never for "imagefolder"); decoded once per source content and loaded from `cache_dir` after
    that. `resize` scales each image's shorter side to that many pixels and `crop` then cuts
    out a centred square of that side (torchvision's Resize and CenterCrop), as images are
    decoded, so that images of different sizes become one array."""
    sources.check_name(name)
    transform = Transform(resize=resize, crop=crop)  # checked before any slow step
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    source, label = _find(name, data, cache_dir=cache_dir, download=download)
    checksum = source_checksum(source, cache_dir=cache_dir)
    arrays = _cached_arrays(name, source, checksum, transform=transform, cache_dir=cache_dir)
    if transform.identity:  # a resized dataset is meant to differ from the native shape
        _check_shape(name, arrays, label)
    return ArrayDataset(
        **vars(arrays),
        name=name,
        source=label,
        source_format=source.format,
        checksum=checksum,
        resize=resize,
        crop=crop,
    )


# What each dataset's images are: an ImageFolder tree of other images is refused, not trained on.
# "imagefolder" is any tree, of any one size.
IMAGE_SHAPE = {"cifar10": (32, 32, 3), "fashion-mnist": (28, 28, 1)}


def _check_shape(name: str, arrays: Arrays, where: str) -> None:
    shape = tuple(arrays.x_train.shape[1:])
    if name in IMAGE_SHAPE and shape != IMAGE_SHAPE[name]:
        raise DataError(
            f"{where} holds {'x'.join(map(str, shape))} images; {name} images are "
            f"{'x'.join(map(str, IMAGE_SHAPE[name]))}: is --data the right dataset?"
        )


def _find(
    name: str, data: str | os.PathLike[str] | None, *, cache_dir: Path, download: bool
) -> tuple[Source, str]:
    """The source to read and how results should name it."""
    located = sources.locate(name, data)
    if located is not None:
        path, origin = located
        return sources.detect(path, name, origin=origin), str(path)
    sources.check_downloadable(name)
    if not download:
        raise DataError(
            f"no {name} data configured and downloading is off; point --data or "
            f"{sources.env_hint(name)} at a local copy: {ACCEPTED[name]}"
        )
    folder = cache_dir / "downloads"
    path = sources.download(name, folder)
    return sources.detect(path, name, origin="the download"), f"download:{folder}"


# --- checksums ---------------------------------------------------------------------------------


def source_checksum(source: Source, *, cache_dir: Path) -> str:
    """sha256 of what the reader uses: an archive's bytes, or a folder's files (sorted relative
    paths and contents); memoised in cache_dir/checksums.json while the files stay unchanged."""
    files = _files(source)
    stats = {rel: path.stat() for rel, path in files.items()}
    listing = [str(source.root), [[rel, st.st_size, st.st_mtime_ns] for rel, st in stats.items()]]
    stat_key = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    memo_path = cache_dir / "checksums.json"
    memo = _read_memo(memo_path)
    if stat_key in memo:
        return memo[stat_key]
    checksum = _content_checksum(source, files)
    settled = time.time_ns() - int(RACY_SECONDS * 1e9)
    if all(st.st_mtime_ns < settled for st in stats.values()):
        memo[stat_key] = checksum
        # A read-only cache still serves arrays; the checksum is then just computed each time.
        with contextlib.suppress(OSError):
            write_json(memo_path, dict(list(memo.items())[-MEMO_ENTRIES:]))
    return checksum


def _files(source: Source) -> dict[str, Path]:
    if source.archive:
        return {source.root.name: source.root}
    return {rel: source.root / rel for rel in sorted(source.files)}


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


def _read_memo(path: Path) -> dict[str, str]:
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: it is only a memo, checksums are recomputed
    if not isinstance(memo, dict):
        return {}
    return {k: v for k, v in memo.items() if isinstance(k, str) and isinstance(v, str)}


# --- decoded arrays ----------------------------------------------------------------------------


# The arrays this process loaded last, by cache file and its stat: the runs of one `ablate run`
# share one copy (and, through it, one prepared split: ablations.data.prepare) instead of
# reading the file once per run. A rewritten file has another stat, so it is read again.
_last_loaded: tuple[tuple[Path, int, int], Arrays] | None = None


def _cached_arrays(
    name: str, source: Source, checksum: str, *, transform: Transform, cache_dir: Path
) -> Arrays:
    global _last_loaded
    path = cache_dir / "arrays" / f"{name}-{checksum[:16]}{transform.suffix()}.npz"
    if path.exists():
        if _last_loaded is not None and _last_loaded[0] == _stat_key(path):
            return _last_loaded[1]
        try:
            arrays = _load_arrays(path)
            _last_loaded = _stat_key(path), arrays
            return arrays
        except _StaleCache as err:
            warnings.warn(
                f"discarding corrupt cache file {path} ({err}); decoding {source.path} again",
                stacklevel=3,
            )
            path.unlink(missing_ok=True)
    arrays = sources.read_source(source, name, transform=transform)
    try:
        write_binary(path, lambda handle: _save_arrays(handle, arrays))
    except OSError as err:
        raise DataError(
            f"cannot write the dataset cache {path} ({type(err).__name__}); "
            "set ABLATE_CACHE to a writable folder"
        ) from None
    _last_loaded = _stat_key(path), arrays
    return arrays


def _stat_key(path: Path) -> tuple[Path, int, int]:
    stat = path.stat()
    return path.resolve(), stat.st_mtime_ns, stat.st_size


class _StaleCache(Exception):
    """A cache file that must not be used: unreadable, damaged, or from another version."""


def _save_arrays(handle: IO[bytes], arrays: Arrays) -> None:
    np.savez(
        handle,
        **{key: getattr(arrays, key) for key in _ARRAY_KEYS},
        classes=np.array(arrays.classes, dtype=str),  # a str array: loads without pickle
        version=np.array(CACHE_VERSION),
    )


def _load_arrays(path: Path) -> Arrays:
    try:
        with np.load(path, allow_pickle=False) as npz:
            loaded = {key: npz[key] for key in (*_ARRAY_KEYS, "classes", "version")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise _StaleCache(f"unreadable: {type(err).__name__}") from None
    problem = _cache_problem(loaded)
    if problem:
        raise _StaleCache(problem)
    classes = tuple(str(c) for c in loaded["classes"])
    return Arrays(**{key: loaded[key] for key in _ARRAY_KEYS}, classes=classes)


def _cache_problem(loaded: dict[str, np.ndarray]) -> str | None:
    """Why the loaded arrays are not a dataset this code wrote, or None if they are."""
    if loaded["version"].shape != () or int(loaded["version"]) != CACHE_VERSION:
        return f"cache version {loaded['version']}, expected {CACHE_VERSION}"
    classes = loaded["classes"]
    if classes.ndim != 1 or classes.dtype.kind != "U" or not len(classes):
        return "bad class names"
    for split in ("train", "test"):
        x, y = loaded[f"x_{split}"], loaded[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or y.dtype != np.int64 or y.shape != x.shape[:1]:
            return f"bad {split} arrays"
        if len(y) and not (y.min() >= 0 and y.max() < len(classes)):
            return f"{split} labels out of range"
    if loaded["x_train"].shape[1:] != loaded["x_test"].shape[1:]:
        return "train and test images differ in shape"
    return None
