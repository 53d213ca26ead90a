"""The environment a result was produced in, recorded next to every result."""

from __future__ import annotations

import hashlib
import inspect
import os
import platform
import subprocess
from collections.abc import Callable
from datetime import datetime, timezone
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType

import torch


def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str, cwd: Path) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


@cache
def git_commit(cwd: Path | None = None) -> str:
    """HEAD of the repository the command runs in, with "+dirty" for uncommitted changes to
    tracked files (results/ and reports/ excluded: writing them is what commands do). A job
    started from a code snapshot (ablations.launch.snapshot) gets the snapshot's commit from
    $ABLATE_GIT_COMMIT: its working directory is no checkout."""
    if os.environ.get("ABLATE_GIT_COMMIT"):
        return os.environ["ABLATE_GIT_COMMIT"]
    where = cwd or Path.cwd()
    commit = _git("rev-parse", "--short=12", "HEAD", cwd=where)
    if not commit:
        return "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                 ":!results", ":!reports", cwd=where)  # fmt: skip
    return commit + ("+dirty" if dirty else "")


@cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def driver_version() -> str:
    """The NVIDIA driver version (nvidia-smi), or "" without one."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


def device_name(device: str | torch.device = "cpu") -> str:
    """A human name for the device, e.g. "NVIDIA H100 80GB HBM3" or "AMD EPYC 7B13 (2 cores)"."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{cpu_model()} ({os.cpu_count()} cores)"


def environment(device: str | torch.device = "cpu") -> dict[str, str | int]:
    """Software versions, hardware and commit, as flat columns for a results row."""
    dev = torch.device(device)
    return {
        "machine": device_name(dev),
        "device": dev.type,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": package_version("torchvision"),
        "fvcore": package_version("fvcore"),
        "cuda": torch.version.cuda or "",
        "git_commit": git_commit(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def source_hash(*objects: ModuleType | Callable[..., object]) -> str:
    """A short hash of the source code of modules or functions: a result computed by other code
    is stale."""
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(inspect.getsource(obj).encode())
    return digest.hexdigest()[:12]
