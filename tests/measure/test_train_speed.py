"""ablations.measure.train_speed on the CPU: a graph step's capture falls outside the timed
window, both loops warm up alike and record it, and a compiled suite loop starts dynamo afresh.
(`ablate train-speed` end to end: tests/report/test_throughput.py.)"""

from __future__ import annotations

import pytest
import torch

from ablations.config import resolve_config
from ablations.data import load_dataset
from ablations.measure import train_speed
from ablations.train import trainer as trainers
from ablations.train.steps import GRAPH_WARMUP

CPU = torch.device("cpu")


def _config(**overrides):
    return resolve_config("resnet20", profile="smoke", device="cpu", batch_size=8, input_size=16,
                          **overrides)  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "warmup", "expected"),
    [("graph", 1, GRAPH_WARMUP + 1), ("graph", 6, 6), ("eager", 1, 1)],
)
def test_both_loops_warm_up_past_a_graph_capture(tiny_cifar, monkeypatch, kind, warmup, expected):
    """A graph step (faked on the CPU: its kind "graph", its steps eager) captures on the call
    after GRAPH_WARMUP eager ones; both loops warm up past it and record the warm-up they took."""
    monkeypatch.setattr(trainers, "resolve_step", lambda *a, **k: (kind, ""))
    monkeypatch.setattr(trainers, "step_of_kind", lambda step, kind, *, train: step)
    warmups: list[int] = []
    timed = train_speed.timed

    def recorded(step, *, device, steps, warmup):
        warmups.append(warmup)
        return timed(step, device=device, steps=steps, warmup=warmup)

    monkeypatch.setattr(train_speed, "timed", recorded)
    dataset = load_dataset("cifar10", data=tiny_cifar)
    rows = train_speed.compare([_config()], dataset, device="cpu", iterations=1, warmup=warmup,
                               workers=0)  # fmt: skip
    assert warmups == [expected, expected]  # ours, then the conventional loop
    assert list(rows["warmup"]) == [expected, expected] and list(rows["iterations"]) == [1, 1]
    assert list(rows["step"]) == [kind, "eager"]


def test_a_compiled_suite_loop_starts_dynamo_afresh(tiny_cifar, monkeypatch, dynamo_resets):
    calls = dynamo_resets
    trainer = train_speed.Trainer
    monkeypatch.setattr(train_speed, "Trainer",
                        lambda *a, **k: calls.append("trainer") or trainer(*a, **k))  # fmt: skip
    dataset = load_dataset("cifar10", data=tiny_cifar)
    for compile in (True, False):
        row = train_speed.suite(_config(compile=compile), dataset, device=CPU, iterations=1,
                                warmup=0)  # fmt: skip
        assert row["compile"] is compile
    assert calls == ["reset", "trainer", "trainer"]
