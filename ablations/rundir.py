"""A run directory, `<runs>/<run_id>/`: the one module that names its files. Everyone else asks
it for a path or a record. It reads and writes JSON and CSV only; ablations.train.resume writes
the torch files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ablations.io import read_json, write_atomic, write_json

CONFIG = "config.json"  # the resolved config (the run is a pure function of it)
VARIANT = "variant.json"  # the exact architecture trained (the variant's axes, with its head)
ENV = "env.json"  # one entry per start: machine, versions, commit, device, seed, data
CURVES = "curves.csv"  # tidy rows (iteration, split, metric, value) up to the last checkpoint
CHECKPOINT = "checkpoint.pt"  # the latest resumable state, while the run is unfinished
WEIGHTS = "model.pt"  # the final weights
BEST = "best.pt"  # the weights at the best evaluation so far
SUMMARY = "summary.json"  # status (complete, diverged or stopped), errors, wall time, images/s
MEMBERSHIP = "experiments.json"  # the experiments the run was planned for (the report's pick)
# A submitted run's (ablations.cluster.jobs): its job record, the training job's heartbeat, and
# a link to (or folder of) submitit's logs.
JOB, HEARTBEAT, JOB_LOGS = "job.json", "heartbeat", "submitit"


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
    """One entry per start of the run (a resumed run may finish on another machine)."""
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
    """The experiments a run was planned for, sorted (none for a run of `ablate train` alone)."""
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
