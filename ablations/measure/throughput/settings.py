"""What one throughput measurement is (`Setting`), the device defaults, and the settings grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any, NamedTuple

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


class Timing(NamedTuple):
    """Warm-up steps, timed repeats, steps per repeat, and the batch, for one family."""

    warmup: int
    repeats: int
    steps: int
    batch: int


# GPU: 7 windows of 20 CIFAR steps cost well under a second; ImageNet steps at batch 256 take
# 0.1-0.5 s, so 5 windows of 10 (timm's benchmark.py times 40) keep the table to GPU minutes.
# CPU: 3 x 3 steps left IQRs of a large fraction of the median on 2 cores. 7 windows of 10
# CIFAR steps after 5 warm-up ones cost 2-30 s; 5 windows of 3 keep resnet152 training near a
# minute. The quick CPU table (`throughput` experiment) takes about 2.5 minutes on 2 cores.
TIMING = {
    "cuda": {"cifar": Timing(10, 7, 20, 128), "imagenet": Timing(10, 5, 10, 256)},
    "cpu": {"cifar": Timing(5, 7, 10, 32), "imagenet": Timing(2, 5, 3, 8)},
}


def timing(device: torch.device, family: str) -> Timing:
    return TIMING["cuda" if device.type == "cuda" else "cpu"][family]


def defaults(device: torch.device) -> dict[str, Any]:
    """The batch per family on this device: {"batch": {"cifar": .., "imagenet": ..}}."""
    return {"batch": {family: timing(device, family).batch for family in ("cifar", "imagenet")}}


def grid(
    variants: Sequence[str], *, device: str | torch.device | None = None,
    modes: Sequence[str] = MODES, precisions: Sequence[str] | None = None,
    channels_last: Sequence[bool] | None = None, compile: Sequence[bool] = (False,),
    batch_sizes: Sequence[int | str | None] | None = None, input_size: int | None = None,
    warmup: int | None = None, repeats: int | None = None, steps: int | None = None,
    runs: int = 1, step: str = "auto",
) -> list[Setting]:  # fmt: skip
    """Every combination, with the device's defaults: on a GPU what training runs (bf16,
    channels_last) and its alternatives (TF32, NCHW), on a CPU fp32 NCHW only (a quick table);
    "auto" `step` resolved as training resolves it."""
    dev = resolve_device(device)
    gpu = dev.type == "cuda"
    precisions = precisions or (("bf16", "tf32") if gpu else ("fp32",))
    channels_last = channels_last or ((False, True) if gpu else (False,))
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
    """What identifies a measurement, from a Setting's fields or a results row."""
    variant = get_variant(fields["variant"])
    requested = fields.get("requested_batch_size") or str(fields["batch_size"] or "default")
    return (
        variant.name, fields["mode"], fields.get("step", "eager"), fields["precision"],
        bool(fields["channels_last"]),
        bool(fields["compile"]), str(requested), int(fields["input_size"] or variant.input_size),
        int(fields["warmup"]), int(fields["repeats"]), int(fields["steps"]), int(fields["run"]),
    )  # fmt: skip
