"""Tiny datasets in every format `ablations.data` reads, for tests: plain functions that write
into a given folder and return the arrays they wrote (as the reader should decode them: classes
sorted for ImageFolder trees, images sorted by file name within a class).

    from tiny_datasets import write_imagefolder
    tiny = write_imagefolder(tmp_path / "tree", ext="png")
    assert (load_dataset("cifar10", data=tmp_path / "tree").x_train == tiny.x_train).all()
"""

from __future__ import annotations

import gzip
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Tiny:
    """What a tiny dataset holds: uint8 NHWC images, int64 labels, class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]


def images(n: int, *, height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """`n` smooth random images (a colour, two ramps and mild noise): every pixel differs, so a
    transposed or reordered decode shows, and JPEG keeps them within a few levels."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 196, size=(n, 1, 1, channels))
    ramp_y = np.linspace(-40, 40, height)[None, :, None, None] * rng.choice([-1, 1], (n, 1, 1, 1))
    ramp_x = np.linspace(-20, 20, width)[None, None, :, None]
    noise = rng.integers(-6, 7, size=(n, height, width, channels))
    return np.clip(base + ramp_y + ramp_x + noise, 0, 255).astype(np.uint8)


def tiny(
    classes: tuple[str, ...],
    *,
    n_train: int,
    n_test: int,
    height: int,
    width: int,
    channels: int,
    seed: int = 0,
) -> Tiny:
    """Arrays with `n_train` / `n_test` images per class, grouped by class in `classes` order."""
    k = len(classes)
    return Tiny(
        x_train=images(n_train * k, height=height, width=width, channels=channels, seed=seed),
        y_train=np.repeat(np.arange(k), n_train).astype(np.int64),
        x_test=images(n_test * k, height=height, width=width, channels=channels, seed=seed + 1),
        y_test=np.repeat(np.arange(k), n_test).astype(np.int64),
        classes=classes,
    )


def write_cifar_batches(
    parent: Path,
    *,
    classes: tuple[str, ...] = CIFAR10_CLASSES[:2],
    per_class: int = 10,
    test_per_class: int = 1,
    seed: int = 0,
) -> Tiny:
    """`parent/cifar-10-batches-py` as torchvision downloads it: 32x32 images, 5 training
    batches of `per_class` / 5 images per class, a test batch of `test_per_class` per class,
    batches.meta; bytes keys, as the Python 2 originals load with encoding="bytes"."""
    data = tiny(
        classes, n_train=per_class, n_test=test_per_class, height=32, width=32, channels=3,
        seed=seed,
    )  # fmt: skip
    # Interleave the classes (a, b, a, b, ...) so each batch mixes them, as the real ones do.
    order = np.argsort(np.arange(len(data.y_train)) % per_class, kind="stable")
    data = Tiny(data.x_train[order], data.y_train[order], data.x_test, data.y_test, classes)
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = np.array_split(np.arange(len(data.y_train)), 5)
    for i, index in enumerate(batches, start=1):
        _pickle(folder / f"data_batch_{i}", data.x_train[index], data.y_train[index])
    _pickle(folder / "test_batch", data.x_test, data.y_test)
    meta = {b"label_names": [c.encode() for c in classes], b"num_cases_per_batch": 2}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return data


def _pickle(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # NHWC -> N x 3072 in CHW order
    record = {b"batch_label": path.name.encode(), b"labels": [int(v) for v in y], b"data": flat}
    path.write_bytes(pickle.dumps(record, protocol=2))


def write_imagefolder(
    root: Path,
    *,
    ext: str = "png",
    mode: str = "RGB",
    classes: tuple[str, ...] = ("cat", "dog"),
    n_train: int = 3,
    n_test: int = 2,
    height: int = 32,
    width: int = 32,
    seed: int = 0,
) -> Tiny:
    """`root/train/<class>/NNNN.<ext>` and `root/test/<class>/...`; the arrays returned are the
    pixels before encoding (exact for png, approximate for jpg)."""
    classes = tuple(sorted(classes))
    channels = 1 if mode == "L" else 3
    data = tiny(classes, n_train=n_train, n_test=n_test, height=height, width=width,
                channels=channels, seed=seed)  # fmt: skip
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        for i, (pixels, label) in enumerate(zip(x, y, strict=True)):
            number = i - int(np.searchsorted(y, label))  # counted within the class
            write_image(root / split / classes[label] / f"{number:04d}.{ext}", pixels)
    return data


def write_image(path: Path, pixels: np.ndarray) -> None:
    """One image file; the format follows the extension (JPEG at quality 95, no subsampling)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=95, subsampling=0)
    else:
        image.save(path)


def write_tar(folder: Path, archive: Path, *, top: str | None = None) -> Path:
    """A tar archive (gzipped for .gz/.tgz) of `folder`'s contents, at the archive's root or
    under one `top` folder."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    gzipped = archive.suffix in (".gz", ".tgz")
    with tarfile.open(archive, "w:gz" if gzipped else "w") as tar:
        for child in sorted(folder.iterdir()):
            tar.add(child, arcname=f"{top}/{child.name}" if top else child.name)
    return archive


def write_idx(
    folder: Path, *, gz: bool = True, n_train: int = 6, n_test: int = 4, seed: int = 0
) -> Tiny:
    """The four Fashion-MNIST idx files (28x28 images, labels 0..9) in `folder`."""
    rng = np.random.default_rng(seed)
    data = Tiny(
        x_train=rng.integers(0, 256, size=(n_train, 28, 28, 1), dtype=np.uint8),
        y_train=rng.integers(0, 10, size=n_train).astype(np.int64),
        x_test=rng.integers(0, 256, size=(n_test, 28, 28, 1), dtype=np.uint8),
        y_test=rng.integers(0, 10, size=n_test).astype(np.int64),
        classes=FASHION_MNIST_CLASSES,
    )
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in (
        ("train-images-idx3-ubyte", data.x_train[..., 0]),
        ("train-labels-idx1-ubyte", data.y_train),
        ("t10k-images-idx3-ubyte", data.x_test[..., 0]),
        ("t10k-labels-idx1-ubyte", data.y_test),
    ):
        raw = idx_bytes(array.astype(np.uint8))
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return data


def idx_bytes(array: np.ndarray) -> bytes:
    """`array` (uint8) in idx format: magic 0, 0, 0x08, ndim; big-endian sizes; the data."""
    header = bytes((0, 0, 8, array.ndim)) + np.array(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array).tobytes()


def write_mixed_imagefolder(
    root: Path,
    *,
    sizes: tuple[tuple[int, int], ...] = ((20, 31), (31, 17), (12, 15), (40, 40)),
    classes: tuple[str, ...] = ("cat", "dog"),
    n_train: int = 3,
    n_test: int = 2,
    seed: int = 0,
) -> dict[str, list[tuple[Path, int]]]:
    """An RGB PNG ImageFolder tree whose images cycle through `sizes` (height, width); returns
    each split's (file, label) pairs in reading order (classes sorted, then file names), for
    tests that decode the files themselves (say with torchvision) to compare."""
    classes = tuple(sorted(classes))
    files: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    count = 0
    for split, n in (("train", n_train), ("test", n_test)):
        for label, cls in enumerate(classes):
            for i in range(n):
                height, width = sizes[count % len(sizes)]
                pixels = images(1, height=height, width=width, channels=3, seed=seed + count)[0]
                path = root / split / cls / f"{i:04d}.png"
                write_image(path, pixels)
                files[split].append((path, label))
                count += 1
    return files
