"""Forward (inference) and one SGD training step per variant, on the CPU or the first GPU."""

from __future__ import annotations

import torch
from torch import nn

from ablations import create_model, get_variant

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _setup(name: str, batch_size: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    v = get_variant(name)
    model = create_model(name).to(DEVICE)
    x = torch.randn(batch_size, v.in_channels, v.input_size, v.input_size, device=DEVICE)
    y = torch.randint(0, v.num_classes, (batch_size,), device=DEVICE)
    return model, x, y


def test_inference(benchmark, variant, batch_size):
    model, x, _ = _setup(variant, batch_size)
    model.eval()

    def step() -> None:
        with torch.inference_mode():
            model(x)
        _sync()

    benchmark.extra_info.update(variant=variant, batch_size=batch_size, device=str(DEVICE))
    benchmark.pedantic(step, warmup_rounds=2, rounds=5, iterations=1)


def test_train_step(benchmark, variant, batch_size):
    model, x, y = _setup(variant, batch_size)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        _sync()

    benchmark.extra_info.update(variant=variant, batch_size=batch_size, device=str(DEVICE))
    benchmark.pedantic(step, warmup_rounds=2, rounds=5, iterations=1)
