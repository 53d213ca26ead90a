"""Executors (ablations.cluster): submitit's local executor end to end, kill + rerun resumes to
the uninterrupted result, status from the run directories, the code snapshot, and the sbatch
script submitit writes for Slurm options (through a stand-in `sbatch`)."""

from __future__ import annotations

import functools
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from itertools import count
from pathlib import Path

import pandas as pd
import pytest
import submitit.local.local
import torch

from ablations import rundir
from ablations.cli import main
from ablations.cluster import LaunchOptions, jobs, submit
from ablations.cluster.jobs import TrainJob, task_status
from ablations.cluster.submit import COMMIT_VAR
from ablations.config import resolve_config
from ablations.tasks import Task, context, plan
from ablations.train.records import load_record

TIMING = {"images_per_s", "train_s"}
LONG = {"iterations": 60, "eval_every": 5}  # long enough to be killed half-way


@pytest.fixture(autouse=True)
def _one_thread_per_job(monkeypatch):
    # Jobs inherit the environment: two jobs on two cores, one OpenMP thread each.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _deterministic(curves: pd.DataFrame) -> pd.DataFrame:
    return curves[~curves["metric"].isin(TIMING)].reset_index(drop=True)


def _task(config):
    return Task("train", config.run_id, ("test",), config=config)


def _ctx(results, data):
    return context(results=results, data=data, device="cpu")


