"""A submitted training run: the job submitit runs (`TrainJob`), and its state read back from
the run directory, never from a pickled return value: job.json, the heartbeat the training job
rewrites, summary.json, and the scheduler's word on whether the job lives (docs/clusters.md)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit

from ablations import rundir
from ablations.config import TrainConfig
from ablations.io import read_json, write_json

HEARTBEAT_S = 10.0
# Slurm states in which a job may still run (sacct); anything else is over.
SLURM_ALIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
               "SUSPENDED", "CONFIGURING", "COMPLETING", "READY", "UNKNOWN"}  # fmt: skip


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class TaskStatus:
    run_id: str
    state: str  # one of ablations.cluster.STATES
    executor: str = ""
    job_id: str = ""
    requeues: int = 0
    submissions: int = 0
    detail: str = ""  # the failure's last line, or the latest progress line


def read_record(run_dir: Path) -> dict[str, Any]:
    """The run's job.json: {} where it was never submitted."""
    path = run_dir / rundir.JOB
    return dict(read_json(path)) if path.exists() else {}


def update_record(run_dir: Path, **changes: Any) -> None:
    write_json(run_dir / rundir.JOB, {"run_id": run_dir.name, **read_record(run_dir), **changes})


def submitted(
    run_dir: Path, *, executor: str, job_id: str, log_dir: Path, snapshot: str, commit: str
) -> None:
    """Record a (re)submission; earlier requeues and submissions are counted on."""
    old = read_record(run_dir)
    write_json(run_dir / rundir.JOB, {
        "run_id": run_dir.name, "executor": executor, "job_id": job_id,
        "host": socket.gethostname(), "submitted_at": now(), "log_dir": str(log_dir),
        "snapshot": snapshot, "commit": commit, "requeues": int(old.get("requeues", 0)),
        "submissions": int(old.get("submissions", 0)) + 1,
    })  # fmt: skip


@contextmanager
def heartbeat(run_dir: Path, *, every: float = HEARTBEAT_S) -> Iterator[None]:
    """Rewrite the run's heartbeat every `every` seconds while a job trains (a daemon thread)."""
    stop = threading.Event()

    def beats() -> None:
        while True:
            beat = {"pid": os.getpid(), "host": socket.gethostname(), "at": time.time()}
            write_json(run_dir / rundir.HEARTBEAT, beat)
            if stop.wait(every):
                return

    thread = threading.Thread(target=beats, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def alive(record: dict[str, Any]) -> bool:
    """Whether the scheduler still has the job (queued or running)."""
    if record.get("executor") == "slurm":
        try:
            job: Any = submitit.SlurmJob(folder=record["log_dir"], job_id=str(record["job_id"]))
            return str(job.state).split()[0].upper() in SLURM_ALIVE
        except Exception:  # no sacct here (a laptop reading a copied results folder)
            return True
    if record.get("executor") != "local":
        return False
    if record.get("host") != socket.gethostname():
        return True  # another machine's job: it cannot be checked from here; trust the record
    try:  # the job's controller process; a zombie has ended
        stat = Path(f"/proc/{record['job_id']}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def last_log_line(run_dir: Path) -> str:
    """The last non-empty line of the job's logs (stderr first: tracebacks and progress)."""
    log_dir = read_record(run_dir).get("log_dir")
    folder = Path(log_dir) if log_dir else run_dir / rundir.JOB_LOGS
    logs = [*folder.glob("*.err"), *folder.glob("*.out")]
    for log in sorted(logs, key=lambda p: (p.suffix != ".err", -p.stat().st_mtime, p.name)):
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
        lines = [line for line in lines if line]
        if lines:
            return lines[-1][:200]
    return ""


def task_status(run_dir: Path, *, stale_s: float = 6 * HEARTBEAT_S) -> TaskStatus:
    """The state of the task whose run directory is `run_dir` (ablations.cluster.STATES)."""
    record = read_record(run_dir)
    base: dict[str, Any] = {
        "executor": str(record.get("executor", "")), "job_id": str(record.get("job_id", "")),
        "requeues": int(record.get("requeues", 0)),
        "submissions": int(record.get("submissions", 0)),
    }  # fmt: skip
    if rundir.is_finished(run_dir):
        status = rundir.summary(run_dir).get("status", "complete")
        return TaskStatus(run_dir.name, "done", detail=str(status), **base)
    if not record:
        return TaskStatus(run_dir.name, "missing")
    if record.get("error") and record.get("error_submission") == record.get("submissions"):
        return TaskStatus(run_dir.name, "failed", detail=str(record["error"]), **base)
    if alive(record):
        beat = run_dir / rundir.HEARTBEAT
        # A heartbeat left by an earlier submission does not make a queued resubmission run.
        since = datetime.fromisoformat(str(record["submitted_at"])).timestamp() - 1
        fresh = beat.exists() and time.time() - float(read_json(beat)["at"]) < stale_s
        started = fresh and beat.stat().st_mtime >= since
        state = "running" if started else "pending"
        return TaskStatus(run_dir.name, state, detail=last_log_line(run_dir), **base)
    return TaskStatus(run_dir.name, "failed", detail=last_log_line(run_dir) or "lost", **base)


class TrainJob(submitit.helpers.Checkpointable):
    """One training run into its run directory. On a timeout or preemption submitit calls
    `checkpoint`, which counts the requeue and resubmits this job; checkpoint.pt resumes it."""

    def __init__(
        self, config: dict[str, Any], *, runs_dir: str, data: str | None, device: str
    ) -> None:
        self.config, self.runs_dir, self.data, self.device = config, runs_dir, data, device

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / TrainConfig.from_json(self.config).run_id

    def __call__(self) -> str:
        from ablations.cluster import distributed  # torch: loaded in the job, not the submitter
        from ablations.train import run

        config = TrainConfig.from_json(self.config)
        if submitit.JobEnvironment().num_tasks > 1 and "WORLD_SIZE" not in os.environ:
            # A job of several tasks is one run across them: RANK, WORLD_SIZE, ... for setup.
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        device = distributed.setup(self.device) or self.device
        main = distributed.is_main()  # only it writes job.json and the heartbeat
        try:
            if main:
                update_record(self.run_dir, code=str(Path(run.__file__).resolve()))
            with heartbeat(self.run_dir) if main else contextlib.nullcontext():
                record = run.train(config, out=Path(self.runs_dir), data=self.data,
                                   device=device, show_progress=main)  # fmt: skip
        except Exception as err:
            if main:
                traceback.print_exc(file=sys.stderr)
                line = f"{type(err).__name__}: {err}".splitlines()[0][:200]
                submission = read_record(self.run_dir).get("submissions")
                update_record(
                    self.run_dir, error=line, failed_at=now(), error_submission=submission
                )
            raise
        finally:
            distributed.teardown()
        return record.status

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Timed out or preempted: count the requeue; the run resumes from checkpoint.pt."""
        requeues = int(read_record(self.run_dir).get("requeues", 0)) + 1
        update_record(self.run_dir, requeues=requeues, requeued_at=now())
        return super().checkpoint(*args, **kwargs)
