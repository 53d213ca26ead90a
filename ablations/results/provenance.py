"""The environment a result was produced in, recorded next to every result: no path of this
machine, only names, versions, the commit and short hashes that tell machines apart."""

from __future__ import annotations

import hashlib
import inspect
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType

import torch

from ablations import versions

DIRTY = "+dirty"  # the suffix of a commit with uncommitted changes: never in committed results


def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _run(*command: str, cwd: Path | None = None) -> str:
    """A command's stripped output; "" where it cannot run or fails."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


@cache
def git_commit(cwd: Path | None = None) -> str:
    """HEAD, with "+dirty" for uncommitted changes to tracked files outside results/ and reports/;
    a job run from a code snapshot (no checkout) reads the snapshot's from $ABLATE_GIT_COMMIT."""
    if os.environ.get("ABLATE_GIT_COMMIT"):
        return os.environ["ABLATE_GIT_COMMIT"]
    where = cwd or Path.cwd()
    commit = _run("git", "rev-parse", "--short=12", "HEAD", cwd=where)
    if not commit:
        return "unknown"
    dirty = _run("git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                 ":!results", ":!reports", cwd=where)  # fmt: skip
    return commit + (DIRTY if dirty else "")


@cache  # once per process and `what` (git_commit is cached too)
def warn_if_dirty(what: str) -> None:
    """Say on stderr that `what` comes from uncommitted code."""
    commit = git_commit()
    if commit.endswith(DIRTY):
        print(
            f"[ablate] warning: {what} from a dirty tree (commit {commit}); commit your changes "
            "first if these results are to be committed",
            file=sys.stderr,
            flush=True,
        )


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _read(path: str) -> str:
    """A system file's text; "" where it cannot be read."""
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpuinfo(*fields: str) -> str | None:
    """The value of the first /proc/cpuinfo line naming one of `fields` (None: no such line)."""
    lines = _read("/proc/cpuinfo").splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(fields)), None)


@cache
def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def _short_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@cache
def cpu_flags() -> str:
    """A short hash of the CPU's feature flags: two VMs sold under one vCPU name often expose
    different instruction sets (AVX-512, AMX), and with them other kernels. "": unreadable."""
    flags = _cpuinfo("flags", "Features")  # x86, ARM
    return "" if flags is None else _short_sha256(" ".join(sorted(set(flags.split()))))


@cache
def machine_id() -> str:
    """A short hash of /etc/machine-id (the raw id never leaves the machine): it tells two
    installations apart, not two VMs cloned from one image. "" where there is none."""
    ids = (_read(path).strip() for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"))
    raw = next(filter(None, ids), "")
    return _short_sha256("machine-id:" + raw) if raw else ""


def cpu_kernels() -> str:
    """The instruction sets of PyTorch's CPU kernels, e.g. "aten AVX512, onednn default" (lowered
    by ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA): a replicate made under lower ones shows it."""
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "default"
    return f"aten {torch.backends.cpu.get_cpu_capability()}, onednn {onednn}"


@cache
def driver_version() -> str:
    """The NVIDIA driver version (nvidia-smi), or "" without one."""
    out = _run("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader")
    return out.splitlines()[0] if out else ""


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
        "cpu_flags": cpu_flags(),
        "machine_id": machine_id(),
        "device": dev.type,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "cpu_kernels": cpu_kernels(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": package_version("torchvision"),
        "fvcore": package_version("fvcore"),
        "cuda": torch.version.cuda or "",
        "git_commit": git_commit(),
        "trainer_version": versions.TRAINER_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def source_hash(*objects: ModuleType | Callable[..., object]) -> str:
    """A short hash of the source code of modules or functions: a result of other code is stale."""
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(inspect.getsource(obj).encode())
    return digest.hexdigest()[:12]
