"""A tiny ImageNet-layout tree written into a tmp dir: WNID class folders, JPEGs of varied sizes,
a devkit-style flat val/ with torchvision's meta.bin, and tar shards of the same tree."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n01484850")  # deliberately in sorted order here
SIZES = ((300, 260), (257, 400), (500, 333), (280, 280))  # (width, height)
# More classes than top-5 needs (its error is only defined with more than 5), for training and
# checkpoint evaluation tests.
WNIDS_7 = (*WNIDS, "n01491361", "n01494475", "n01496331", "n01498041")


def jpeg(width: int, height: int, *, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=85)
    return out.getvalue()


def members(
    *, train_per_class: int = 4, val_per_class: int = 2, wnids: tuple[str, ...] = WNIDS
) -> dict[str, bytes]:
    """split/wnid/file -> JPEG bytes."""
    files: dict[str, bytes] = {}
    k = 0
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for wnid in wnids:
            for i in range(n):
                w, h = SIZES[k % len(SIZES)]
                files[f"{split}/{wnid}/{wnid}_{i}.JPEG"] = jpeg(w, h, seed=k)
                k += 1
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def write_devkit_root(root: Path, files: dict[str, bytes]) -> list[str]:
    """train/ in class folders, val/ flat with ILSVRC-style names and meta.bin giving their WNIDs
    (the val files shuffled so that name order is not class order); returns the val WNIDs."""
    val = sorted(n for n in files if n.startswith("val/"))
    rng = np.random.default_rng(0)
    shuffled = [val[i] for i in rng.permutation(len(val))]
    wnids = []
    for j, name in enumerate(shuffled, start=1):
        target = root / "val" / f"ILSVRC2012_val_{j:08d}.JPEG"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[name])
        wnids.append(name.split("/")[1])
    write_tree(root, {n: d for n, d in files.items() if n.startswith("train/")})
    torch.save(({w: (w,) for w in WNIDS}, wnids), root / "meta.bin")
    return wnids


def write_shards(folder: Path, files: dict[str, bytes], *, shards: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(files)
    for s in range(shards):
        with tarfile.open(folder / f"imagenet-{s:04d}.tar", "w") as tar:
            for name in names[s::shards]:
                info = tarfile.TarInfo(f"imagenet/{name}")
                info.size = len(files[name])
                tar.addfile(info, io.BytesIO(files[name]))
    return folder


def odd_members(wnid: str = WNIDS[0]) -> dict[str, bytes]:
    """What real ImageNet also holds, in one class of train/: a grayscale JPEG, a CMYK JPEG and
    a PNG named .JPEG (ILSVRC2012 train has a few of each)."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (290, 310, 3), dtype=np.uint8)
    files = {}
    for name, mode, fmt in (("gray", "L", "JPEG"), ("cmyk", "CMYK", "JPEG"), ("png", "RGB", "PNG")):
        out = io.BytesIO()
        Image.fromarray(pixels).convert(mode).save(out, format=fmt)
        files[f"train/{wnid}/{wnid}_{name}.JPEG"] = out.getvalue()
    return files
