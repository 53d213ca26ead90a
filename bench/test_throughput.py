"""pytest-benchmark suites over the registry, timing the runners' own steps
(`ablations.measure.throughput.make_step`: the training runner's `TrainStep` and `InferStep`) on
synthetic inputs already on the device. Compare with a saved run: `nox -s bench --
--benchmark-compare`. For the careful, isolated measurement that fills results/, use
`ablate bench`."""

from __future__ import annotations

import pytest
import torch

from ablations import get_variant
from ablations.measure.throughput import Setting, defaults, make_step

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_step(benchmark, variant, mode, batch_size):
    family = get_variant(variant).family
    batch = batch_size or defaults(DEVICE)["batch"][family]
    precision = "bf16" if DEVICE.type == "cuda" else "fp32"
    setting = Setting(variant=variant, mode=mode, device=str(DEVICE), precision=precision,
                      batch_size=batch)  # fmt: skip
    step = make_step(setting, batch, DEVICE)

    def timed() -> None:
        step()
        _sync()

    benchmark.extra_info.update(variant=variant, mode=mode, batch_size=batch,
                                precision=precision, device=str(DEVICE))  # fmt: skip
    benchmark.pedantic(timed, warmup_rounds=2, rounds=5, iterations=1)
    benchmark.extra_info["images_per_s"] = batch / benchmark.stats.stats.median
