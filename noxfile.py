"""Sessions: `nox -s tests`, `nox -s ablate`, `nox -s lint`, `nox -s bench`, `nox -s typecheck`,
`nox -s golden`, `nox -s compat` (the tests at older torch releases). Each installs what it
needs and reuses its environment on the next call (uv, when installed, makes the first install
much faster: `pip install nox uv`)."""

from __future__ import annotations

import os

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def install(session: nox.Session, *groups: str, pins: tuple[str, ...] = ()) -> None:
    """The package (editable, so results record this checkout's commit) plus dependency groups,
    resolved in one install so that `pins` (exact releases) hold."""
    deps = [dep for group in groups for dep in nox.project.dependency_groups(PYPROJECT, group)]
    session.install("-e", ".", *deps, *pins)


def run_tests(session: nox.Session) -> None:
    workers = os.environ.get("PYTEST_WORKERS", "auto")
    session.run("pytest", "-n", workers, *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite; `-- -k NAME` etc. pass through to pytest."""
    install(session, "test")
    run_tests(session)


# Older torch releases the suite is also tested with (on a CPU; the default session takes the
# newest): the oldest pyproject.toml admits, and the GPU machine's image (README "On a GPU").
TORCH_RELEASES = {
    "oldest": ("torch==2.4.1", "torchvision==0.19.1"),
    "gpu-image": ("torch==2.11.0", "torchvision==0.26.0"),
}


@nox.session
@nox.parametrize("torch", list(TORCH_RELEASES))
def compat(session: nox.Session, torch: str) -> None:
    """The test suite at an older torch release; opt-in (each is a CUDA build of several GB)."""
    install(session, "test", pins=TORCH_RELEASES[torch])
    run_tests(session)


@nox.session
def ablate(session: nox.Session) -> None:
    """Run the missing runs of the default experiments, then regenerate reports/.
    `nox -s ablate -- --experiments complexity` chooses experiments."""
    install(session)
    session.run("ablate", "run", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """pytest-benchmark suites; `-- --benchmark-compare` compares with the last saved run."""
    install(session, "bench")
    session.run("pytest", "bench", "--benchmark-autosave", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    install_only = nox.project.dependency_groups(PYPROJECT, "lint")
    session.install(*install_only)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    install(session, "typecheck")
    session.run("mypy")


@nox.session
def golden(session: nox.Session) -> None:
    """Regenerate tests/golden/complexity.csv after an intended change to a model."""
    install(session)
    session.run("ablate", "golden", "--write")
