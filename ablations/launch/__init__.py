"""Where training runs execute: in this process, as submitit local jobs, or as a Slurm job
array; status read back from the run directories (see ablations.launch.jobs)."""

from ablations.launch.executors import (
    EXECUTORS,
    Executor,
    Handle,
    JobSpec,
    LaunchOptions,
    make_executor,
)
from ablations.launch.jobs import STATES, TaskStatus, task_status
from ablations.launch.snapshot import Snapshot, take

__all__ = [
    "EXECUTORS", "STATES", "Executor", "Handle", "JobSpec", "LaunchOptions", "Snapshot",
    "TaskStatus", "make_executor", "take", "task_status",
]  # fmt: skip
