"""Where training runs execute: in this process, as submitit local jobs, or as a Slurm job
array (`executors`); status read back from the run directories (`jobs`); code snapshots
(`snapshot`); the job a task runs (`task`); `ablate run --executor` (`submit`); and runs
across GPUs with torchrun (`distributed`).

The names below load their module on first use, so training in this process (which needs
only `distributed`) never imports the executors or submitit."""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "EXECUTORS": "executors", "Executor": "executors", "Handle": "executors",
    "JobSpec": "executors", "LaunchOptions": "executors", "make_executor": "executors",
    "STATES": "jobs", "TaskStatus": "jobs", "task_status": "jobs",
    "Snapshot": "snapshot", "take": "snapshot",
}  # fmt: skip
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'ablations.cluster' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ablations.cluster.{_HOMES[name]}"), name)
