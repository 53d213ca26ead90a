from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from ablations.registry import REGISTRY


def pytest_configure(config: pytest.Config) -> None:
    # xdist workers share the cores: without this each worker's OpenMP pool spins on every core
    # and the suite runs many times slower than on one worker.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture
def scratch_registry() -> Iterator[list[str]]:
    """Names registered during a test are removed afterwards, so tests cannot leak variants."""
    before = set(REGISTRY.names())
    added: list[str] = []
    yield added
    for name in set(REGISTRY.names()) - before:
        REGISTRY.unregister(name)
