"""Dataset sources: where the images are (`locate`), which of four formats they are in, told
apart by what is there, never by a flag (`detect`), how they become uint8 arrays
(`read_source`), and torchvision's download when no path is configured (`download`)."""

from __future__ import annotations

import contextlib
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ablations.data.arrays import Arrays, DataError
from ablations.data.cifar import CIFAR_DIR, CIFAR_FILES, read_cifar
from ablations.data.idx import IDX_FILES, idx_file, read_idx
from ablations.data.imagefolder import (
    SPLITS,
    folder_tree,
    group,
    is_image,
    member_parts,
    read_tree,
    read_tree_archive,
    split_index,
    tree_classes,
)
from ablations.data.transform import Transform, transformed

DATASETS: tuple[str, ...] = ("cifar10", "fashion-mnist", "imagefolder")

_TREE = "an ImageFolder tree with train/ and test/, or a .tar.gz of one"
ACCEPTED = {
    "cifar10": f"a {CIFAR_DIR} folder (or its parent, or cifar-10-python.tar.gz), {_TREE}",
    "fashion-mnist": (
        f"a folder with the four idx files ({', '.join(IDX_FILES.values())}, gzipped or not; "
        f"torchvision's FashionMNIST/raw is one), {_TREE}"
    ),
    "imagefolder": _TREE,
}
# Each dataset's own format, besides the ImageFolder trees every dataset accepts.
_OWN_FORMAT = {"cifar10": "cifar-pickle", "fashion-mnist": "idx", "imagefolder": None}
_IMAGE_MODE = {"cifar10": "RGB", "fashion-mnist": "L", "imagefolder": "RGB"}
_FORMAT_WORDS = {"cifar-pickle": "CIFAR-10 pickled batches", "idx": "Fashion-MNIST idx files"}
# The datasets torchvision downloads; "imagefolder" is whatever tree the user has.
_TORCHVISION = {
    "cifar10": ("CIFAR10", CIFAR_DIR),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw"),
}
# Archive members looked at to tell its format: the answer is in the first few of any real
# archive, and reading all 60,000 headers of the CIFAR-10 JPEG tar would cost a second per load.
_SNIFF_MEMBERS = 1000


@dataclass(frozen=True)
class Source:
    """A located dataset in a known format. `root` holds the format's files; `files` lists the
    ones the reader uses, relative to `root` (empty for an archive, which is used whole)."""

    path: Path  # what was pointed at
    root: Path
    format: str
    files: tuple[str, ...] = ()

    @property
    def archive(self) -> bool:
        return self.root.is_file()


def check_name(name: str) -> None:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


def env_vars(name: str) -> tuple[str, ...]:
    """The variables that point at `name`'s data, first match wins; errors suggest the last."""
    specific = "ABLATE_DATA_" + name.upper().replace("-", "_")
    return (specific, "ABLATE_DATA") if name == "cifar10" else (specific,)


def locate(name: str, data: str | os.PathLike[str] | None = None) -> tuple[Path, str] | None:
    """The configured path of `name`'s data and what configured it ("--data" or a variable);
    None when nothing is configured (the caller downloads)."""
    if data is not None and os.fspath(data):
        return absolute(data), "--data"
    return next(((absolute(os.environ[v]), v) for v in env_vars(name) if os.environ.get(v)), None)


def resolve_source(name: str, data: str | os.PathLike[str] | None = None) -> Path | None:
    """Where `name` is read from: `data`, else a variable; None means torchvision's download."""
    check_name(name)
    located = locate(name, data)
    return None if located is None else located[0]


def absolute(path: str | os.PathLike[str]) -> Path:
    # abspath, not resolve(): normalises "../x" against the working directory, keeps symlinks.
    return Path(os.path.abspath(Path(path).expanduser()))


def detect(path: Path, name: str, *, origin: str = "--data") -> Source:
    """The source at `path` for dataset `name`, its format checked and its files listed."""
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
    if fmt in _FORMAT_WORDS and fmt != _OWN_FORMAT[name]:
        raise DataError(
            f"{path} holds {_FORMAT_WORDS[fmt]}, which is not {name} data; "
            f"{name} accepts {ACCEPTED[name]}"
        )
    return Source(
        path=path, root=root, format=fmt, files=() if root.is_file() else _files(root, fmt)
    )


