"""Evaluation on batches that may hold several views of each image (10-crop: B * 10 inputs for
B labels, image-major; multi-scale: a list of such tensors, one per size), their logits
averaged. Training, recipes and `ablate evaluate` share it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablations.cluster import distributed
from ablations.data.loader import Views
from ablations.train.steps import autocast

TOP5 = 5


@dataclass(frozen=True)
class Metrics:
    """Mean loss, top-1 and top-5 error (NaN with 5 classes or fewer: every label is in the
    top 5)."""

    loss: float
    error: float
    top5_error: float


def view_average(logits: Tensor, labels: int) -> Tensor:
    """(B * V, K) logits of V views per image, image-major -> (B, K), averaged over views."""
    views = len(logits) // labels
    if views * labels != len(logits):
        raise ValueError(f"{len(logits)} inputs do not split into views of {labels} labels")
    return logits if views == 1 else logits.view(labels, views, -1).mean(dim=1)


def view_logits(model: nn.Module, x: Views, labels: int) -> Tensor:
    """(B, K) logits over every view of each image: each tensor of `x` (one per scale) has its
    views averaged, then the tensors' averages are averaged (every scale weighs the same)."""
    if isinstance(x, Tensor):
        return view_average(model(x), labels)
    with cudnn_benchmark(False):
        per_size = [view_average(model(v), labels).float() for v in x]
    return torch.stack(per_size).mean(dim=0)


@contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """cuDNN autotuning set to `enabled` inside, its previous setting restored after. Each
    multi-scale group brings a new input shape, which autotuning would time afresh for a few
    images; `torch.backends.cudnn.flags` is no help: it resets every other flag too."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


@dataclass(frozen=True)
class EvalSums:
    """An evaluation's sums over images, which add up over ranks (`classes`: the logits' width,
    0 where a share held no image)."""

    loss_sum: float
    errors: int
    top5_hits: int
    seen: int
    classes: int

    def metrics(self) -> Metrics:
        if self.seen == 0:
            raise ValueError("an evaluation over no images has no metrics")
        top5 = 1 - self.top5_hits / self.seen if self.classes > TOP5 else math.nan
        return Metrics(self.loss_sum / self.seen, self.errors / self.seen, top5)


@torch.inference_mode()
def eval_sums(
    model: nn.Module, batches: Iterator[tuple[Views, Tensor]], *, precision: str
) -> EvalSums:
    """Summed loss, top-1 errors and top-5 hits in eval mode. The sums stay on the device and
    the host reads them once, at the end: a read per batch would stall the GPU each time. Every
    module's mode is restored afterwards, so a frozen backbone stays in eval mode."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    sums: Tensor | None = None
    seen, classes = 0, 0
    for x, y in batches:
        with autocast(y.device, precision):
            logits = view_logits(model, x, len(y)).float()
        classes = logits.shape[1]
        batch = batch_sums(logits, y)
        sums = batch if sums is None else sums.add_(batch)
        seen += len(y)
    for module, training in modes:
        module.training = training
    loss_sum, errors, top5_hits = sums.tolist() if sums is not None else (0.0, 0, 0)
    return EvalSums(loss_sum, int(errors), int(top5_hits), seen, classes)


def batch_sums(logits: Tensor, y: Tensor) -> Tensor:
    """[loss sum, errors, top-5 hits] of one batch, float64 on the device (the float32 loss sum
    converted, as a host float would hold it; counts exact below 2**53)."""
    loss = F.cross_entropy(logits, y, reduction="sum").double()
    errors = (logits.argmax(dim=1) != y).sum().double()
    if logits.shape[1] > TOP5:  # the label among the 5 largest logits (ties: torch.topk's)
        hits = (logits.topk(TOP5, dim=1).indices == y[:, None]).any(dim=1).sum().double()
    else:
        hits = torch.zeros_like(errors)
    return torch.stack([loss, errors, hits])


def evaluate_metrics(
    model: nn.Module, batches: Iterator[tuple[Views, Tensor]], *, precision: str
) -> Metrics:
    return eval_sums(model, batches, precision=precision).metrics()


def evaluate_shares(
    model: nn.Module, batches: Iterator[tuple[Views, Tensor]], *, precision: str
) -> Metrics:
    """The metrics of every rank's `batches` together (under torchrun each rank holds a share
    of the images; in one process, those of `batches`)."""
    mine = eval_sums(model, batches, precision=precision)
    loss_sum, *counts = distributed.sum_all(mine.loss_sum, mine.errors, mine.top5_hits, mine.seen)
    errors, top5_hits, seen = (round(c) for c in counts)
    classes = distributed.max_all(mine.classes)
    return EvalSums(loss_sum, errors, top5_hits, seen, classes).metrics()
