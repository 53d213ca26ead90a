"""`ablate loader-speed`: the streaming loader alone, in images/s (`ImageStream.batches` on the
device, no model), one tidy row per decode path, worker count and batch size."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from itertools import product

import torch

from ablations.data.loader import Normalizer
from ablations.measure import timed
from ablations.results import provenance

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
    device: torch.device | None = None,
) -> list[Row]:
    """A row per (path, workers, batch): images/s over `batches` batches after `warmup`."""
    dev = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # The streaming stack loads when measured, not when the CLI lists this command.
    from ablations.imagenet.augment import IMAGENET_MEAN, IMAGENET_STD, RECIPES
    from ablations.imagenet.index import build_index
    from ablations.imagenet.streaming import ImageStream

    index = build_index("train", data)
    normalizer = Normalizer.fixed(IMAGENET_MEAN, IMAGENET_STD)
    machine = provenance.environment(dev)
    rows: list[Row] = []
    counts = workers if workers is not None else (provenance.available_cores(),)
    for path, n_workers, batch in product(paths, counts, batch_sizes):
        stream = ImageStream(
            index, recipe=RECIPES[recipe], batch_size=batch, seed=0, device=dev,
            normalizer=normalizer, decode=PATHS[path], workers=n_workers,  # type: ignore[arg-type]
        )  # fmt: skip
        seconds = timed(partial(next, stream.batches(0)), device=dev, steps=batches, warmup=warmup)
        rows.append({
            "path": path, "workers": n_workers, "batch": batch, "recipe": recipe,
            "images": batch * batches, "seconds": round(seconds, 4),
            "images_per_s": round(batch * batches / seconds, 1),
            "dataset": index.describe()["source"], "n_images": len(index), **machine,
        })  # fmt: skip
    return rows
