"""Small ImageFolder subsets of a dataset: a few classes, a few images each, as PNG files
(`out/train/<class>/<i>.png`, `out/test/...`) that `load_dataset` reads back pixel for pixel."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ablations.data.arrays import SPLITS, ArrayDataset, DataError
from ablations.data.cache import load_dataset
from ablations.data.transform import to_image

MANIFEST = "subset.json"  # what the subset was drawn from; not an image, so readers skip it


def write_subset(
    dataset: ArrayDataset,
    *,
    out: Path,
    classes: Sequence[str],
    train_per_class: int,
    test_per_class: int,
    seed: int = 0,
) -> Path:
    """Write `train_per_class` training and `test_per_class` test images of each of `classes`,
    drawn at random with `seed`, as an ImageFolder tree at `out`, which appears whole or not at
    all; returns `out`."""
    out = _free(out)
    folders = _folders(dataset, classes)
    counts = {"train": train_per_class, "test": test_per_class}
    chosen = {split: _draw(dataset, classes, split, counts[split], seed=seed) for split in SPLITS}
    out.parent.mkdir(parents=True, exist_ok=True)
    # A hidden sibling, renamed at the end: an interrupted call leaves no half-written tree.
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        for split, drawn in chosen.items():
            images = dataset.x_train if split == "train" else dataset.x_test
            for cls, indices in drawn.items():
                (tmp / split / folders[cls]).mkdir(parents=True)
                # Zero-padded: the readers order a class's files by name, which is drawing order.
                width = max(4, len(str(len(indices) - 1)))
                for i, index in enumerate(indices):
                    to_image(images[index]).save(tmp / split / folders[cls] / f"{i:0{width}d}.png")
        # Where every image came from, so a subset can be traced to (and redrawn from) its source.
        manifest = {
            "dataset": dataset.describe(),
            "seed": seed,
            "classes": folders,
            "indices": {
                split: {folders[cls]: [int(i) for i in idx] for cls, idx in drawn.items()}
                for split, drawn in chosen.items()
            },
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        os.rename(tmp, out)  # fails (rather than merging) if `out` appeared meanwhile with files
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def make_subset(
    name: str,
    *,
    data: str | os.PathLike[str] | None = None,
    out: Path,
    classes: Sequence[str],
    train_per_class: int,
    test_per_class: int,
    seed: int = 0,
) -> Path:
    """`write_subset` of dataset `name` as `load_dataset` finds it; checks `out` first."""
    _free(out)
    dataset = load_dataset(name, data=data)
    return write_subset(
        dataset, out=out, classes=classes, train_per_class=train_per_class,
        test_per_class=test_per_class, seed=seed,
    )  # fmt: skip


def parse_classes(text: str) -> tuple[str, ...]:
    """The CLI's comma-separated class list: "airplane, bird" -> ("airplane", "bird")."""
    names = tuple(part.strip() for part in text.split(","))
    if not all(names):
        raise DataError(f"empty class name in {text!r}; separate class names with single commas")
    return names


def _free(out: Path) -> Path:
    """`out`, refused if something is there already (a subset is never merged or replaced)."""
    out = Path(out)
    if out.exists():
        raise DataError(f"{out} already exists; choose another --out or remove it")
    return out


def _folders(dataset: ArrayDataset, classes: Sequence[str]) -> dict[str, str]:
    """Class name -> folder name, for valid, distinct `classes`."""
    if not classes:
        raise DataError(f"no classes asked; choose from {', '.join(dataset.classes)}")
    folders: dict[str, str] = {}
    for cls in classes:
        if cls not in dataset.classes:
            raise DataError(
                f"unknown class {cls!r} in {dataset.name}; choose from {', '.join(dataset.classes)}"
            )
        if cls in folders:
            raise DataError(f"class {cls!r} is asked twice; list each class once")
        folder = cls.replace("/", "-").replace("\\", "-")  # "T-shirt/top" is "T-shirt-top"
        # The tree readers skip hidden folders: such a class would silently vanish.
        if folder.startswith(".") or folder in folders.values():
            raise DataError(
                f"class {cls!r} has no folder name of its own ({folder!r}); leave it out"
            )
        folders[cls] = folder
    return folders


def _draw(
    dataset: ArrayDataset, classes: Sequence[str], split: str, count: int, *, seed: int
) -> dict[str, np.ndarray]:
    """Class -> sorted indices of `count` of its `split` images, drawn at random. Each class
    has its own stream, seeded by (seed, label, split): a class's images stay the same when
    other classes are added or removed."""
    if count < 1:
        raise DataError(f"{split} images per class must be at least 1, got {count}")
    labels = dataset.y_train if split == "train" else dataset.y_test
    chosen = {}
    for cls in classes:
        label = dataset.classes.index(cls)
        pool = np.flatnonzero(labels == label)
        if len(pool) < count:
            raise DataError(
                f"{dataset.name} has {len(pool)} {split} images of {cls!r}, fewer than the "
                f"{count} asked; ask for at most {len(pool)} per class"
            )
        rng = np.random.default_rng((seed, label, SPLITS.index(split)))
        chosen[cls] = np.sort(rng.choice(pool, size=count, replace=False))
    return chosen
