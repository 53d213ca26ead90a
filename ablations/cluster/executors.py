"""The two submitit executors. Each spec is one training run with its own directory, keyed by
run id; an executor runs what it is given and nothing else (planning, and what is done, belong
to ablations.pipeline).

    run_local     submitit's LocalExecutor: N runs at once on this machine, each its own
                  process, one GPU each (CUDA_VISIBLE_DEVICES) while there are more GPUs than
                  runs, several runs per GPU beyond that; returns when its runs end
    submit_slurm  submitit's AutoExecutor on Slurm: one job array, at most N at once
                  (slurm_array_parallelism), requeued on timeout/preemption; returns at once
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablations.cluster import LaunchOptions, jobs
from ablations.cluster.snapshot import Snapshot, pinned
from ablations.cluster.task import TrainJob
from ablations.config import TrainConfig
from ablations.registry import AblationsError
from ablations.results.provenance import available_cores

POLL_S = 1.0
Log = Callable[[str], None]


@dataclass(frozen=True)
class JobSpec:
    config: TrainConfig
    runs_dir: Path
    data: str | None

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.config.run_id


def _job(spec: JobSpec, device: str) -> TrainJob:
    runs = str(spec.runs_dir.resolve())
    data = spec.data
    if data is not None and Path(data).expanduser().exists():
        data = str(Path(data).expanduser().resolve())
    return TrainJob(spec.config.to_json(), runs_dir=runs, data=data, device=device)


def _start_local(
    spec: JobSpec, *, gpu: int | None, options: LaunchOptions, device: str, snapshot: Snapshot
) -> Any:
    import submitit

    folder = spec.run_dir.resolve() / jobs.LOG_LINK
    executor = submitit.LocalExecutor(folder=folder, max_num_timeout=options.max_requeues)
    executor.update_parameters(
        timeout_min=options.time_min, gpus_per_node=0 if gpu is None else 1,
        visible_gpus=() if gpu is None else (gpu,),
    )  # fmt: skip
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    task = _job(spec, device)  # paths resolved before the snapshot's chdir
    # CPU jobs share the cores: each gets its share of threads unless told otherwise (the
    # thread count changes float reduction order, not the run key; env.json records it).
    threads = max(1, available_cores() // options.jobs)
    env = (
        {}
        if gpu is not None or "OMP_NUM_THREADS" in os.environ
        else {"OMP_NUM_THREADS": str(threads)}
    )
    with pinned(snapshot, env=env):
        job = executor.submit(task)
    jobs.submitted(spec.run_dir, executor="local", job_id=str(job.job_id), log_dir=folder,
                   snapshot=snapshot.tag, commit=snapshot.commit)  # fmt: skip
    return job


def run_local(
    specs: list[JobSpec], *, options: LaunchOptions, device: str, snapshot: Snapshot, log: Log
) -> None:
    """Run `specs`, `options.jobs` at once, each in a local process of its own."""
    import torch

    gpus = torch.cuda.device_count()
    queue = list(specs)
    running: dict[int, tuple[JobSpec, Any]] = {}
    while queue or running:
        for slot in range(options.jobs):
            if slot in running or not queue:
                continue
            spec = queue.pop(0)
            gpu = slot % gpus if gpus else None
            job = _start_local(spec, gpu=gpu, options=options, device=device, snapshot=snapshot)
            where = f"GPU {gpu}" if gpu is not None else "CPU"
            log(f"[ablate] {spec.config.run_id}: started (job {job.job_id}, {where})")
            running[slot] = (spec, job)
        time.sleep(POLL_S)
        for slot, (spec, job) in list(running.items()):
            if job.done():
                del running[slot]
                status = jobs.task_status(spec.run_dir)
                log(f"[ablate] {spec.config.run_id}: {status.state} {status.detail}".rstrip())


def _slurm_executor(options: LaunchOptions, *, results: Path) -> Any:
    import submitit

    o = options
    if shutil.which("sbatch") is None:
        raise AblationsError(
            "--executor slurm needs Slurm's sbatch on PATH: run on a login node, or use "
            "--executor local (`ablate plan` prints the commands for elsewhere)"
        )
    folder = results.resolve() / ".submitit" / "%j"
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm",
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


def submit_slurm(
    specs: list[JobSpec], *, options: LaunchOptions, results: Path, snapshot: Snapshot, log: Log
) -> None:
    """Submit `specs` as one Slurm job array; each run directory links to its job's logs."""
    executor = _slurm_executor(options, results=results)
    # Each rank finds its GPU through LOCAL_RANK; the job's device is decided there.
    tasks = [_job(spec, "auto") for spec in specs]  # paths resolved before the chdir
    with pinned(snapshot), executor.batch():
        pending = [executor.submit(task) for task in tasks]
    for spec, job in zip(specs, pending, strict=True):
        folder = Path(job.paths.folder)
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        link = spec.run_dir / jobs.LOG_LINK
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(folder, spec.run_dir))  # logs next to the run
        jobs.submitted(spec.run_dir, executor="slurm", job_id=str(job.job_id), log_dir=folder,
                       snapshot=snapshot.tag, commit=snapshot.commit)  # fmt: skip
        log(f"[ablate] {spec.config.run_id}: job {job.job_id}, logs {folder}")
