"""The code a job runs, pinned at submission (as pycls and submitit's RsyncSnapshot do): a copy
of the `ablations` package under <results>/.snapshots/<tag>/, keyed by a hash of its files, so
editing the checkout mid-sweep does not change queued or running jobs. Jobs start in the
snapshot's folder with it first on PYTHONPATH, and ABLATE_GIT_COMMIT tells the environment
record (ablations.results.provenance) the commit the snapshot was taken at."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ablations
from ablations.results import provenance

SNAPSHOTS_DIR = ".snapshots"
COMMIT_VAR = "ABLATE_GIT_COMMIT"  # read by ablations.results.provenance.git_commit


@dataclass(frozen=True)
class Snapshot:
    root: Path  # the folder holding the `ablations` package copy
    tag: str
    commit: str


def code_hash(package: Path) -> str:
    digest = hashlib.sha256()
    files = (p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in sorted(files):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def take(results: Path) -> Snapshot:
    """Copy the running `ablations` package (once per distinct content) into results/."""
    package = Path(ablations.__file__).resolve().parent
    commit = os.environ.get(COMMIT_VAR) or provenance.git_commit(package.parent)
    tag = code_hash(package)
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
    extra = env or {}
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", COMMIT_VAR, *extra)}
    cwd = Path.cwd()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(snap.root), *filter(None, [saved["PYTHONPATH"]])]
    )
    os.environ[COMMIT_VAR] = snap.commit
    os.environ.update(extra)
    os.chdir(snap.root)
    try:
        yield
    finally:
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
