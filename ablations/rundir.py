"""A run directory, `<runs>/<run_id>/`: the one module that knows its files.

    config.json       the resolved config (the run is a pure function of it)
    variant.json      the exact architecture trained (the variant's axes, with its head)
    env.json          one entry per start: machine, versions, commit, device, seed, data
    curves.csv        tidy rows (iteration, split, metric, value) up to the last checkpoint
    checkpoint.pt     the latest resumable state, while the run is unfinished
    model.pt          the final weights
    best.pt           the weights at the best evaluation so far
    summary.json      status (complete | diverged | stopped), final errors, wall time, images/s
    experiments.json  the experiments the run was planned for (the report selects by it)

Everyone else asks this module for a path or a record, never spells a file name. It reads and
writes JSON and CSV only; the torch files are written by ablations.train.resume.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ablations.io import read_json, write_atomic, write_json

CONFIG = "config.json"
VARIANT = "variant.json"
ENV = "env.json"
CURVES = "curves.csv"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.pt"
BEST = "best.pt"
SUMMARY = "summary.json"
MEMBERSHIP = "experiments.json"


def is_started(run: Path) -> bool:
    """Whether the folder holds a run: its config is written first."""
    return (run / CONFIG).exists()


def is_finished(run: Path) -> bool:
    """Whether the run ended (complete or diverged): its summary is written last."""
    return (run / SUMMARY).exists()


def finished_runs(runs: Path) -> list[Path]:
    """The finished run directories under `runs`, by name."""
    return sorted(p.parent for p in runs.glob(f"*/{SUMMARY}"))


def config(run: Path) -> dict[str, Any]:
    return dict(read_json(run / CONFIG))


def variant_axes(run: Path) -> dict[str, Any]:
    return dict(read_json(run / VARIANT))


def summary(run: Path) -> dict[str, Any]:
    return dict(read_json(run / SUMMARY))


def starts(run: Path) -> list[dict[str, Any]]:
    """One entry per start of the run (a resumed run may finish on another machine); [] for a
    folder that holds no run yet."""
    path = run / ENV
    return list(read_json(path)) if path.exists() else []


def add_start(run: Path, start: dict[str, Any]) -> None:
    write_json(run / ENV, [*starts(run), start])


def write_config(run: Path, *, config: dict[str, Any], variant: dict[str, Any]) -> None:
    write_json(run / VARIANT, variant)
    write_json(run / CONFIG, config)


def write_summary(run: Path, record: dict[str, Any]) -> None:
    write_json(run / SUMMARY, record)


def curves(run: Path) -> pd.DataFrame | None:
    path = run / CURVES
    return pd.read_csv(path) if path.exists() else None


def write_curves(run: Path, table: pd.DataFrame) -> None:
    write_atomic(run / CURVES, lambda tmp: table.to_csv(tmp, index=False))


def progress(run: Path) -> int:
    """The last iteration a run's curves reach (its checkpoint's, while it trains); -1: none."""
    table = curves(run)
    return -1 if table is None or table.empty else int(table["iteration"].max())


def experiments(run: Path) -> tuple[str, ...]:
    """The experiments a run was planned for (sorted; none for a run trained on its own with
    `ablate train`, until an `ablate run` plans it)."""
    path = run / MEMBERSHIP
    return tuple(sorted(read_json(path))) if path.exists() else ()


def add_experiments(run: Path, names: Iterable[str]) -> bool:
    """Add `names` to the run's experiments; True when that changed anything."""
    known = set(experiments(run))
    wanted = known | set(names)
    if wanted == known or not run.is_dir():
        return False
    write_json(run / MEMBERSHIP, sorted(wanted))
    return True


def checkpoint(run: Path) -> Path:
    return run / CHECKPOINT


def weights(run: Path) -> Path:
    return run / WEIGHTS


def best_weights(run: Path) -> Path:
    return run / BEST
