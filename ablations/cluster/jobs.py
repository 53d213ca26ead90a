"""What a submitted task's state is, read from its run directory (never from a pickled return
value): `job.json`, written at submission (executor, job id, host, submitted_at, requeues, log
folder, code snapshot and commit) and updated by the job (an error's last line, a requeue), a
`heartbeat` the running job rewrites every HEARTBEAT_S, `summary.json` when it finished, and the
scheduler's word on whether the job is still alive (a local pid, Slurm's sacct).

    missing   never submitted (or submitted nowhere this record knows)
    pending   submitted, alive, not started training yet (queued)
    running   alive with a fresh heartbeat
    done      summary.json exists (complete or diverged)
    failed    not alive and not done: the job's error line or its log's last line
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ablations import rundir
from ablations.io import read_json, write_json

JOB_FILE, HEARTBEAT_FILE, LOG_LINK = "job.json", "heartbeat", "submitit"
HEARTBEAT_S = 10.0
# Slurm states in which a job may still run (sacct); anything else is over.
SLURM_ALIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
               "SUSPENDED", "CONFIGURING", "COMPLETING", "READY", "UNKNOWN"}  # fmt: skip


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class TaskStatus:
    run_id: str
    state: str
    executor: str = ""
    job_id: str = ""
    requeues: int = 0
    submissions: int = 0
    detail: str = ""  # the failure's last line, or the latest progress line


def read_record(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / JOB_FILE
    return dict(read_json(path)) if path.exists() else None


def update_record(run_dir: Path, **changes: Any) -> None:
    record = read_record(run_dir) or {"run_id": run_dir.name}
    write_json(run_dir / JOB_FILE, record | changes)


def submitted(run_dir: Path, *, executor: str, job_id: str, log_dir: Path,
              snapshot: str, commit: str) -> None:  # fmt: skip
    """The record of a (re)submission; earlier requeues and submissions are counted on."""
    old = read_record(run_dir) or {}
    write_json(run_dir / JOB_FILE, {
        "run_id": run_dir.name, "executor": executor, "job_id": job_id,
        "host": socket.gethostname(), "submitted_at": now(), "log_dir": str(log_dir),
        "snapshot": snapshot, "commit": commit, "requeues": int(old.get("requeues", 0)),
        "submissions": int(old.get("submissions", 0)) + 1,
    })  # fmt: skip


@contextmanager
def heartbeat(run_dir: Path, *, every: float = HEARTBEAT_S) -> Iterator[None]:
    """A daemon thread that rewrites <run_dir>/heartbeat every `every` seconds while a job
    trains (pid, host, time), so that `ablate status` tells running from queued or lost."""
    stop = threading.Event()

    def beats() -> None:
        while True:
            beat = {"pid": os.getpid(), "host": socket.gethostname(), "at": time.time()}
            write_json(run_dir / HEARTBEAT_FILE, beat)
            if stop.wait(every):
                return

    thread = threading.Thread(target=beats, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def heartbeat_age(run_dir: Path) -> float | None:
    path = run_dir / HEARTBEAT_FILE
    return time.time() - float(read_json(path)["at"]) if path.exists() else None


def alive(record: dict[str, Any]) -> bool:
    """Whether the scheduler still has the job (queued or running)."""
    if record.get("executor") == "local":
        return _pid_alive(record)
    if record.get("executor") == "slurm":
        return _slurm_state(record) in SLURM_ALIVE
    return False


def _pid_alive(record: dict[str, Any]) -> bool:
    """A local job's controller process is alive (on this host; a zombie counts as ended)."""
    if record.get("host") != socket.gethostname():
        return True  # another machine's job: it cannot be checked from here; trust the record
    stat = Path(f"/proc/{record['job_id']}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _slurm_state(record: dict[str, Any]) -> str:
    import submitit

    try:
        job: Any = submitit.SlurmJob(folder=record["log_dir"], job_id=str(record["job_id"]))
        return str(job.state).split()[0].upper()
    except Exception:  # no sacct here (a laptop reading a copied results folder)
        return "UNKNOWN"


def last_log_line(run_dir: Path) -> str:
    """The last non-empty line of the job's logs (stderr first: tracebacks and progress)."""
    record = read_record(run_dir) or {}
    folder = Path(record["log_dir"]) if record.get("log_dir") else run_dir / LOG_LINK
    logs = [*folder.glob("*.err"), *folder.glob("*.out")]
    for log in sorted(logs, key=lambda p: (p.suffix != ".err", -p.stat().st_mtime, p.name)):
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
        lines = [line for line in lines if line]
        if lines:
            return lines[-1][:200]
    return ""


def task_status(run_dir: Path, *, stale_s: float = 6 * HEARTBEAT_S) -> TaskStatus:
    """The state of the task whose run directory is `run_dir` (see the module docstring)."""
    record = read_record(run_dir)
    base: dict[str, Any] = {}
    if record:
        base = {"executor": str(record.get("executor", "")),
                "job_id": str(record.get("job_id", "")),
                "requeues": int(record.get("requeues", 0)),
                "submissions": int(record.get("submissions", 0))}  # fmt: skip
    if rundir.is_finished(run_dir):
        status = rundir.summary(run_dir).get("status", "complete")
        return TaskStatus(run_dir.name, "done", detail=str(status), **base)
    if record is None:
        return TaskStatus(run_dir.name, "missing")
    if record.get("error") and record.get("error_submission") == record.get("submissions"):
        return TaskStatus(run_dir.name, "failed", detail=str(record["error"]), **base)
    if alive(record):
        age = heartbeat_age(run_dir)
        started = age is not None and age < stale_s and _beat_after_submission(run_dir, record)
        state = "running" if started else "pending"
        return TaskStatus(run_dir.name, state, detail=last_log_line(run_dir), **base)
    return TaskStatus(run_dir.name, "failed", detail=last_log_line(run_dir) or "lost", **base)


def _beat_after_submission(run_dir: Path, record: dict[str, Any]) -> bool:
    """A heartbeat left by an earlier submission does not make a queued resubmission run."""
    submitted_at = datetime.fromisoformat(str(record["submitted_at"])).timestamp()
    return (run_dir / HEARTBEAT_FILE).stat().st_mtime >= submitted_at - 1
