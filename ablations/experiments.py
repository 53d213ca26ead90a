"""Named experiments: what `ablate run` can bring up to date under results/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ablations.registry import AblationsError, list_variants
from ablations.runners import complexity


def complexity_experiment(*, results: Path) -> None:
    """Params and MACs of every registered variant."""
    complexity.update(results / complexity.COMPLEXITY_FILE, list_variants())


EXPERIMENTS: dict[str, Callable[..., None]] = {"complexity": complexity_experiment}
DEFAULT: tuple[str, ...] = ("complexity",)


def parse(spec: str) -> list[str]:
    """ "a,b" -> ["a", "b"], each checked against EXPERIMENTS."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown or not names:
        raise AblationsError(
            f"unknown experiment {unknown[0] if unknown else spec!r}; "
            f"choose from: {', '.join(EXPERIMENTS)}"
        )
    return names
