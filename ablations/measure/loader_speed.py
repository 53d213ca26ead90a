"""`ablate loader-speed`: the streaming loader alone, in images/s (`ImageStream.batches` on the
device, no model), one tidy row per decode path, worker count and batch size. A DataLoader's
workers each decode a batch at once, so batches come in rounds of one per worker: the clock
starts and stops at a round's end (`whole_rounds`), else it would count batches decoded before
it started."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import partial
from itertools import product

import torch

from ablations.data.loader import Normalizer
from ablations.measure import timed
from ablations.results import provenance

PATHS = {"cpu-decode": "cpu", "gpu-decode": "gpu"}
MIN_ROUNDS = 3  # timed rounds at the least: a round's edges are uneven
Row = dict[str, str | int | float]


def whole_rounds(*, warmup: int, batches: int, workers: int, ahead: int) -> tuple[int, int]:
    """(untimed, timed) batches handed out: the `warmup` and `batches` asked for, rounded up to
    whole rounds of `workers` batches (0 workers: one batch a round, read in this process), the
    timed ones to `MIN_ROUNDS` at the least. The loader has read `ahead` batches more than it has
    handed out (`prefetched` reads one ahead on CUDA), so the warm-up hands out that many fewer
    and ends as a round does."""
    per_round = max(1, workers)
    untimed = math.ceil((warmup + ahead) / per_round) * per_round - ahead
    return untimed, max(MIN_ROUNDS, math.ceil(batches / per_round)) * per_round


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
    """A row per (path, workers, batch): images/s over `batches` batches after `warmup`, both
    rounded up to whole rounds of the workers (`whole_rounds`); `images` counts those timed."""
    dev = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # The streaming stack loads when measured, not when the CLI lists this command.
    from ablations.imagenet.augment import IMAGENET_MEAN, IMAGENET_STD, RECIPES
    from ablations.imagenet.index import build_index
    from ablations.imagenet.prefetch import ahead
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
        untimed, steps = whole_rounds(warmup=warmup, batches=batches, workers=n_workers,
                                      ahead=ahead(dev))  # fmt: skip
        seconds = timed(partial(next, stream.batches(0)), device=dev, steps=steps, warmup=untimed)
        rows.append({
            "path": path, "workers": n_workers, "batch": batch, "recipe": recipe,
            "images": batch * steps, "seconds": round(seconds, 4),
            "images_per_s": round(batch * steps / seconds, 1),
            "dataset": index.describe()["source"], "n_images": len(index), **machine,
        })  # fmt: skip
    return rows
