"""Executors behind one interface: `submit(specs) -> handles`. Each spec is one training run
with its own directory, keyed by run id; an executor runs what it is given and nothing else
(planning, and what is done, belong to ablations.pipeline).

    InProcess      one run after another in this process (`ablate run`'s default)
    SubmititLocal  submitit's LocalExecutor: N runs at once on this machine, each its own
                   process, one GPU each (CUDA_VISIBLE_DEVICES) while there are more GPUs than
                   runs, several runs per GPU beyond that; blocks until its runs end
    SubmititSlurm  submitit's AutoExecutor on Slurm: one job array, at most N at once
                   (slurm_array_parallelism), requeued on timeout/preemption; returns at once
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ablations.cluster import jobs
from ablations.cluster.snapshot import Snapshot, pinned
from ablations.cluster.task import TrainJob
from ablations.config import TrainConfig
from ablations.registry import AblationsError
from ablations.results.provenance import available_cores

POLL_S = 1.0
EXECUTORS = ("inprocess", "local", "slurm")


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


@dataclass(frozen=True)
class JobSpec:
    config: TrainConfig
    runs_dir: Path
    data: str | None

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.config.run_id


@dataclass
class Handle:
    run_id: str
    executor: str
    job_id: str = ""
    log_dir: str = ""
    state: str = "pending"
    extra: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    name: str
    blocking: bool  # submit returns when the runs have ended

    def submit(self, specs: list[JobSpec], *, snapshot: Snapshot) -> list[Handle]: ...


def _job(spec: JobSpec, device: str) -> TrainJob:
    runs = str(spec.runs_dir.resolve())
    data = spec.data
    if data is not None and Path(data).expanduser().exists():
        data = str(Path(data).expanduser().resolve())
    return TrainJob(spec.config.to_json(), runs_dir=runs, data=data, device=device)


class InProcess:
    name, blocking = "inprocess", True

    def __init__(self, *, device: str = "auto") -> None:
        self.device = device

    def submit(self, specs: list[JobSpec], *, snapshot: Snapshot) -> list[Handle]:
        handles = []
        for spec in specs:
            try:
                _job(spec, self.device)()
                state = "done"
            except Exception as err:  # a failed run does not stop the others
                print(f"[ablate] {spec.config.run_id} failed: {err}", file=sys.stderr)
                state = "failed"
            handles.append(Handle(spec.config.run_id, self.name, state=state))
        return handles


class SubmititLocal:
    name, blocking = "local", True

    def __init__(self, options: LaunchOptions, *, device: str,
                 log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.options, self.device = options, device
        self.say = log or (lambda line: print(line, file=sys.stderr, flush=True))

    def _start(self, spec: JobSpec, *, gpu: int | None, snapshot: Snapshot) -> Any:
        import submitit

        folder = spec.run_dir.resolve() / jobs.LOG_LINK
        executor = submitit.LocalExecutor(folder=folder, max_num_timeout=self.options.max_requeues)
        executor.update_parameters(
            timeout_min=self.options.time_min, gpus_per_node=0 if gpu is None else 1,
            visible_gpus=() if gpu is None else (gpu,),
        )  # fmt: skip
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        task = _job(spec, self.device)  # paths resolved before the snapshot's chdir
        # CPU jobs share the cores: each gets its share of threads unless told otherwise (the
        # thread count changes float reduction order, not the run key; env.json records it).
        threads = max(1, available_cores() // self.options.jobs)
        env = (
            {}
            if gpu is not None or "OMP_NUM_THREADS" in os.environ
            else {"OMP_NUM_THREADS": str(threads)}
        )
        with pinned(snapshot, env=env):
            job = executor.submit(task)
        jobs.submitted(spec.run_dir, executor=self.name, job_id=str(job.job_id), log_dir=folder,
                       snapshot=snapshot.tag, commit=snapshot.commit)  # fmt: skip
        return job

    def submit(self, specs: list[JobSpec], *, snapshot: Snapshot) -> list[Handle]:
        import torch

        gpus = torch.cuda.device_count()
        queue, handles = list(specs), []
        running: dict[int, tuple[JobSpec, Any]] = {}
        while queue or running:
            for slot in range(self.options.jobs):
                if slot in running or not queue:
                    continue
                spec = queue.pop(0)
                gpu = slot % gpus if gpus else None
                job = self._start(spec, gpu=gpu, snapshot=snapshot)
                where = f"GPU {gpu}" if gpu is not None else "CPU"
                self.say(f"[ablate] {spec.config.run_id}: started (job {job.job_id}, {where})")
                running[slot] = (spec, job)
            time.sleep(POLL_S)
            for slot, (spec, job) in list(running.items()):
                if not job.done():
                    continue
                del running[slot]
                status = jobs.task_status(spec.run_dir)
                self.say(f"[ablate] {spec.config.run_id}: {status.state} {status.detail}".rstrip())
                handles.append(Handle(spec.config.run_id, self.name, str(job.job_id),
                                      str(job.paths.folder), state=status.state))  # fmt: skip
        return handles


class SubmititSlurm:
    name, blocking = "slurm", False

    def __init__(self, options: LaunchOptions, *, results: Path) -> None:
        self.options, self.folder = options, results.resolve() / ".submitit" / "%j"

    def executor(self) -> Any:
        import submitit

        o = self.options
        if shutil.which("sbatch") is None:
            raise AblationsError(
                "--executor slurm needs Slurm's sbatch on PATH: run on a login node, or use "
                "--executor local (`ablate plan` prints the commands for elsewhere)"
            )
        executor = submitit.AutoExecutor(folder=self.folder, cluster="slurm",
                                         slurm_max_num_timeout=o.max_requeues)  # fmt: skip
        params: dict[str, Any] = {
            "timeout_min": o.time_min, "nodes": o.nodes, "tasks_per_node": max(1, o.gpus_per_task),
            "gpus_per_node": o.gpus_per_task, "name": "ablate",
            "slurm_array_parallelism": o.jobs, "slurm_signal_delay_s": 120,
        }  # fmt: skip
        if o.partition:
            params["slurm_partition"] = o.partition
        if o.account:
            params["slurm_account"] = o.account
        if o.cpus_per_task:
            params["cpus_per_task"] = o.cpus_per_task
        if o.extra:
            params["slurm_additional_parameters"] = dict(kv.split("=", 1) for kv in o.extra)
        executor.update_parameters(**params)
        return executor

    def submit(self, specs: list[JobSpec], *, snapshot: Snapshot) -> list[Handle]:
        if not specs:
            return []
        executor = self.executor()
        # Each rank finds its GPU through LOCAL_RANK; the job's device is decided there.
        tasks = [_job(spec, "auto") for spec in specs]  # paths resolved before the chdir
        with pinned(snapshot), executor.batch():
            pending = [executor.submit(task) for task in tasks]
        handles = []
        for spec, job in zip(specs, pending, strict=True):
            folder = Path(job.paths.folder)
            spec.run_dir.mkdir(parents=True, exist_ok=True)
            link = spec.run_dir / jobs.LOG_LINK
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(os.path.relpath(folder, spec.run_dir))  # logs next to the run
            jobs.submitted(
                spec.run_dir,
                executor=self.name,
                job_id=str(job.job_id),
                log_dir=folder,
                snapshot=snapshot.tag,
                commit=snapshot.commit,
            )
            handles.append(Handle(spec.config.run_id, self.name, str(job.job_id), str(folder)))
        return handles


def make_executor(
    options: LaunchOptions, *, results: Path, device: str,
    log: Callable[[str], None] | None = None,
) -> Executor:  # fmt: skip
    if options.executor == "slurm":
        return SubmititSlurm(options, results=results)
    if options.executor == "local":
        return SubmititLocal(options, device=device, log=log)
    return InProcess(device=device)
