"""`ablate run --executor local|slurm` and `ablate status`: the training runs go to submitit from
a snapshot of the code, keyed by run id; their states are read back from the run directories;
the tasks that read finished runs then run here (ablations.pipeline.execute)."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
import submitit

import ablations
from ablations import rundir
from ablations.cluster import LaunchOptions, jobs
from ablations.cluster.jobs import TaskStatus, TrainJob, task_status
from ablations.pipeline import execute, mark_done, record_unrecorded
from ablations.registry import AblationsError
from ablations.results import provenance
from ablations.tasks import Context, Task, data_for

POLL_S = 1.0
SNAPSHOTS_DIR = ".snapshots"
COMMIT_VAR = "ABLATE_GIT_COMMIT"  # read by ablations.results.provenance.git_commit
Log = Callable[[str], None]


@dataclass(frozen=True)
class Snapshot:
    root: Path  # the folder holding the `ablations` package copy
    tag: str
    commit: str


def take_snapshot(results: Path) -> Snapshot:
    """Copy the running `ablations` package into <results>/.snapshots/<hash of its files>/,
    once per distinct content: editing the checkout mid-sweep changes no queued job."""
    package = Path(ablations.__file__).resolve().parent
    commit = os.environ.get(COMMIT_VAR) or provenance.git_commit(package.parent)
    digest = hashlib.sha256()
    files = (p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in sorted(files):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    tag = digest.hexdigest()[:12]
    root = (results / SNAPSHOTS_DIR / tag).resolve()
    if not (root / "ablations").exists():
        staging = root.with_name(f".{tag}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(package, staging / "ablations",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        (staging / "COMMIT").write_text(commit + "\n")
        try:
            staging.rename(root)  # atomic: a concurrent submitter's identical copy may win
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return Snapshot(root=root, tag=tag, commit=commit)


@contextmanager
def pinned(snap: Snapshot, *, env: dict[str, str] | None = None) -> Iterator[None]:
    """While submitting: jobs inherit the snapshot as their working directory (python -m puts
    the cwd first on sys.path) and PYTHONPATH, the commit variable, and `env`."""
    saved, cwd = dict(os.environ), Path.cwd()
    path = os.pathsep.join(filter(None, [str(snap.root), os.environ.get("PYTHONPATH")]))
    os.environ.update({"PYTHONPATH": path, COMMIT_VAR: snap.commit, **(env or {})})
    os.chdir(snap.root)
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def execute_submitted(
    tasks: list[Task], ctx: Context, *, options: LaunchOptions, log: Log | None = None
) -> dict[str, int]:
    """Submit the training runs neither done, queued nor running (a failed one resumes); wait for
    local ones. The other tasks run once every run has finished (Slurm: a later `ablate run`)."""
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    runs = {t: ctx.runs_dir / t.config.run_id for t in tasks if t.kind == "train" and t.config}
    states = {t: task_status(run).state for t, run in runs.items()}
    todo = [t for t in runs if states[t] in ("missing", "failed")]
    busy = [t for t in runs if states[t] in ("pending", "running")]
    counts = {"done": len(runs) - len(todo) - len(busy), "submitted": len(todo),
              "busy": len(busy), "ran": 0}  # fmt: skip
    for task in busy:
        say(f"[ablate] {task.label}: {states[task]} (submitted earlier; not resubmitted)")
    local = options.executor != "slurm"
    if todo:
        snap = take_snapshot(ctx.results)
        # Paths are resolved before the snapshot's chdir; each Slurm rank finds its GPU itself.
        device = ctx.device.type if local else "auto"
        train_jobs = [_job(t, ctx, device=device) for t in todo]
        say(f"[ablate] submitting {len(train_jobs)} run(s) to {options.executor} "
            f"(code snapshot {snap.tag}, commit {snap.commit})")  # fmt: skip
        if local:
            _run_local(train_jobs, options=options, snapshot=snap, log=say)
        else:
            _submit_slurm(train_jobs, options=options, results=ctx.results, snapshot=snap, log=say)
    if local:
        _wait_for([runs[t] for t in busy], say)
    finished = [t for t, run in runs.items() if task_status(run).state == "done"]
    for task in finished:  # membership, as `execute` marks it: the report selects runs by it
        mark_done(task, ctx)
    counts["recorded"] = record_unrecorded(ctx)
    counts["unfinished"] = len(runs) - len(finished)
    if not counts["unfinished"]:
        rest = [t for t in tasks if t.kind != "train"]
        counts["ran"] = execute(rest, ctx, log=say)["ran"] if rest else 0
    return counts


def _job(task: Task, ctx: Context, *, device: str) -> TrainJob:
    assert task.config is not None
    data = data_for(task.config, ctx)
    if data is not None and Path(data).expanduser().exists():
        data = Path(data).expanduser().resolve()
    return TrainJob(task.config.to_json(), runs_dir=str(ctx.runs_dir.resolve()),
                    data=None if data is None else str(data), device=device)  # fmt: skip


def _run_local(
    train_jobs: list[TrainJob], *, options: LaunchOptions, snapshot: Snapshot, log: Log
) -> None:
    """Run the jobs, `options.jobs` at once, each in a process of its own: one GPU each while
    there are GPUs for all, several a GPU beyond that; returns when they end."""
    import torch

    gpus = torch.cuda.device_count()
    queue = list(train_jobs)
    running: dict[int, tuple[TrainJob, Any]] = {}
    while queue or running:
        for slot in [s for s in range(options.jobs) if s not in running][: len(queue)]:
            task = queue.pop(0)
            gpu = visible_gpu(slot, gpus) if gpus else None
            folder = task.run_dir.resolve() / rundir.JOB_LOGS
            executor = submitit.LocalExecutor(folder=folder, max_num_timeout=options.max_requeues)
            executor.update_parameters(timeout_min=options.time_min, **gpu_parameters(gpu))
            task.run_dir.mkdir(parents=True, exist_ok=True)
            # CPU jobs share the cores: each its share of threads unless told otherwise (the
            # thread count changes float reduction order, not the run key; env.json records it).
            threads = str(max(1, provenance.available_cores() // options.jobs))
            cpu = gpu is None and "OMP_NUM_THREADS" not in os.environ
            with pinned(snapshot, env={"OMP_NUM_THREADS": threads} if cpu else {}):
                job = executor.submit(task)
            jobs.submitted(task.run_dir, executor="local", job_id=str(job.job_id), log_dir=folder,
                           snapshot=snapshot.tag, commit=snapshot.commit)  # fmt: skip
            log(f"[ablate] {task.run_dir.name}: started (job {job.job_id}, "
                f"{'CPU' if gpu is None else f'GPU {gpu}'})")  # fmt: skip
            running[slot] = (task, job)
        time.sleep(POLL_S)
        for slot, (task, job) in list(running.items()):
            if job.done():
                del running[slot]
                status = task_status(task.run_dir)
                log(f"[ablate] {task.run_dir.name}: {status.state} {status.detail}".rstrip())


def visible_gpu(slot: int, gpus: int) -> str:
    """The GPU of a local job in `slot`, as CUDA_VISIBLE_DEVICES names it. Torch numbers the
    `gpus` GPUs this process sees from 0; where CUDA_VISIBLE_DEVICES picks them (e.g. "4,5,6,7"
    or UUIDs), GPU i is its i-th entry, and a job given the number i would land on physical
    GPU i instead."""
    index = slot % gpus
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = [e.strip() for e in listed.split(",")] if listed is not None else []
    return entries[index] if index < len(entries) else str(index)


def gpu_parameters(gpu: str | None) -> dict[str, Any]:
    """The local executor's parameters for a job on `gpu` (None: no GPU). Submitit sets
    CUDA_VISIBLE_DEVICES from integers only: a UUID or MIG id is exported by a setup line, which
    runs after submitit's own assignment."""
    if gpu is None:
        return {"gpus_per_node": 0, "visible_gpus": ()}
    if gpu.isdigit():
        return {"gpus_per_node": 1, "visible_gpus": (int(gpu),)}
    return {"gpus_per_node": 1, "visible_gpus": (),
            "setup": [f"export CUDA_VISIBLE_DEVICES={shlex.quote(gpu)}"]}  # fmt: skip


