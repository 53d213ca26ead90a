"""Evaluation of a model on batches: the one path training, recipes and checkpoint evaluation
share. A batch may hold several views of each image (10-crop: B * 10 inputs for B labels,
image-major; multi-scale: a list of such tensors, one per size); their logits are averaged
before the loss and the errors. Across processes each
rank evaluates its share of the images and the sums are added (`evaluate_shares`)."""

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
    """Mean loss, top-1 error and top-5 error (NaN with 5 classes or fewer, where every label
    is in the top 5)."""

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
    """(B, K) logits averaged over every view of each image: one forward per tensor of `x`
    (one per scale for multi-scale), its views averaged first, then the tensors' averages
    (every scale weighs the same)."""
    if isinstance(x, Tensor):
        return view_average(model(x), labels)
    per_size = [view_average(model(v), labels).float() for v in x]
    return torch.stack(per_size).mean(dim=0)


@dataclass(frozen=True)
class EvalSums:
    """What an evaluation sums over images: additive, so shares evaluated on several ranks
    combine by summing (`classes` is the logits' width, 0 where a share held no image)."""

    loss_sum: float
    errors: int
    top5_hits: int
    seen: int
    classes: int

    def metrics(self) -> Metrics:
        if self.seen == 0:
            raise ValueError("an evaluation over no images has no metrics")
        top5 = 1 - self.top5_hits / self.seen if self.classes > TOP5 else math.nan
        return Metrics(loss=self.loss_sum / self.seen, error=self.errors / self.seen,
                       top5_error=top5)  # fmt: skip


@torch.inference_mode()
def eval_sums(
    model: nn.Module, batches: Iterator[tuple[Views, Tensor]], *, precision: str
) -> EvalSums:
    """Summed loss, top-1 errors and top-5 hits in eval mode (BN running statistics), no
    augmentation. Every module's mode is restored afterwards, so a frozen backbone stays in
    eval mode."""
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
    return EvalSums(loss_sum=loss_sum, errors=errors, top5_hits=top5_hits, seen=seen,
                 classes=classes)  # fmt: skip


def evaluate_metrics(
    model: nn.Module, batches: Iterator[tuple[Views, Tensor]], *, precision: str
) -> Metrics:
    """Loss, top-1 and top-5 error (NaN with 5 classes or fewer) over every batch."""
    return eval_sums(model, batches, precision=precision).metrics()


def evaluate_shares(
    model: nn.Module, batches: Iterator[tuple[Views, Tensor]], *, precision: str
) -> Metrics:
    """Under torchrun, `batches` are this rank's share of the images: their sums are added
    over the ranks, so every rank returns the metrics of all images (one process: those of
    `batches`)."""
    mine = eval_sums(model, batches, precision=precision)
    loss_sum, errors, top5_hits, seen = distributed.sum_all(
        mine.loss_sum, mine.errors, mine.top5_hits, mine.seen
    )  # fmt: skip
    total = EvalSums(loss_sum=loss_sum, errors=round(errors), top5_hits=round(top5_hits),
                     seen=round(seen), classes=distributed.max_all(mine.classes))  # fmt: skip
    return total.metrics()
