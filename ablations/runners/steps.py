"""The steps every runner times or takes: one training step and one inference step.

The training loop, the throughput runner and the bench/ suites all call these, so a benchmark
measures exactly the step a training run takes.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Autocast dtypes; "tf32" is fp32 storage with TF32 tensor-core matmuls and convolutions.
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


def autocast(device: torch.device, precision: str) -> torch.autocast:
    return torch.autocast(
        device.type, dtype=AUTOCAST.get(precision, torch.float32), enabled=precision in AUTOCAST
    )


def set_tf32(precision: str) -> None:
    """TF32 on for "tf32", off otherwise: PyTorch enables it for cuDNN convolutions by default,
    which would make "fp32" numbers silently TF32 ones. (No effect on a CPU.)"""
    enabled = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def tf32_flags() -> dict[str, bool]:
    return {
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """`torch.compile(model)` or the model; a compiled module shares the model's parameters."""
    return cast(nn.Module, torch.compile(model)) if enabled else model


def make_optimizer(
    params: list[nn.Parameter], *, name: str, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's), or Adam (tutorials'; its weight decay is L2 in the
    gradient, as torch.optim.Adam's, and momentum is not used)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


class TrainStep:
    """Forward under autocast, cross-entropy, backward (loss-scaled for fp16), an optimizer step
    on every trainable parameter (BN included, as the paper's Torch code did)."""

    def __init__(
        self, model: nn.Module, *, device: torch.device, precision: str = "fp32",
        compile: bool = False, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 1e-4,
        optimizer: str = "sgd",
    ) -> None:  # fmt: skip
        self.model, self.device, self.precision = model, device, precision
        self.forward = maybe_compile(model, compile)
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(
            trainable, name=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """One step; returns the (detached) loss and logits, still on the device."""
        with autocast(self.device, self.precision):
            logits = self.forward(x)
            loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), logits.detach()


class InferStep:
    """A forward pass in eval mode under `inference_mode` and autocast."""

    def __init__(
        self, model: nn.Module, *, device: torch.device, precision: str = "fp32",
        compile: bool = False,
    ) -> None:  # fmt: skip
        self.device, self.precision = device, precision
        self.forward = maybe_compile(model.eval(), compile)

    @torch.inference_mode()
    def __call__(self, x: Tensor) -> Tensor:
        with autocast(self.device, self.precision):
            return self.forward(x)
