"""`ablate evaluate`: a checkpoint trained elsewhere (or one of our runs), evaluated with our
model and our evaluation path (ablations.runners.evaluation.evaluate), one tidy row appended to
results/evaluations.csv (ablations.store.EVALUATIONS).

The images are prepared as the checkpoint was trained, and the row says how (`preprocessing`):
akamaster's CIFAR nets take per-channel ImageNet mean/std at 32x32, torchvision's weights a
resize to 256, a centre crop of 224 and ImageNet mean/std, our runs their own preparation (the
config's input size and the normaliser fitted on the run's training split). Whatever this
measures on the local copy of the data (e.g. CIFAR-10 re-encoded as JPEG) is reported as
measured, with the data's name, format and sha256: the gap to a published error then also
measures how far that copy is from the original images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from ablations import env, store, versions
from ablations.config import TrainConfig, resolve_device
from ablations.data import ArrayDataset, load_dataset
from ablations.data.loader import Normalizer, eval_batches, random_subset, to_nchw
from ablations.data.prepare import prepare_data
from ablations.io import read_json
from ablations.models import ResNet, resolve
from ablations.registry import AblationsError, Variant
from ablations.results import upsert
from ablations.runners.checkpoints import (
    AKAMASTER,
    TORCHVISION,
    Preprocessing,
    Weights,
    load_weights,
)
from ablations.runners.evaluation import evaluate

# --dataset: what the checkpoint is evaluated on, and how our readers load it. "imagenet" is an
# ImageFolder tree (train/ and test/, class folders named by WordNet id: sorted, they are
# torchvision's class order), evaluated on its test/ split.
DATASETS = {"cifar10": "cifar10", "imagenet": "imagefolder", "fashion-mnist": "fashion-mnist"}
DEFAULT_DATASET = {"akamaster": "cifar10", "torchvision": "imagenet"}
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class _Prepared:
    images: Tensor  # uint8 NCHW
    labels: Tensor
    normalizer: Normalizer
    input_size: int


def evaluate_checkpoint(
    variant: str,
    *,
    weights: str,
    dataset: str | None = None,
    data: str | Path | None = None,
    results: Path = Path("results"),
    device: str | torch.device | None = None,
    batch_size: int = 200,
    limit: int | None = None,
    precision: str = "fp32",
) -> pd.DataFrame:
    """Evaluate `weights` as `variant` on the test split of `dataset`; the row, appended to
    results/evaluations.csv. `limit` evaluates a fixed random subset of that many images."""
    dev = resolve_device(device)
    runs_dir = results / store.RUNS_DIR
    config = _run_config(weights, runs_dir)
    name = _dataset_name(weights, dataset, config)
    ds = _load(name, data=data, config=config, weights=weights)
    net = _variant(variant, weights=weights, runs_dir=runs_dir, classes=len(ds.classes))
    state, record = load_weights(weights, variant=net, runs_dir=runs_dir)
    model = ResNet(net)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).split("\n\t", 1)[-1].split("\n")[0]
        raise AblationsError(f"{weights} does not fit {net.name}: {first}") from None
    prepared = _prepare(ds, record.preprocessing, config=config, limit=limit, device=dev)
    env.warn_if_dirty("evaluating a checkpoint")
    loss, top1, top5 = _measure(
        model.to(dev), prepared, batch_size=batch_size, device=dev, precision=precision
    )
    row = _row(
        net, record, ds, prepared, name=name, loss=loss, top1=top1, top5=top5,
        precision=precision, device=dev,
    )  # fmt: skip
    table = store.EVALUATIONS.validate(pd.DataFrame([row]))
    upsert(results / store.EVALUATIONS_FILE, table, store.EVALUATIONS)
    return table


def _run_config(weights: str, runs_dir: Path) -> TrainConfig | None:
    if not weights.startswith("run:"):
        return None
    path = runs_dir / weights.removeprefix("run:") / "config.json"
    if not path.exists():
        raise AblationsError(f"{weights}: no run record at {path.parent}; pass --results")
    return TrainConfig.from_json(read_json(path))


def _dataset_name(weights: str, dataset: str | None, config: TrainConfig | None) -> str:
    if config is not None:
        if dataset is not None and dataset != config.dataset:
            raise AblationsError(
                f"{weights} was trained on {config.dataset}; evaluate it there (drop --dataset)"
            )
        return config.dataset
    fmt = "torchvision" if weights.startswith("torchvision:") else "akamaster"
    name = dataset or DEFAULT_DATASET[fmt]
    if name not in DATASETS:
        raise AblationsError(f"unknown --dataset {name!r}; choose from {', '.join(DATASETS)}")
    return name


def _load(
    name: str, *, data: str | Path | None, config: TrainConfig | None, weights: str
) -> ArrayDataset:
    if config is not None:  # decoded exactly as the run decoded it
        return load_dataset(config.dataset, data=data, resize=config.resize, crop=config.crop)
    prep = TORCHVISION if weights.startswith("torchvision:") else AKAMASTER
    ds = load_dataset(DATASETS[name], data=data, download=False, resize=prep.resize,
                      crop=prep.crop)  # fmt: skip
    if name == "imagenet" and len(ds.classes) != IMAGENET_CLASSES:
        raise AblationsError(
            f"--data holds {len(ds.classes)} classes; ImageNet weights need all "
            f"{IMAGENET_CLASSES} class folders (named by WordNet id) under train/ and test/"
        )
    return ds


def _variant(name: str, *, weights: str, runs_dir: Path, classes: int) -> Variant:
    if weights.startswith("run:"):
        trained = Variant.from_axes(read_json(runs_dir / weights.removeprefix("run:") /
                                              "variant.json"))  # fmt: skip
        if trained.name != name and resolve(name).name != trained.name:
            raise AblationsError(f"{weights} is a {trained.name}, not {name}; pass that variant")
        return trained
    return resolve(name, num_classes=classes)


def _prepare(
    ds: ArrayDataset, prep: Preprocessing, *, config: TrainConfig | None, limit: int | None,
    device: torch.device,
) -> _Prepared:  # fmt: skip
    if config is not None:  # the run's own split, resize and normaliser
        data = prepare_data(replace(config, test_size=limit), ds, device)
        x, y = data.test
        return _Prepared(x, y, data.normalizer, int(x.shape[-1]))
    idx = random_subset(len(ds.x_test), limit, seed=0)
    x = to_nchw(ds.x_test[idx])
    y = torch.from_numpy(ds.y_test[idx])
    return _Prepared(x, y, Normalizer.fixed(prep.mean, prep.std), int(x.shape[-1]))


class _TopFive(nn.Module):
    """The model, counting top-5 hits on the side: `evaluate` stays the one path for loss and
    top-1 error, and the labels of the batch in flight are set by `batches`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.labels: Tensor | None = None
        self.hits = 0

    def forward(self, x: Tensor) -> Tensor:
        logits = self.model(x)
        if self.labels is not None and logits.shape[1] > 5:
            top = logits.topk(5, dim=1).indices
            self.hits += int((top == self.labels[:, None]).any(dim=1).sum())
        return logits

    def batches(self, source: Iterator[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in source:
            self.labels = y
            yield x, y


def _measure(
    model: nn.Module, prepared: _Prepared, *, batch_size: int, device: torch.device,
    precision: str,
) -> tuple[float, float, float]:  # fmt: skip
    counted = _TopFive(model)
    batches = eval_batches(prepared.images, prepared.labels, batch_size=batch_size,
                           device=device, normalizer=prepared.normalizer)  # fmt: skip
    loss, top1 = evaluate(counted, counted.batches(batches), precision=precision)
    top5 = 1 - counted.hits / len(prepared.labels) if _has_top5(model) else math.nan
    return loss, top1, top5


def _has_top5(model: nn.Module) -> bool:
    head = getattr(model, "fc", None)
    return isinstance(head, nn.Linear) and head.out_features > 5


def _row(
    net: Variant, record: Weights, ds: ArrayDataset, prepared: _Prepared, *, name: str,
    loss: float, top1: float, top5: float, precision: str, device: torch.device,
) -> dict[str, Any]:  # fmt: skip
    prep = record.preprocessing.name
    if record.format == "run":  # say which normaliser the run fitted, not just "run"
        prep = f"run:{prepared.normalizer.kind}@{prepared.input_size}"
    trained_by = 0  # a checkpoint trained elsewhere: no trainer version of ours made it
    if record.run_dir is not None:
        trained_by = versions.run_trainer_version(read_json(record.run_dir / "env.json"))
    return {
        "variant": net.name, "weights": record.source, "weights_format": record.format,
        "weights_sha256": record.sha256, "preprocessing": prep,
        "input_size": prepared.input_size, "dataset": name, "split": "test",
        "images": len(prepared.labels), "classes": len(ds.classes), "top1_error": top1,
        "top5_error": top5, "loss": loss, "precision": precision,
        **store.provenance_row(env.environment(device), ds.describe(),
                               trainer_version=trained_by),
    }  # fmt: skip