def _probe(path: Path) -> tuple[str, Path] | None:
    """(format, root) of what is at `path`, from names alone; completeness is checked later, so
    a half-copied dataset gets an error naming the missing file rather than "unknown format"."""
    if path.is_file():
        return _probe_archive(path)
    for root in (path, path / CIFAR_DIR):
        if any((root / f).is_file() for f in CIFAR_FILES):
            return "cifar-pickle", root
    for root in (path, path / "raw", path / "FashionMNIST" / "raw"):
        if any(idx_file(root, stem) for stem in IDX_FILES.values()):
            return "idx", root
    if any((path / split).is_dir() for split in SPLITS):
        return "imagefolder", path
    return None


def _probe_archive(path: Path) -> tuple[str, Path] | None:
    try:
        with tarfile.open(path) as tar:
            for i, member in enumerate(tar):
                parts = member_parts(member.name)
                if parts and parts[-1] in CIFAR_FILES:
                    return "cifar-pickle", path
                if member.isfile() and split_index(parts) is not None and is_image(parts[-1]):
                    return "imagefolder-tar", path
                if i >= _SNIFF_MEMBERS:
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        return None  # not a (readable) tar archive: reported as an unknown source
    return None


def _files(root: Path, fmt: str) -> tuple[str, ...]:
    """The files of a folder source that the reader uses; a missing one is named."""
    if fmt == "cifar-pickle":
        missing = [f for f in CIFAR_FILES if not (root / f).is_file()]
        if missing:
            raise DataError(
                f"{root} lacks {', '.join(missing)}; a {CIFAR_DIR} folder holds "
                f"{', '.join(CIFAR_FILES)} (copy them all)"
            )
        return CIFAR_FILES
    if fmt == "idx":
        found = {stem: idx_file(root, stem) for stem in IDX_FILES.values()}
        missing = [stem for stem, file in found.items() if file is None]
        if missing:
            raise DataError(
                f"{root} lacks {', '.join(f'{m}[.gz]' for m in missing)}; "
                "copy all four Fashion-MNIST idx files there"
            )
        return tuple(file for file in found.values() if file is not None)
    tree = folder_tree(root)
    tree_classes(tree, str(root))
    return tuple(n for split in SPLITS for images in tree[split].values() for n in images)


def read_source(source: Source, name: str, *, transform: Transform) -> Arrays:
    """Decode `source` into arrays, each image through `transform` (the slow step)."""
    root, where, mode = source.root, str(source.root), _IMAGE_MODE[name]
    if source.format == "cifar-pickle":
        return transformed(read_cifar(root, where=where), transform, where=where)
    if source.format == "idx":
        return transformed(read_idx(root, source.files, where=where), transform, where=where)
    if source.format == "imagefolder-tar":
        return read_tree_archive(root, mode=mode, transform=transform)
    return read_tree(
        group(source.files), lambda n: root / n, mode=mode, transform=transform, where=where
    )


def download(name: str, folder: Path, *, allowed: bool) -> Path:
    """The folder of torchvision's copy of `name` under `folder`, fetched the first time only."""
    if name not in _TORCHVISION:
        raise DataError(
            f"no {name} data configured (it is never downloaded); pass --data (or set "
            f"{env_vars(name)[-1]}) to {ACCEPTED[name]}"
        )
    fix = f"point --data or {env_vars(name)[-1]} at a local copy: {ACCEPTED[name]}"
    if not allowed:
        raise DataError(f"no {name} data configured and downloading is off; {fix}")
    class_name, subdir = _TORCHVISION[name]
    target = folder / subdir
    with contextlib.suppress(DataError):  # not (all) there yet: download it
        if detect(target, name).files:
            return target  # no network, and no pass of torchvision's integrity check
    try:
        import torchvision.datasets  # a slow import, needed only here

        folder.mkdir(parents=True, exist_ok=True)
        getattr(torchvision.datasets, class_name)(str(folder), train=True, download=True)
    except Exception as err:  # offline, HTTP, integrity, archive errors: one remedy for all
        raise DataError(
            f"could not download {name} ({type(err).__name__}; offline?); {fix}"
        ) from err
    return target