def _wait(predicate, what, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_local_executor_runs_tasks_kill_and_rerun_resumes(tmp_path, tiny_cifar):
    long = resolve_config("resnet20", profile="smoke", device="cpu", **LONG)
    short = resolve_config("plain20", profile="smoke", device="cpu")
    # The uninterrupted reference runs as the jobs do: its own process, one thread (the float
    # reduction order, which this lr amplifies, depends on the thread count).
    subprocess.run(
        [sys.executable, "-m", "ablations", "train", "resnet20", "--profile", "smoke",
         "--device", "cpu", "--iterations", "60", "--eval-every", "5", "--data", str(tiny_cifar),
         "--out", str(tmp_path / "ref")],
        check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    reference = load_record(tmp_path / "ref" / long.run_id)
    assert reference is not None
    ctx = _ctx(tmp_path / "results", tiny_cifar)
    tasks = [_task(long), _task(short)]
    options = LaunchOptions(executor="local", jobs=2)
    lines: list[str] = []
    counts: dict[str, int] = {}
    first = threading.Thread(
        target=lambda: counts.update(
            submit.execute_submitted(tasks, ctx, options=options, log=lines.append)
        )
    )
    first.start()
    victim = ctx.runs_dir / long.run_id
    _wait(lambda: (victim / "checkpoint.pt").exists(), "the first checkpoint")
    assert task_status(victim).state == "running"
    pid = json.loads((victim / rundir.HEARTBEAT).read_text())["pid"]
    os.kill(pid, signal.SIGKILL)  # the training process, mid-run
    first.join(timeout=120)
    assert counts["submitted"] == 2 and counts["unfinished"] == 1, lines
    assert task_status(ctx.runs_dir / short.run_id).state == "done"
    killed = task_status(victim)
    assert killed.state == "failed" and killed.submissions == 1
    assert not (victim / "summary.json").exists()

    # A second `ablate run` submits only the killed run, which resumes from its checkpoint.
    again = submit.execute_submitted(tasks, ctx, options=options, log=lines.append)
    assert again["submitted"] == 1 and again["done"] == 1 and again["unfinished"] == 0
    resumed = pd.read_csv(victim / "curves.csv")
    pd.testing.assert_frame_equal(_deterministic(resumed), _deterministic(reference.curves))
    assert torch.equal(
        torch.load(victim / "model.pt")["fc.weight"],
        torch.load(reference.run_dir / "model.pt")["fc.weight"],
    )
    starts = json.loads((victim / "env.json").read_text())
    assert len(starts) == 2 and starts[1]["from_iteration"] > 0  # resumed, not restarted
    record = jobs.read_record(victim)
    assert record["submissions"] == 2 and record["executor"] == "local"
    # The job ran the snapshot's code, and recorded the snapshot's commit.
    assert "/.snapshots/" in record["code"] and record["code"].startswith(str(ctx.results))
    assert {s["git_commit"] for s in starts} == {record["commit"]}
    assert (victim / rundir.JOB_LOGS).is_dir()  # submitit's logs, next to the run
    # Results reach runs.csv through the run directories only.
    runs = pd.read_csv(ctx.results / "runs.csv")
    assert set(runs["run_id"]) == {long.run_id, short.run_id}
    assert set(runs["experiments"]) == {"test"}  # the planned membership, as in-process
    # Nothing left to do: nothing is submitted twice.
    third = submit.execute_submitted(tasks, ctx, options=options, log=lines.append)
    assert third["submitted"] == 0 and third["done"] == 2


class _Ended:
    """A job controller that has already ended (what start_controller would return)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int:
        return 0


@pytest.mark.parametrize(
    ("visible", "gpus", "expected"),
    [
        (None, 2, [("0", []), ("1", []), ("0", [])]),
        ("4,5,6,7", 4, [("4", []), ("5", []), ("6", [])]),
        ("6, 2", 2, [("6", []), ("2", []), ("6", [])]),
        ("GPU-a1,MIG-b2", 2, [("0", ["export CUDA_VISIBLE_DEVICES=GPU-a1"]),
                              ("0", ["export CUDA_VISIBLE_DEVICES=MIG-b2"]),
                              ("0", ["export CUDA_VISIBLE_DEVICES=GPU-a1"])]),
    ],
)  # fmt: skip
def test_local_jobs_land_on_the_gpus_this_process_sees(tmp_path, monkeypatch, visible, gpus,
                                                       expected):  # fmt: skip
    """Torch's GPU i is the i-th entry of CUDA_VISIBLE_DEVICES: that is the GPU a job gets."""
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(submit, "POLL_S", 0.0)
    started, pids = [], count(10**6)

    def start_controller(**kw):  # what submitit's local executor would start the job with
        started.append((kw["cuda_devices"], list(kw["setup"])))
        return _Ended(next(pids))

    monkeypatch.setattr(submitit.local.local, "start_controller", start_controller)
    configs = [resolve_config("resnet20", profile="smoke", seed=s, device="cpu") for s in range(3)]
    train_jobs = [TrainJob(c.to_json(), runs_dir=str(tmp_path / "runs"), data=None,
                           device="cuda") for c in configs]  # fmt: skip
    snapshot = submit.Snapshot(root=tmp_path, tag="t", commit="c")
    lines: list[str] = []
    submit._run_local(train_jobs, options=LaunchOptions(executor="local", jobs=3),
                      snapshot=snapshot, log=lines.append)  # fmt: skip
    assert started == expected
    gpu = [line.split(", ")[-1] for line in lines if "started" in line]
    assert gpu == [f"GPU {(visible or '0,1').replace(' ', '').split(',')[i % gpus]})"
                   for i in range(3)]  # fmt: skip


@pytest.mark.slow
def test_a_setup_line_gives_a_local_job_a_gpu_by_uuid(tmp_path):
    """Submitit takes GPU numbers only; the exported name is what the job sees."""
    executor = submitit.LocalExecutor(folder=tmp_path)
    executor.update_parameters(timeout_min=1, **submit.gpu_parameters("GPU-5a1b"))
    job = executor.submit(functools.partial(os.getenv, "CUDA_VISIBLE_DEVICES"))
    assert job.result() == "GPU-5a1b"


def test_status_of_each_state(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    missing, pending, running, done, failed, lost = (runs / n for n in
        ("missing", "pending", "running", "done", "failed", "lost"))  # fmt: skip
    me = {"executor": "local", "job_id": str(os.getpid()), "log_dir": "", "snapshot": "s",
          "commit": "c"}  # fmt: skip
    for d in (pending, running, done, failed):
        d.mkdir(parents=True)
        jobs.submitted(d, **me)  # type: ignore[arg-type]
    with jobs.heartbeat(running, every=0.05):
        time.sleep(0.1)
        assert task_status(running).state == "running"
    (done / "summary.json").write_text('{"status": "complete"}')
    jobs.update_record(failed, error="RuntimeError: boom", error_submission=1)
    lost.mkdir(parents=True)
    jobs.submitted(lost, **(me | {"job_id": "999999999"}))  # type: ignore[arg-type]
    (lost / "submitit").mkdir()
    (lost / "submitit" / "1_0_log.err").write_text("step 3\nKilled\n")
    states = {d.name: task_status(d) for d in (missing, pending, done, failed, lost)}
    assert {k: s.state for k, s in states.items()} == {
        "missing": "missing", "pending": "pending", "done": "done", "failed": "failed",
        "lost": "failed",
    }  # fmt: skip
    assert states["failed"].detail == "RuntimeError: boom"
    assert states["lost"].detail == "Killed"  # the log's last line
    # A resubmission of a failed run is pending again, not failed by its old error.
    jobs.submitted(failed, **me)  # type: ignore[arg-type]
    assert task_status(failed).state == "pending" and task_status(failed).submissions == 2


def test_checkpoint_counts_requeues_and_resubmits_itself(tmp_path):
    config = resolve_config("resnet20", profile="smoke", device="cpu")
    job = TrainJob(config.to_json(), runs_dir=str(tmp_path), data=None, device="cpu")
    job.run_dir.mkdir(parents=True)
    jobs.submitted(job.run_dir, executor="slurm", job_id="7_0", log_dir=tmp_path,
                   snapshot="s", commit="c")  # fmt: skip
    delayed = job.checkpoint()
    assert delayed.function is job and delayed.args == () and delayed.kwargs == {}
    job.checkpoint()
    assert task_status(job.run_dir).requeues == 2


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch):
    """A stand-in `sbatch` on PATH: keeps the script it is given and answers as Slurm does."""
    bin_dir, kept = tmp_path / "bin", tmp_path / "sbatch-scripts"
    bin_dir.mkdir()
    kept.mkdir()
    script = bin_dir / "sbatch"
    script.write_text(f'#!/bin/sh\ncp "$1" {kept}/\necho "Submitted batch job 4242"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    srun = bin_dir / "srun"  # submitit looks for it to tell a Slurm machine
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return kept


def test_slurm_submission_writes_the_sbatch_options(tmp_path, tiny_cifar, fake_sbatch, capsys):
    results = tmp_path / "results"
    code = main([
        "run", "--profile", "smoke", "--experiments", "degradation", "--seeds", "2",
        "--data", str(tiny_cifar), "--device", "cpu", "--results", str(results),
        "--reports", str(tmp_path / "reports"), "--executor", "slurm", "--jobs", "3",
        "--slurm-partition", "gpu-long", "--slurm-time", "90", "--gpus-per-task", "2",
        "--slurm-account", "lab42", "--slurm-option", "qos=high", "--cpus-per-task", "4",
    ])  # fmt: skip
    assert code == 0
    [script] = fake_sbatch.iterdir()
    text = script.read_text()
    for line in ("#SBATCH --partition=gpu-long", "#SBATCH --time=90", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --ntasks-per-node=2", "#SBATCH --account=lab42", "#SBATCH --qos=high",
                 "#SBATCH --array=0-7%3", "#SBATCH --signal=USR2@120",
                 # per task, and a task is one rank: 2 x 4 cores per node, as the README says
                 "#SBATCH --cpus-per-task=4"):  # fmt: skip
        assert line in text, line
    # Tasks are keyed by run id: each run directory records its array element and logs.
    planned = plan(["degradation"], profile="smoke", seeds=2, device=torch.device("cpu"))
    job_ids = set()
    for t in planned:
        run_dir = results / "runs" / t.config.run_id
        record = jobs.read_record(run_dir)
        assert record["executor"] == "slurm" and record["job_id"].startswith("4242_")
        assert (run_dir / rundir.JOB_LOGS).is_symlink()
        assert Path(os.readlink(run_dir / rundir.JOB_LOGS)).name == record["job_id"]
        job_ids.add(record["job_id"])
    assert len(job_ids) == 8
    assert "8 run(s) submitted" in capsys.readouterr().err
    # The queued runs are not submitted twice (no sacct here: their state reads as pending).
    assert main(["status", "--profile", "smoke", "--experiments", "degradation", "--seeds", "2",
                 "--results", str(results), "--device", "cpu"]) == 0  # fmt: skip
    assert "8 pending" in capsys.readouterr().out


def test_snapshot_commit_reaches_env(monkeypatch):
    from ablations.results import provenance

    provenance.git_commit.cache_clear()
    monkeypatch.setenv(COMMIT_VAR, "abc123def456")
    try:
        assert provenance.environment()["git_commit"] == "abc123def456"
    finally:
        provenance.git_commit.cache_clear()
