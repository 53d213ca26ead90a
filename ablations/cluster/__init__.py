"""Training runs outside this process: submitit local jobs or a Slurm job array (`submit`), each
job's state read back from its run directory (`jobs`), and one run across GPUs (`distributed`).
The launch options live here, so the command line reads them without loading submitit."""

from __future__ import annotations

from dataclasses import dataclass

from ablations.registry import AblationsError

EXECUTORS = ("inprocess", "local", "slurm")
STATES = ("missing", "pending", "running", "done", "failed")  # a task's (jobs.task_status)


@dataclass(frozen=True, kw_only=True)
class LaunchOptions:
    executor: str = "inprocess"
    jobs: int = 1  # runs at once (local processes; Slurm array parallelism)
    partition: str | None = None
    time_min: int = 240  # per job; a run that needs longer is requeued and resumes
    gpus_per_task: int = 1  # Slurm: >1 trains one run across them (DDP, synchronised BN)
    nodes: int = 1
    cpus_per_task: int | None = None
    account: str | None = None
    max_requeues: int = 5
    extra: tuple[str, ...] = ()  # further sbatch options, "key=value"

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise AblationsError(f"--executor {self.executor!r}: choose {', '.join(EXECUTORS)}")
        if self.jobs < 1 or self.time_min < 1 or self.gpus_per_task < 0 or self.nodes < 1:
            raise AblationsError("--jobs, --slurm-time and --slurm-nodes must be >= 1")
