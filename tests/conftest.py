from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tiny_datasets import CIFAR10_CLASSES, write_cifar_batches, write_idx

from ablations.registry import REGISTRY


def pytest_configure(config: pytest.Config) -> None:
    # xdist workers share the cores: without this each worker's OpenMP pool spins on every core
    # and the suite runs many times slower than on one worker.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` run where CUDA is available and are skipped elsewhere."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not keywords: they hold path names
            item.add_marker(skip)


@pytest.fixture
def dynamo_resets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list that gets "reset" at each `torch._dynamo.reset()`; `torch.compile` leaves models
    eager and dynamo's flags stay as they are, so a test sees only when dynamo is reset."""
    import torch._dynamo

    from ablations.train import steps

    calls: list[str] = []
    monkeypatch.setattr(steps, "strict_dynamo", lambda: None)
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: model)
    monkeypatch.setattr(torch._dynamo, "reset", lambda: calls.append("reset"))
    return calls


@pytest.fixture
def scratch_registry() -> Iterator[list[str]]:
    """Names registered during a test are removed afterwards, so tests cannot leak variants."""
    before = set(REGISTRY.names())
    added: list[str] = []
    yield added
    for name in set(REGISTRY.names()) - before:
        REGISTRY.unregister(name)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Decoded-array caches go to a temporary folder unless ABLATE_CACHE says otherwise."""
    if os.environ.get("ABLATE_CACHE"):
        yield
        return
    os.environ["ABLATE_CACHE"] = str(tmp_path_factory.mktemp("ablate-cache"))
    yield
    del os.environ["ABLATE_CACHE"]


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-10-format folder (pickled batches) with 700 training and 300 test images of
    32x32, enough for the smoke profile's 512 training / 128 validation images."""
    parent = tmp_path_factory.mktemp("tiny-cifar")
    write_cifar_batches(parent, classes=CIFAR10_CLASSES, per_class=70, test_per_class=30)
    return parent / "cifar-10-batches-py"


@pytest.fixture(scope="session")
def tiny_fashion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-fashion")
    write_idx(folder, n_train=700, n_test=300)
    return folder
