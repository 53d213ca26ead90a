"""The streaming loader alone, in images/s: no model, just `ImageStream.batches` on the device
(decode, crop, colour noise, normalise, copy), for each decode path, worker count and batch size.

Rows are tidy (one per setting) with the machine's columns from `ablations.env.environment`.
`main(argv)` is the command-line entry (the CLI's `loader-speed` subcommand calls it).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import torch

from ablations import env
from ablations.data.imagenet import build_index
from ablations.data.imagenet_augment import IMAGENET_MEAN, IMAGENET_STD, RECIPES
from ablations.data.loader import Normalizer
from ablations.data.streaming import ImageStream

PATHS = {"cpu-decode": "cpu", "gpu-decode": "gpu"}
Row = dict[str, str | int | float]


def loader_speed(
    data: str | os.PathLike[str] | None,
    *,
    paths: Sequence[str] = ("cpu-decode", "gpu-decode"),
    workers: Sequence[int] | None = None,
    batch_sizes: Sequence[int] = (256,),
    batches: int = 50,
    warmup: int = 5,
    recipe: str = "imagenet-torchvision",
    split: str = "train",
    device: torch.device | None = None,
    seed: int = 0,
) -> list[Row]:
    """images/s of the training stream per (path, workers, batch), timed over `batches` batches
    after `warmup` (worker start-up and the first decode excluded); one row each."""
    dev = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    index = build_index(split, data)
    normalizer = Normalizer.fixed(IMAGENET_MEAN, IMAGENET_STD)
    machine = env.environment(dev)
    rows: list[Row] = []
    for path in paths:
        for n_workers in workers if workers is not None else (env.available_cores(),):
            for batch in batch_sizes:
                stream = ImageStream(
                    index, recipe=RECIPES[recipe], batch_size=batch, seed=seed, device=dev,
                    normalizer=normalizer, decode=PATHS[path], workers=n_workers,  # type: ignore[arg-type]
                )  # fmt: skip
                seconds = _time(stream, warmup=warmup, batches=batches, device=dev)
                rows.append({
                    "path": path, "workers": n_workers, "batch": batch, "recipe": recipe,
                    "images": batch * batches, "seconds": round(seconds, 4),
                    "images_per_s": round(batch * batches / seconds, 1),
                    "dataset": index.describe()["source"], "n_images": len(index), **machine,
                })  # fmt: skip
    return rows


def _time(stream: ImageStream, *, warmup: int, batches: int, device: torch.device) -> float:
    it = stream.batches(0)
    for _ in range(warmup):
        next(it)
    _sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ablate loader-speed", description=__doc__)
    parser.add_argument("--data", help="ImageNet root or shard folder (else ABLATE_DATA_IMAGENET)")
    parser.add_argument("--paths", default="cpu-decode,gpu-decode")
    parser.add_argument("--workers", default="", help="comma list; default: the available cores")
    parser.add_argument("--batch", default="256", help="comma list of batch sizes")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--recipe", default="imagenet-torchvision", choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, help="CSV file to write (else stdout)")
    args = parser.parse_args(argv)
    rows = loader_speed(
        args.data,
        paths=[p for p in args.paths.split(",") if p],
        workers=[int(w) for w in args.workers.split(",")] if args.workers else None,
        batch_sizes=[int(b) for b in args.batch.split(",")],
        batches=args.batches,
        warmup=args.warmup,
        recipe=args.recipe,
    )
    if args.out is None:
        _write_csv(rows, sys.stdout)
    else:
        with open(args.out, "w", newline="") as handle:
            _write_csv(rows, handle)
    return 0


def _write_csv(rows: list[Row], handle: TextIO) -> None:
    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


if __name__ == "__main__":
    raise SystemExit(main())
