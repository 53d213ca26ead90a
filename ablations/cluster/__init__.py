"""Where training runs execute: in this process, as submitit local jobs, or as a Slurm job
array; status read back from the run directories (see ablations.cluster.jobs)."""

from ablations.cluster.executors import (
    EXECUTORS,
    Executor,
    Handle,
    JobSpec,
    LaunchOptions,
    make_executor,
)
from ablations.cluster.jobs import STATES, TaskStatus, task_status
from ablations.cluster.snapshot import Snapshot, take

__all__ = [
    "EXECUTORS", "STATES", "Executor", "Handle", "JobSpec", "LaunchOptions", "Snapshot",
    "TaskStatus", "make_executor", "take", "task_status",
]  # fmt: skip
