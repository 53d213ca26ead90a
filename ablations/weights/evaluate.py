"""`ablate evaluate`: a checkpoint trained elsewhere, or one of our runs, evaluated with our model
and evaluation path into results/evaluations.csv. Its images are prepared as it was trained; the
row names that preparation, the crops, and the local data's name and sha256."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from ablations import rundir, versions
from ablations.config import EVAL_CROPS, STREAM_DATASETS, TrainConfig, resolve_device
from ablations.data import load_dataset
from ablations.data.image_index import ImageIndex, sample_index
from ablations.data.loader import Normalizer, Views, eval_batches, random_subset, to_nchw
from ablations.data.prepare import prepare_data
from ablations.models import ResNet, resolve
from ablations.registry import AblationsError, Variant
from ablations.results import collect, provenance, schemas
from ablations.results.table import upsert
from ablations.train.evaluation import Metrics, evaluate_metrics
from ablations.train.steps import tf32_for, use_device
from ablations.weights import (
    PREPROCESSING,
    Preprocessing,
    Weights,
    load_weights,
    parse,
    weights_file,
)

# --dataset: ImageNet is streamed and evaluated on its val split, the others decoded into
# arrays and evaluated on their test split.
DATASETS = ("cifar10", "imagenet", "fashion-mnist")
DEFAULT_DATASET = {"akamaster": "cifar10", "file": "cifar10", "torchvision": "imagenet"}


@dataclass(frozen=True)
class _Prepared:
    """The split a checkpoint is evaluated on: its batches, and what its row says."""

    batches: Iterator[tuple[Views, Tensor]]
    images: int
    classes: int
    preprocessing: str  # a run's names the normaliser it fitted, not just "run"
    input_size: int
    split: str
    data: Mapping[str, Any]  # source, source_format, checksum


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
    crops: str = "center",
) -> pd.DataFrame:
    """Evaluate `weights` as `variant` on the test split of `dataset` (ImageNet: its val split,
    with the `crops` protocol); the row, appended to results/evaluations.csv. `limit` evaluates
    a fixed random subset of that many images."""
    dev = resolve_device(device)
    use_device(dev)
    runs_dir = results / schemas.RUNS_DIR
    fmt, ref = parse(weights)
    run = runs_dir / ref if fmt == "run" else None
    if run is not None and not rundir.is_started(run):
        raise AblationsError(f"{weights}: no run record at {run}; pass --results")
    config = None if run is None else TrainConfig.from_json(rundir.config(run))
    name = _dataset_name(weights, fmt, dataset, config)
    if crops not in EVAL_CROPS:
        raise AblationsError(f"unknown --crops {crops!r}; choose from {', '.join(EVAL_CROPS)}")
    if crops != "center" and name not in STREAM_DATASETS:
        raise AblationsError(
            f"--crops {crops} is an ImageNet test protocol; {name} is evaluated on its whole "
            "images: drop --crops"
        )
    # Before the data: a refused net or a missing file reads no image (ImageNet's val is 50k).
    weights_file(weights, variant=resolve(variant), runs_dir=runs_dir)
    prep = PREPROCESSING["akamaster" if fmt == "file" else fmt]  # load_weights refuses a bare file
    if config is not None:
        prepared = _prepare_run(config, data, limit, dev, crops=crops, batch_size=batch_size)
    elif name in STREAM_DATASETS:
        prepared = _prepare_stream(prep, data, limit, dev, crops=crops, batch_size=batch_size)
    else:
        prepared = _prepare_arrays(name, prep, data, limit, dev, batch_size=batch_size)
    net = _variant(variant, weights=weights, run=run, classes=prepared.classes)
    state, record = load_weights(weights, variant=net, runs_dir=runs_dir)
    head = state.get("fc.weight")
    if record.format != "run" and head is not None and head.shape[0] != prepared.classes:
        raise AblationsError(
            f"--data holds {prepared.classes} classes but {record.source} has {head.shape[0]} "
            f"outputs; point --data at a copy with all {head.shape[0]} classes (ImageNet: every "
            "WordNet-id folder under train/)"
        )
    model = ResNet(net)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).split("\n\t", 1)[-1].split("\n")[0]
        raise AblationsError(f"{weights} does not fit {net.name}: {first}") from None
    provenance.warn_if_dirty("evaluating a checkpoint")
    metrics = _metrics(model.to(dev), prepared.batches, precision=precision)
    row = _row(net, record, prepared, name=name, metrics=metrics, precision=precision,
               device=dev, run=run) | {"crops": crops}  # fmt: skip
    table = schemas.EVALUATIONS.validate(pd.DataFrame([row]))
    upsert(results / schemas.EVALUATIONS_FILE, table, schemas.EVALUATIONS)
    return table


def _metrics(model: ResNet, batches: Iterator[tuple[Views, Tensor]], *, precision: str) -> Metrics:
    """The metrics under `precision`'s TF32 flags, restored afterwards. PyTorch allows TF32 in
    cuDNN by default: an "fp32" row would otherwise hold TF32 convolutions' error."""
    with tf32_for(precision):
        return evaluate_metrics(model, batches, precision=precision)


