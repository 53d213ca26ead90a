"""Training-loop speed: this suite's loop against the conventional one (PIL images, torchvision
transforms, a DataLoader, an eager model, `loss.item()` every step) on one device. Both share
the variant, batch, precision, cuDNN and TF32 flags and SGD's arithmetic, and are timed over
`iterations` steps after the same warm-up: `warmup` steps, at least GRAPH_WARMUP + 1 where ours
takes a graph step, so its capture is not timed. Each row states its loop's settings
(docs/throughput.md).
"""

from __future__ import annotations

import tempfile
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ablations.config import TrainConfig, resolve_device
from ablations.data import ArrayDataset
from ablations.data.prepare import prepare_data
from ablations.measure import timed
from ablations.models import create_model
from ablations.progress import progress
from ablations.results import provenance, schemas
from ablations.results.schemas import TRAIN_SPEED
from ablations.results.table import upsert
from ablations.train.steps import (
    autocast,
    fresh_dynamo,
    optimizer_kind,
    set_tf32,
    tf32_flags,
    timed_warmup,
    use_device,
)
from ablations.train.trainer import Trainer

SUITE_DATA = "whole split on the device as uint8; crop, flip, normalise there in batch"
CONVENTIONAL_DATA = "PIL image per item, torchvision transforms, DataLoader"
ENVIRONMENT = ("machine", "torch", "git_commit", "created_at", *schemas.MACHINE_HASHES)


def set_flags(precision: str, device: torch.device) -> None:
    """The flags both loops run under: the training runner's (ablations.train.run.train)."""
    torch.backends.cudnn.benchmark = device.type == "cuda"
    set_tf32(precision)


class PILImages(Dataset[tuple[Tensor, int]]):
    """torchvision.datasets.CIFAR10's item access: uint8 array -> PIL image -> transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        pixels = self.images[i]
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        return self.transform(image), int(self.labels[i])


def conventional(
    config: TrainConfig, dataset: ArrayDataset, *, device: torch.device, iterations: int,
    warmup: int, workers: int,
) -> dict[str, Any]:  # fmt: skip
    """The conventional loop's columns: its time, the optimizer torch chose for it (its
    default: foreach on a GPU), its flags. Its DataLoader has `workers` and, on a GPU, pinned
    memory and persistent workers: its best chance."""
    from torchvision import transforms  # here: importing torchvision costs seconds

    set_flags(config.precision, device)

    x = dataset.x_train
    mean = tuple(float(m) for m in (x / 255).mean(axis=(0, 1, 2)))
    std = tuple(float(s) for s in (x / 255).std(axis=(0, 1, 2)))
    size = config.input_size or x.shape[1]
    resize = [transforms.Resize(size)] if size != x.shape[1] else []
    transform = transforms.Compose([
        *resize, transforms.RandomCrop(size, padding=round(4 * size / 32)),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(mean, std),
    ])  # fmt: skip
    loader = DataLoader(
        PILImages(x, dataset.y_train, transform), batch_size=config.batch_size, shuffle=True,
        num_workers=workers, pin_memory=device.type == "cuda", drop_last=True,
        persistent_workers=workers > 0,
    )  # fmt: skip
    torch.manual_seed(config.seed)
    model = create_model(config.variant, num_classes=len(dataset.classes),
                         in_channels=x.shape[-1]).to(device).train()  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)  # fmt: skip
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")

    def step(images: Tensor, labels: Tensor) -> None:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        with autocast(device, config.precision):  # the same precision as ours
            loss = F.cross_entropy(model(images), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss.item()  # the running loss most repositories log: a host sync every step

    batches = chain.from_iterable(repeat(loader))  # epoch after epoch
    seconds = timed(lambda: step(*next(batches)), device=device, steps=iterations, warmup=warmup)
    return {
        "loop": "conventional", "precision": config.precision, "channels_last": False,
        "compile": False, "workers": workers, "pin_memory": device.type == "cuda",
        "persistent_workers": workers > 0, "data": CONVENTIONAL_DATA,
        "loss_read": "loss.item() every step", "step": "eager",
        "optimizer": optimizer_kind(optimizer, device), **tf32_flags(), "warmup": warmup,
        "seconds": seconds,
    }  # fmt: skip


def suite(
    config: TrainConfig, dataset: ArrayDataset, *, device: torch.device, iterations: int,
    warmup: int,
) -> dict[str, Any]:  # fmt: skip
    """Our loop's columns: the time of `Trainer.step` on device batches, its step and flags, and
    the warm-up it took (`timed_warmup`)."""
    set_flags(config.precision, device)
    if config.compile:  # the configs compiled before in this process must not shape this one
        fresh_dynamo()
    data = prepare_data(config, dataset, device)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config, data, directory=Path(scratch), device=device, show_progress=False)
        trainer.model.train()
        batches = data.train.batches(0)
        used = timed_warmup(trainer.step_kind, warmup)
        seconds = timed(lambda: trainer.step(*next(batches)), device=device, steps=iterations,
                        warmup=used)  # fmt: skip
        return {
            "loop": "suite", "precision": config.precision,
            "channels_last": config.channels_last, "compile": config.compile,
            "workers": config.workers, "pin_memory": False, "persistent_workers": False,
            "data": SUITE_DATA, "loss_read": "every eval interval (no per-step sync)",
            "step": trainer.step_kind,
            "optimizer": optimizer_kind(trainer.train_step.optimizer, device), **tf32_flags(),
            "warmup": used, "seconds": seconds,
        }  # fmt: skip


def compare(
    configs: list[TrainConfig], dataset: ArrayDataset, *, device: str | torch.device | None = None,
    iterations: int = 50, warmup: int = 10, workers: int | None = None, out: Path | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Both loops for each config: images/s and our speed-up; `workers` default to the cores."""
    dev = resolve_device(device)
    use_device(dev)
    environment = provenance.environment(dev)
    cores = provenance.available_cores()
    n_workers = cores if workers is None else workers
    rows: list[dict[str, Any]] = []
    for config in progress(configs, desc="loop speed", label=lambda c: c.variant):
        ours = suite(config, dataset, device=dev, iterations=iterations, warmup=warmup)
        loops = (ours, conventional(config, dataset, device=dev, iterations=iterations,
                                    warmup=ours["warmup"], workers=n_workers))  # fmt: skip
        theirs = loops[1]["seconds"]
        pair = [
            {
                "variant": config.variant, "device": dev.type, "batch_size": config.batch_size,
                "input_size": config.input_size or dataset.x_train.shape[1], **loop,
                "cpu_cores": cores, "iterations": iterations,
                "images_per_s": iterations * config.batch_size / loop["seconds"],
                "speedup": theirs / loop["seconds"],
                **{k: environment[k] for k in (*ENVIRONMENT, *schemas.KERNELS)},
            }
            for loop in loops
        ]  # fmt: skip
        rows += pair
        if out is not None:  # each variant's pair as it is measured: an interrupt keeps them
            upsert(out, TRAIN_SPEED.validate(pd.DataFrame(pair)), TRAIN_SPEED)
    return TRAIN_SPEED.validate(pd.DataFrame(rows))
