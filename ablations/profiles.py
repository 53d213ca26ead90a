"""Training budgets as data. A profile overrides fields of `TrainConfig`, whose own defaults are
the paper's CIFAR-10 protocol (section 4.2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ablations.registry import AblationsError


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    # The paper warms up ResNet-110 (and deeper) at lr 0.01 until training error < 80%.
    warmup_min_depth: int | None = 110
    seeds: int = 1  # runs per training config in experiments (mean +- std over seeds)
    experiments: tuple[str, ...] = ("complexity", "degradation", "responses", "throughput")


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="paper",
            description="the paper's protocol: 64k iterations of batch 128, lr 0.1 divided by 10 "
            "at 32k and 48k, 45k/5k split, crop + flip; bf16 autocast on a GPU",
            settings={"precision": "auto", "channels_last": True, "eval_every": 500},
        ),
        Profile(
            name="cpu",
            description="a 2-core CPU budget: 1,000 iterations of batch 128 at 16x16 input "
            "(area-downsampled, 2-pixel crop padding), lr divided by 10 at 50% and 75%; not "
            "comparable to the paper's numbers, trends only",
            settings={
                "iterations": 1_000,
                "lr_milestones": (500, 750),
                "input_size": 16,
                "eval_every": 100,
                "channels_last": True,
            },
        ),
        Profile(
            name="smoke",
            description="seconds, for tests: 12 iterations of batch 32 on 512 training images "
            "at 16x16",
            experiments=("degradation", "responses"),
            settings={
                "iterations": 12,
                "lr_milestones": (6, 9),
                "batch_size": 32,
                "train_size": 512,
                "val_size": 128,
                "test_size": 256,
                "input_size": 16,
                "eval_every": 4,
                "eval_batch_size": 256,
            },
        ),
    )
}


def default_profile() -> str:
    """`paper` where a GPU is at hand, else `cpu`."""
    return "paper" if torch.cuda.is_available() else "cpu"


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise AblationsError(f"unknown profile {name!r}; choose from: {', '.join(PROFILES)}")
    return PROFILES[name]
