"""Write an ImageNet-layout tree of photo-sized JPEGs for measuring the streaming loader where no
ImageNet is at hand: `train/<wnid>/*.JPEG` and `val/<wnid>/*.JPEG`, every image a CIFAR-10
picture upscaled (bicubic) to WIDTHxHEIGHT with a little pixel noise, saved at QUALITY.

Decoding cost depends on pixel count and on how much detail the JPEG holds: an upscaled 32x32
picture holds less than a photograph, so a decoder reads these somewhat faster than real ImageNet
images of the same size. Numbers measured on this tree are a rough guide (an upper bound per
core), labelled with this tree's description, never ImageNet's.

    python bench/synthetic_imagenet.py --out /tmp/synthetic-imagenet --data $ABLATE_DATA
    ablate loader-speed --data /tmp/synthetic-imagenet --paths cpu-decode --workers 1,2
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ablations.data import load_dataset

WIDTH, HEIGHT, QUALITY = 500, 375, 90  # a common ImageNet photo size; a typical camera quality
NOISE = 4.0  # std of the added pixel noise (0-255 scale), so that blocks are not flat


def synthetic_jpeg(picture: np.ndarray, *, rng: np.random.Generator) -> bytes:
    """One CIFAR picture (32x32x3 uint8) as a WIDTHxHEIGHT JPEG."""
    big = np.asarray(Image.fromarray(picture).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC))
    noisy = np.clip(big + rng.normal(0, NOISE, big.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(noisy).save(out, format="JPEG", quality=QUALITY)
    return out.getvalue()


def write_tree(
    out: Path, *, data: str | None, classes: int, train_per_class: int, val_per_class: int
) -> int:
    """The tree under `out` (class k is CIFAR class k % 10); returns the number of images."""
    pictures = load_dataset("cifar10", data=data).x_train
    rng = np.random.default_rng(0)
    k = 0
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = out / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                picture = pictures[k % len(pictures)]
                (folder / f"n{c:08d}_{i}.JPEG").write_bytes(synthetic_jpeg(picture, rng=rng))
                k += 1
    return k


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", help="CIFAR-10 path (default: $ABLATE_DATA, else download)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--val-per-class", type=int, default=10)
    args = parser.parse_args(argv)
    n = write_tree(
        args.out, data=args.data, classes=args.classes,
        train_per_class=args.train_per_class, val_per_class=args.val_per_class,
    )  # fmt: skip
    print(f"{args.out}: {n} JPEGs of {WIDTH}x{HEIGHT} at quality {QUALITY}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
