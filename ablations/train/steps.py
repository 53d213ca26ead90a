"""The training and inference steps that training runs, throughput measurements and bench/ all
take, so a benchmark times exactly a run's step. `resolve_step` says which step a run takes;
`step_of_kind` builds it (a CUDA graph: ablations.gpu.graph)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablations.config import STEPS
from ablations.registry import AblationsError

# Autocast dtypes; "tf32" is fp32 storage with TF32 tensor-core matmuls and convolutions.
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
Step = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
GRAPH_WARMUP = 3  # eager calls a graph step runs before it captures
# Optimizer options that say how a step runs: a checkpoint does not set them.
EXECUTION = ("lr", "capturable")


def autocast(device: torch.device, precision: str, *, cache: bool = True) -> torch.autocast:
    """`cache=False` while capturing a CUDA graph: autocast's cast-weight cache would hand the
    graph tensors that the next eager region frees (PyTorch's CUDA-graph notes)."""
    return torch.autocast(
        device.type, dtype=AUTOCAST.get(precision, torch.float32),
        enabled=precision in AUTOCAST, cache_enabled=cache,
    )  # fmt: skip


def set_tf32(precision: str) -> None:
    """TF32 on for "tf32" only: PyTorch enables it for cuDNN by default, which would make "fp32"
    numbers silently TF32 ones."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"


@contextlib.contextmanager
def tf32_for(precision: str) -> Iterator[None]:
    """`precision`'s TF32 flags (`set_tf32`) inside, the caller's restored after: for work that
    shares its process with others (an evaluation, the layer responses)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    set_tf32(precision)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def tf32_flags() -> dict[str, bool]:
    return {
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def timed_warmup(step_kind: str, warmup: int) -> int:
    """The untimed steps before a timed window: at least GRAPH_WARMUP + 1 for a graph step, whose
    capture (the call after GRAPH_WARMUP eager ones) synchronises and empties caches."""
    return max(warmup, GRAPH_WARMUP + 1) if step_kind == "graph" else warmup


def strict_dynamo() -> None:
    """Hitting dynamo's recompile limit raises instead of running the model uncompiled, which
    would train or time an eager model under a compiled run's key."""
    import torch._dynamo.config as config  # here: importing dynamo costs seconds

    if hasattr(config, "fail_on_recompile_limit_hit"):
        config.fail_on_recompile_limit_hit = True


def fresh_dynamo() -> None:
    """Dynamo's caches emptied, as in a fresh process. Every ResNet shares one `forward`, so one
    process's compiled runs share its cache: without this a run's kernels could depend on the
    runs compiled before it."""
    import torch._dynamo

    torch._dynamo.reset()


def _compiled(model: nn.Module, enabled: bool) -> nn.Module:
    """`model` compiled for static shapes. A new shape recompiles for that shape, as a fresh
    process would; by default dynamo would make the batch dimension dynamic instead."""
    if not enabled:
        return model
    strict_dynamo()
    return cast(nn.Module, torch.compile(model, dynamic=False))


def optimizer_kind(optimizer: torch.optim.Optimizer, device: torch.device) -> str:
    """Which implementation `optimizer.step` runs, e.g. "SGD fused": fused, foreach (torch's
    default on a GPU when neither is asked for) or for-loop (its default on a CPU)."""
    fused, foreach = optimizer.defaults.get("fused"), optimizer.defaults.get("foreach")
    if fused:
        kind = "fused"
    elif foreach or (foreach is None and device.type == "cuda"):
        kind = "foreach"
    else:
        kind = "for-loop"
    return f"{type(optimizer).__name__} {kind}"


def use_device(device: torch.device) -> None:
    """Make a GPU named by index the current one where work on it starts (a run, a measuring
    child, an evaluation): streams, graphs and pools made without a device go to the current
    GPU, which is otherwise GPU 0 whatever `--device cuda:N` says."""
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)


def fused_optimizer(device: torch.device) -> bool:
    """Whether a training run's optimizer is the fused one: on a GPU."""
    return device.type == "cuda"


class TrainStep:
    """Forward under autocast, cross-entropy, backward (loss-scaled for fp16), and an SGD or
    Adam step on every trainable parameter (BN included, as the paper's Torch code did).

    `lr` may be a 0-dim device tensor that the schedule rewrites in place. A `fused` optimizer
    (default: on a GPU) reads it on the device and, under a GradScaler, checks for infs there,
    so a CUDA graph can capture the step (Adam is made `capturable` where a graph step is built:
    its fused kernel ignores the flag, and torch warns about it in an eager step)."""

    def __init__(
        self, model: nn.Module, *, device: torch.device, precision: str = "fp32",
        compile: bool = False, lr: float | Tensor = 0.1, momentum: float = 0.9,
        weight_decay: float = 1e-4, optimizer: str = "sgd", fused: bool | None = None,
    ) -> None:  # fmt: skip
        self.model, self.device, self.precision = model, device, precision
        self.forward = _compiled(model, compile)
        self.fused = device.type == "cuda" if fused is None else fused
        params = [p for p in model.parameters() if p.requires_grad]
        kernel = self.fused or None  # None: torch's default implementation, as the CPU runs it
        # Adam's weight decay is L2 in the gradient (torch.optim.Adam's); it takes no momentum.
        self.optimizer: torch.optim.Optimizer = (
            torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=kernel)
            if optimizer == "adam"
            else torch.optim.SGD(
                params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=kernel
            )
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.cache_casts = True

    def load_state(self, optimizer: dict[str, object], scaler: dict[str, object]) -> None:
        """A checkpoint's optimizer and scaler state. The rates stay this step's device tensors,
        and `capturable` stays this step's: it says how the step runs, not what it learnt."""
        kept = [
            {k: group[k] for k in EXECUTION if k in group} for group in self.optimizer.param_groups
        ]
        self.optimizer.load_state_dict(optimizer)
        for group, own in zip(self.optimizer.param_groups, kept, strict=True):
            group.update(own)
        self.scaler.load_state_dict(scaler)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """One step; returns the (detached) loss and logits, still on the device."""
        with autocast(self.device, self.precision, cache=self.cache_casts):
            logits = self.forward(x)
            loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), logits.detach()