def _submit_slurm(
    train_jobs: list[TrainJob], *, options: LaunchOptions, results: Path, snapshot: Snapshot,
    log: Log,
) -> None:  # fmt: skip
    """Submit the jobs as one Slurm job array, at most `options.jobs` at once, requeued on a
    timeout or preemption; each run directory links to its job's logs. Returns at once."""
    o = options
    if shutil.which("sbatch") is None:
        raise AblationsError(
            "--executor slurm needs Slurm's sbatch on PATH: run on a login node, or use "
            "--executor local (`ablate plan` prints the commands for elsewhere)"
        )
    folder = results.resolve() / ".submitit" / "%j"
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm",
                                     slurm_max_num_timeout=o.max_requeues)  # fmt: skip
    optional = {
        "slurm_partition": o.partition, "slurm_account": o.account,
        "cpus_per_task": o.cpus_per_task,
        "slurm_additional_parameters": dict(kv.split("=", 1) for kv in o.extra),
    }  # fmt: skip
    executor.update_parameters(
        timeout_min=o.time_min, nodes=o.nodes, tasks_per_node=max(1, o.gpus_per_task),
        gpus_per_node=o.gpus_per_task, name="ablate", slurm_array_parallelism=o.jobs,
        slurm_signal_delay_s=120, **{k: v for k, v in optional.items() if v},
    )  # fmt: skip
    with pinned(snapshot), executor.batch():
        pending = [executor.submit(task) for task in train_jobs]
    for task, job in zip(train_jobs, pending, strict=True):
        folder = Path(job.paths.folder)
        task.run_dir.mkdir(parents=True, exist_ok=True)
        link = task.run_dir / rundir.JOB_LOGS
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(folder, task.run_dir))  # logs next to the run
        jobs.submitted(task.run_dir, executor="slurm", job_id=str(job.job_id), log_dir=folder,
                       snapshot=snapshot.tag, commit=snapshot.commit)  # fmt: skip
        log(f"[ablate] {task.run_dir.name}: job {job.job_id}, logs {folder}")


def _wait_for(run_dirs: list[Path], say: Log) -> None:
    """Wait for runs another `ablate run` submitted (still queued or running) to end."""
    while run_dirs:
        time.sleep(POLL_S)
        for run_dir in list(run_dirs):
            status = task_status(run_dir)
            if status.state not in ("pending", "running"):
                run_dirs.remove(run_dir)
                say(f"[ablate] {run_dir.name}: {status.state} {status.detail}".rstrip())


def launch_status(tasks: list[Task], ctx: Context) -> pd.DataFrame:
    """`ablate status`: one row per training run, its state read from its run directory."""
    rows = [{"task": t.label, **asdict(task_status(ctx.runs_dir / t.config.run_id))}
            for t in tasks if t.kind == "train" and t.config is not None]  # fmt: skip
    return pd.DataFrame(rows, columns=["task", *(f.name for f in fields(TaskStatus))])
