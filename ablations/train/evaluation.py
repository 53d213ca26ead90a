"""Evaluation on batches that may hold several views of each image (10-crop: B * 10 inputs for
B labels, image-major; multi-scale: a list of such tensors, one per size), their logits
averaged. Training, recipes and `ablate evaluate` share it."""

from __future__ import annotations

import math
from collections.abc import Iterator
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
    per_size = [view_average(model(v), labels).float() for v in x]
    return torch.stack(per_size).mean(dim=0)


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
    """Summed loss, top-1 errors and top-5 hits in eval mode. Every module's mode is restored
    afterwards, so a frozen backbone stays in eval mode."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    loss_sum, errors, top5_hits, seen, classes = 0.0, 0, 0, 0, 0
    for x, y in batches:
        with autocast(y.device, precision):
            logits = view_logits(model, x, len(y)).float()
        classes = logits.shape[1]
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        errors += int((logits.argmax(dim=1) != y).sum())
        if classes > TOP5:  # the label among the 5 largest logits (ties: torch.topk's)
            top5_hits += int((logits.topk(TOP5, dim=1).indices == y[:, None]).any(dim=1).sum())
        seen += len(y)
    for module, training in modes:
        module.training = training
    return EvalSums(loss_sum, errors, top5_hits, seen, classes)


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
