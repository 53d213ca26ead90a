"""Benchmarks over the registry: `--bench-variants GLOB` (repeatable) picks the variants, so a
newly registered variant is benchmarked without new code."""

from __future__ import annotations

import pytest

from ablations import list_variants

# The family defaults at the depths people compare; `--bench-variants '*'` runs the whole grid.
DEFAULT = ["resnet20", "resnet56", "resnet110", "plain20", "plain56", "resnet18", "resnet50"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-variants", action="append", default=None, metavar="GLOB",
                     help=f"variants to benchmark (default: {' '.join(DEFAULT)})")  # fmt: skip
    parser.addoption("--bench-batch", type=int, default=None,
                     help="batch size (default: the device's per-family default)")  # fmt: skip


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant" in metafunc.fixturenames:
        patterns = metafunc.config.getoption("--bench-variants") or DEFAULT
        metafunc.parametrize("variant", list_variants(patterns))


@pytest.fixture
def batch_size(request: pytest.FixtureRequest) -> int | None:
    return request.config.getoption("--bench-batch")
