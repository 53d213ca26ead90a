"""The learning rate and running training metrics, kept on the device. The paper's warm-up (lr
0.01 until the training error is below 80%) ends on the device, and the optimizer reads the rate
from a device tensor, so a CUDA graph replays unchanged and the host reads nothing per step."""

from __future__ import annotations

import torch
from torch import Tensor

from ablations.cluster import distributed
from ablations.config import TrainConfig

WARMUP_WINDOW = 20  # iterations per warm-up judgement: the window's error decides


def lr_at(
    config: TrainConfig, iteration: int, warmup_end: int | None,
    milestones: tuple[int, ...] | None = None,
) -> float:  # fmt: skip
    """The step schedule (milestones in iterations: the config's by default) and the device
    schedule's reference; deep nets start at `warmup_lr` until the warm-up ends."""
    steps = config.lr_milestones if milestones is None else milestones
    before_decay = not steps or iteration < steps[0]
    if config.warmup_lr is not None and warmup_end is None and before_decay:
        return config.warmup_lr
    decays = sum(iteration >= m for m in steps)
    return config.lr * config.lr_gamma**decays


class Schedule:
    """`lr`: a 0-dim device tensor the optimizer reads, rewritten in place by `select` (inside
    a captured graph too). The host writes the two candidate rates when they change; a device
    flag picks one. float64 on a CPU keeps CPU runs' numbers bit for bit."""

    def __init__(
        self, config: TrainConfig, milestones: tuple[int, ...], *, device: torch.device,
        dtype: torch.dtype,
    ) -> None:  # fmt: skip
        self.config, self.milestones = config, milestones
        self.lr = torch.zeros((), device=device, dtype=dtype)
        self._warm, self._scheduled = torch.zeros_like(self.lr), torch.zeros_like(self.lr)
        self._written: tuple[float, float] | None = None
        self.warming = torch.zeros((), dtype=torch.bool, device=device)
        self.warmup_end = torch.zeros((), dtype=torch.int64, device=device)
        self.window_errors = torch.zeros((), dtype=torch.int64, device=device)
        self.load(None, (0, 0))

    def load(self, warmup_end: int | None, window: tuple[int, int]) -> None:
        """Start or resume with the warm-up ended at `warmup_end` (None: not yet) and the
        window's (errors, images); in place, as a captured graph holds these tensors."""
        warms = self.config.warmup_lr is not None
        self.warming.fill_(warms and warmup_end is None)
        self.warmup_end.fill_(-1 if warmup_end is None else warmup_end)
        self.window_errors.fill_(window[0])
        self.window_seen = window[1]  # images in the window: the host knows them
        self.judging = warms and warmup_end is None  # False once the host has seen the end

    def prepare(self, iteration: int) -> None:
        """Host: write the candidate rates for `iteration` where they changed (no sync)."""
        scheduled = lr_at(self.config, iteration, warmup_end=0, milestones=self.milestones)
        warm = lr_at(self.config, iteration, warmup_end=None, milestones=self.milestones)
        if self._written != (warm, scheduled):
            self._warm.fill_(warm)
            self._scheduled.fill_(scheduled)
            self._written = (warm, scheduled)

    def select(self) -> None:
        """Device: the rate of this iteration, into `lr` in place."""
        torch.where(self.warming, self._warm, self._scheduled, out=self.lr)

    def observe(self, wrong: Tensor) -> None:
        """Device: the misclassified images of a step count towards the warm-up window."""
        if self.judging:
            self.window_errors += wrong

    def after_step(self, iteration: int, images: int) -> None:
        """Host, after step `iteration - 1`: every WARMUP_WINDOW iterations the device ends the
        warm-up if the window's error (float64, as on the host) is below the threshold."""
        if not self.judging:
            return
        self.window_seen += images
        if iteration % WARMUP_WINDOW:
            return
        # Under torchrun every rank judges the global window, so the ranks' rates agree.
        errors = distributed.reduce_sum(self.window_errors)
        error = errors.double() / (self.window_seen * distributed.world_size())
        ended = self.warming & (error < self.config.warmup_until_error)
        self.warmup_end.copy_(torch.where(ended, iteration, self.warmup_end))
        self.warming &= ~ended
        self.window_errors.zero_()
        self.window_seen = 0

    def lr_of(self, iteration: int, warmup_end: int | None) -> float:
        """The rate step `iteration` took, as the exact float the curves record."""
        ended = warmup_end is not None and warmup_end <= iteration
        return lr_at(self.config, iteration, warmup_end if ended else None, self.milestones)

    def read(self) -> tuple[int | None, tuple[int, int]]:
        """(warm-up end, window) for a checkpoint; reads the device, at evaluations only."""
        end = int(self.warmup_end)
        if end >= 0:
            self.judging = False
        return (end if end >= 0 else None), (int(self.window_errors), self.window_seen)


class Tally:
    """Running training loss and error since the last report, summed on the device."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device, dtype=torch.float64)
        self.errors = torch.zeros((), device=device, dtype=torch.int64)
        self.seen = 0  # images: the host counts them

    def reset(self) -> None:
        """In place: a captured graph keeps adding into these very tensors."""
        self.loss.zero_()
        self.errors.zero_()
        self.seen = 0

    def add(self, loss: Tensor, logits: Tensor, labels: Tensor) -> Tensor:
        """Device: add one step; returns its misclassified images."""
        wrong = (logits.detach().argmax(dim=1) != labels).sum()
        self.loss += loss.detach().double() * len(labels)
        self.errors += wrong
        return wrong

    def read(self) -> tuple[float, float]:
        """(mean loss, error rate) over every rank's shard; reads the device."""
        loss, errors, seen = distributed.sum_all(self.loss, self.errors, self.seen)
        return loss / seen, errors / seen
