"""What one throughput measurement is (`Setting`), the device defaults, and the settings grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import torch

from ablations.config import PRECISIONS, STEPS, resolve_device
from ablations.registry import AblationsError, get_variant
from ablations.train.steps import GRAPH_WARMUP, resolve_step

MODES = ("infer", "train")


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One measurement: a variant in a mode under one precision/format/compile/batch/size."""

    variant: str
    mode: str = "train"
    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    # How a training step runs: "graph" (one CUDA graph, what `ablate train` takes on a GPU) or
    # "eager"; `grid` resolves "auto" for the device, as the trainer does (steps.resolve_step).
    step: str = "eager"
    # An int; None: the device's default for the family (see `defaults`); "max": a sweep down
    # from 4096 to the largest power of two that fits.
    batch_size: int | str | None = None
    input_size: int | None = None  # None: the variant's own
    warmup: int = 2
    repeats: int = 3
    steps: int = 3
    run: int = 0  # repetition index, for measuring run-to-run spread

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if isinstance(self.batch_size, str) and self.batch_size != "max":
            problems.append(f"batch size {self.batch_size!r} is neither a number nor 'max'")
        if self.batch_size == "max" and self.device == "cpu":
            problems.append("a batch-size sweep ('max') needs a GPU to run out of memory on")
        if min(self.warmup, self.repeats, self.steps) < 1:
            problems.append("warmup, repeats and steps must be >= 1")
        if self.step not in STEPS or self.step == "auto":
            problems.append(f"step {self.step!r} is not eager or graph (grid resolves auto)")
        elif self.step == "graph" and self.warmup <= GRAPH_WARMUP:
            problems.append(f"the graph step needs --warmup > {GRAPH_WARMUP} (it is "
                            "captured after that many eager steps, before the timing)")  # fmt: skip
        if problems:
            raise AblationsError("invalid throughput setting: " + "; ".join(problems))


@dataclass(frozen=True)
class Timing:
    """Warm-up steps, timed repeats, steps per repeat, and the batch, for one family."""

    warmup: int
    repeats: int
    steps: int
    batch: int


# GPU: a CIFAR step is milliseconds, so 7 windows of 20 steps cost well under a second per
# setting; an ImageNet step at batch 256 is 0.1-0.5 s, where 5 windows of 10 steps (50 timed
# steps, timm's benchmark.py times 40) keep the full GPU table within a few GPU minutes.
# CPU: 3 repeats of 3 steps leave run-to-run IQRs of a large fraction of the median on 2 cores.
# CIFAR nets take 20-400 ms per step at batch 32, so 7 windows of 10 steps (after 5
# warm-up steps that settle the allocator and caches) cost 2-30 s per setting; ImageNet nets
# take 0.15-3 s per step at batch 8, where 5 windows of 3 steps keep resnet152 training near a
# minute. The quick CPU table (`throughput` experiment, 5 variants x 2 modes) takes about 2.5
# minutes on 2 cores.
GPU_TIMING = {"cifar": Timing(10, 7, 20, 128), "imagenet": Timing(10, 5, 10, 256)}
CPU_TIMING = {"cifar": Timing(5, 7, 10, 32), "imagenet": Timing(2, 5, 3, 8)}

# The GPU grid covers what training runs (bf16, channels_last) and its alternatives (TF32,
# NCHW); the CPU grid stays fp32 NCHW so that the quick table finishes in minutes.
GPU_PRECISIONS = ("bf16", "tf32")
GPU_CHANNELS_LAST = (False, True)


def timing(device: torch.device, family: str) -> Timing:
    return (GPU_TIMING if device.type == "cuda" else CPU_TIMING)[family]


def defaults(device: torch.device) -> dict[str, Any]:
    """The batch per family on this device: {"batch": {"cifar": .., "imagenet": ..}}."""
    table = GPU_TIMING if device.type == "cuda" else CPU_TIMING
    return {"batch": {family: t.batch for family, t in table.items()}}


def grid(
    variants: Sequence[str], *, device: str | torch.device | None = None,
    modes: Sequence[str] = MODES, precisions: Sequence[str] | None = None,
    channels_last: Sequence[bool] | None = None, compile: Sequence[bool] = (False,),
    batch_sizes: Sequence[int | str | None] | None = None, input_size: int | None = None,
    warmup: int | None = None, repeats: int | None = None, steps: int | None = None,
    runs: int = 1, step: str = "auto",
) -> list[Setting]:  # fmt: skip
    """Every combination of the given settings, with the device's defaults filled in (per
    family: timing; on a GPU also bf16 and TF32, NCHW and channels_last). A training step is
    `step`, "auto" resolved as training resolves it (a CUDA graph on a GPU where it can)."""
    dev = resolve_device(device)
    gpu = dev.type == "cuda"
    precisions = precisions or (GPU_PRECISIONS if gpu else ("fp32",))
    channels_last = channels_last or (GPU_CHANNELS_LAST if gpu else (False,))
    settings = []
    for name in variants:
        t = timing(dev, get_variant(name).family)  # an unknown name fails here, with hints
        combos = product(modes, precisions, channels_last, compile, batch_sizes or [None],
                         range(runs))  # fmt: skip
        settings += [
            Setting(
                variant=name, mode=mode, device=str(dev), precision=precision, channels_last=cl,
                compile=comp, batch_size=batch, input_size=input_size,
                warmup=warmup or t.warmup, repeats=repeats or t.repeats, steps=steps or t.steps,
                run=run, step=_step(step, mode=mode, device=dev, precision=precision, compile=comp),
            )
            for mode, precision, cl, comp, batch, run in combos
        ]  # fmt: skip
    return settings


def _step(requested: str, *, mode: str, device: torch.device, precision: str,
          compile: bool) -> str:  # fmt: skip
    """The step a training setting takes (inference has one kind)."""
    if mode != "train":
        return "eager"
    return resolve_step(requested, device=device, precision=precision, compile=compile)[0]


def default_batch(setting: Setting, device: torch.device) -> int:
    """The batch a setting asks for first (4096 for a 'max' sweep)."""
    if setting.batch_size is None:
        return timing(device, get_variant(setting.variant).family).batch
    return 4096 if setting.batch_size == "max" else int(setting.batch_size)


def setting_key(fields: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a measurement, from a Setting's fields or a results row: the same
    variant, mode, step, precision, memory format, compile, batch policy, size, timing and
    run."""
    variant = get_variant(fields["variant"])
    requested = fields.get("requested_batch_size") or str(fields["batch_size"] or "default")
    return (
        variant.name, fields["mode"], fields.get("step", "eager"), fields["precision"],
        bool(fields["channels_last"]),
        bool(fields["compile"]), str(requested), int(fields["input_size"] or variant.input_size),
        int(fields["warmup"]), int(fields["repeats"]), int(fields["steps"]), int(fields["run"]),
    )  # fmt: skip