def resolve_step(
    requested: str, *, device: torch.device, precision: str, compile: bool, ddp: bool = False
) -> tuple[str, str]:
    """(the step a run takes, why when it is not the one asked for). "auto" is "graph" on a
    GPU and "eager" elsewhere. A graph cannot hold fp16's dynamic loss scale, torch.compile
    (its "reduce-overhead" mode has its own graphs) or DDP's all-reduce (no NCCL capture)."""
    if requested not in STEPS:
        raise AblationsError(f"step {requested!r} is not one of {', '.join(STEPS)}")
    if requested == "eager":
        return "eager", ""
    if device.type != "cuda":
        if requested == "graph":
            raise AblationsError("step 'graph' needs a CUDA device; use --step auto or eager")
        return "eager", ""
    if precision == "fp16":
        return "eager", "fp16 is not graph-captured (GradScaler's dynamic scale): eager step"
    if compile and requested == "auto":
        return "eager", "compile: eager step around the compiled model (no manual graph)"
    if ddp:
        return "eager", "torchrun (DDP): eager step"
    return "graph", ""


def step_of_kind(step: Step, kind: str, *, train: TrainStep) -> Step:
    """`step` itself, or for "graph" `step` replayed as one CUDA graph (the only import of
    ablations.gpu.graph). `train` is the TrainStep that `step` calls."""
    if kind != "graph":
        return step
    from ablations.gpu.graph import GraphStep  # the CUDA machinery: never loaded on a CPU

    train.cache_casts = False  # see `autocast`
    if train.fused:  # a capture needs it; the fused kernel ignores it, so numbers stay the same
        for group in train.optimizer.param_groups:
            if "capturable" in group:  # Adam's; SGD has no such option
                group["capturable"] = True
    return GraphStep(step, device=train.device)


class InferStep:
    """A forward pass in eval mode under `inference_mode` and autocast."""

    def __init__(
        self, model: nn.Module, *, device: torch.device, precision: str = "fp32",
        compile: bool = False,
    ) -> None:  # fmt: skip
        self.device, self.precision = device, precision
        self.forward = _compiled(model.eval(), compile)

    @torch.inference_mode()
    def __call__(self, x: Tensor) -> Tensor:
        with autocast(self.device, self.precision):
            return self.forward(x)