def _dataset_name(weights: str, fmt: str, dataset: str | None, config: TrainConfig | None) -> str:
    if config is not None:
        if dataset is not None and dataset != config.dataset:
            raise AblationsError(
                f"{weights} was trained on {config.dataset}; evaluate it there (drop --dataset)"
            )
        return config.dataset
    name = dataset or DEFAULT_DATASET[fmt]
    if name not in DATASETS:
        raise AblationsError(f"unknown --dataset {name!r}; choose from {', '.join(DATASETS)}")
    return name


def _prepare_run(
    config: TrainConfig, data: str | Path | None, limit: int | None, device: torch.device, *,
    crops: str, batch_size: int,
) -> _Prepared:  # fmt: skip
    """A run's held-out split (arrays: test, streams: val), prepared as its training did."""
    run = prepare_data(replace(config, device=device.type, test_size=limit), data, device)
    split = run.splits[-1]
    record = run.record
    images, described = int(record[f"{split}_images"]), record
    if config.stream is not None:
        # A stream's config subsets val by class, not by count: `limit` samples the val index
        # here, and the row names that listing (the images evaluated, as for published weights).
        from ablations.imagenet.prepare import StreamData

        assert isinstance(run, StreamData)
        run = replace(run, val=run.val if limit is None else sample_index(run.val, limit, seed=0))
        images, described = len(run.val), _listing(run.val)
    batches = run.eval_batches(split, crops=crops, batch_size=batch_size)
    size = int(record["input_size"])
    return _Prepared(batches, images, run.num_classes, f"run:{record['normalize']}@{size}", size,
                     split, described)  # fmt: skip


def _prepare_arrays(
    name: str, prep: Preprocessing, data: str | Path | None, limit: int | None,
    device: torch.device, *, batch_size: int,
) -> _Prepared:  # fmt: skip
    """The test split decoded into arrays, with the checkpoint's preprocessing."""
    ds = load_dataset(name, data=data, download=False, resize=prep.resize,
                      crop=prep.crop)  # fmt: skip
    idx = random_subset(len(ds.x_test), limit, seed=0)
    x, y = to_nchw(ds.x_test[idx]), torch.from_numpy(ds.y_test[idx])
    normalizer = Normalizer.fixed(prep.mean, prep.std)
    batches = eval_batches(x, y, batch_size=batch_size, device=device, normalizer=normalizer)
    return _Prepared(batches, len(y), len(ds.classes), prep.name, int(x.shape[-1]), "test",
                     ds.describe())  # fmt: skip


def _prepare_stream(
    prep: Preprocessing, data: str | Path | None, limit: int | None, device: torch.device, *,
    crops: str, batch_size: int,
) -> _Prepared:  # fmt: skip
    """ImageNet's val split, streamed with the checkpoint's preprocessing and `crops`."""
    from ablations.imagenet.augment import RECIPES
    from ablations.imagenet.index import build_index
    from ablations.imagenet.streaming import eval_batches as stream_batches

    assert prep.resize is not None
    assert prep.crop is not None
    val = build_index("val", data)
    recipe = replace(RECIPES["imagenet-torchvision"], name=prep.name, crop=prep.crop,
                     eval_resize=prep.resize)  # fmt: skip
    normalizer = Normalizer.fixed(prep.mean, prep.std)
    index = val if limit is None else sample_index(val, limit, seed=0)
    batches = stream_batches(index, recipe=recipe, crops=crops, batch_size=batch_size,
                             device=device, normalizer=normalizer)  # fmt: skip
    return _Prepared(batches, len(index), len(index.classes), prep.name, recipe.crop, "val",
                     _listing(index))  # fmt: skip


def _listing(index: ImageIndex) -> dict[str, Any]:
    return {"source": str(index.root), "source_format": index.layout, "checksum": index.checksum}


def _variant(name: str, *, weights: str, run: Path | None, classes: int) -> Variant:
    if run is not None:
        trained = Variant.from_axes(rundir.variant_axes(run))
        if trained.name != name and resolve(name).name != trained.name:
            raise AblationsError(f"{weights} is a {trained.name}, not {name}; pass that variant")
        return trained
    return resolve(name, num_classes=classes)


def _row(
    net: Variant, record: Weights, prepared: _Prepared, *, name: str, metrics: Metrics,
    precision: str, device: torch.device, run: Path | None,
) -> dict[str, Any]:  # fmt: skip
    # A checkpoint trained elsewhere: no trainer version of ours made it.
    trained_by = 0 if run is None else versions.run_trainer_version(rundir.starts(run))
    return {
        "variant": net.name, "weights": record.source, "weights_format": record.format,
        "weights_sha256": record.sha256, "preprocessing": prepared.preprocessing,
        "input_size": prepared.input_size, "dataset": name, "split": prepared.split,
        "images": prepared.images, "classes": prepared.classes,
        "top1_error": metrics.error, "top5_error": metrics.top5_error, "loss": metrics.loss,
        "precision": precision,
        **collect.provenance_row(provenance.environment(device), prepared.data,
                               trainer_version=trained_by),
    }  # fmt: skip
