"""Evaluation of a model on batches: the one path training, recipes and checkpoint evaluation
share."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablations.runners.steps import autocast


@torch.inference_mode()
def evaluate(
    model: nn.Module, batches: Iterator[tuple[Tensor, Tensor]], *, precision: str
) -> tuple[float, float]:
    """(mean loss, error rate) in eval mode (BN running statistics), no augmentation. Every
    module's mode is restored afterwards, so a frozen backbone stays in eval mode."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    loss_sum, errors, seen = 0.0, 0, 0
    for x, y in batches:
        with autocast(x.device, precision):
            logits = model(x)
        loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        errors += int((logits.argmax(dim=1) != y).sum())
        seen += len(y)
    for module, training in modes:
        module.training = training
    return loss_sum / seen, errors / seen
