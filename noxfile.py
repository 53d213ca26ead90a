"""Sessions: `nox -s tests`, `nox -s ablate`, `nox -s lint`, `nox -s bench`, `nox -s typecheck`,
`nox -s golden`, `nox -s docs` (the docs site), `nox -s compat` (the tests at older torch
releases), `nox -s latest` (the tests at the newest releases) and `nox -s lock`. Each installs
what it needs and reuses its environment on the next call (uv, when installed, makes the first
install much faster: `pip install nox uv`).

Every session but `compat` and `latest` installs the exact releases of
requirements/constraints.txt, so a new release of a dependency changes nothing until
`nox -s lock` takes it in; `nox -s latest` shows first what it would break."""

from __future__ import annotations

import os

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
CONSTRAINTS = "requirements/constraints.txt"
GROUPS = ("test", "lint", "bench", "typecheck", "docs")  # what the lock file covers


def install(session: nox.Session, *groups: str, pins: tuple[str, ...] = ()) -> None:
    """The package (editable, so results record this checkout's commit) plus dependency groups,
    resolved in one install: at the locked releases, or with `pins` (exact releases) holding."""
    deps = [dep for group in groups for dep in nox.project.dependency_groups(PYPROJECT, group)]
    lock = () if pins else ("-c", CONSTRAINTS)
    session.install(*lock, "-e", ".", *deps, *pins)


def run_tests(session: nox.Session) -> None:
    workers = os.environ.get("PYTEST_WORKERS", "auto")
    session.run("pytest", "-n", workers, *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite; `-- -k NAME` etc. pass through to pytest."""
    install(session, "test")
    run_tests(session)


# Older torch releases the suite is also tested with (on a CPU; the default session takes the
# locked one): the oldest pyproject.toml admits, and 2.11, a release GPU machines often come with
# preinstalled.
TORCH_RELEASES = {
    "oldest": ("torch==2.4.1", "torchvision==0.19.1"),
    "2.11": ("torch==2.11.0", "torchvision==0.26.0"),
}


@nox.session
@nox.parametrize("torch", list(TORCH_RELEASES))
def compat(session: nox.Session, torch: str) -> None:
    """The test suite at an older torch release; opt-in (each is a CUDA build of several GB)."""
    install(session, "test", pins=TORCH_RELEASES[torch])
    run_tests(session)


@nox.session
def latest(session: nox.Session) -> None:
    """The test suite at the newest release of every dependency; opt-in, ahead of `nox -s lock`."""
    session.install("--upgrade", "-e", ".", *nox.project.dependency_groups(PYPROJECT, "test"))
    run_tests(session)


@nox.session(venv_backend="uv")
def lock(session: nox.Session) -> None:
    """Resolve requirements/constraints.txt anew: the newest releases for every Python the
    package admits, which all other sessions then install."""
    groups = [arg for group in GROUPS for arg in ("--group", group)]
    session.run(
        "uv", "pip", "compile", "pyproject.toml", "requirements/tools.in", *groups,
        "--universal", "--python-version", "3.10", "--upgrade",
        "--custom-compile-command", "nox -s lock", "-o", CONSTRAINTS,
    )  # fmt: skip


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
    session.install("-c", CONSTRAINTS, *nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    install(session, "typecheck")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """The prose check on README.md and docs/, then the site in strict mode into site/: a broken
    link, anchor or page fails the build. `nox -s docs -- serve` serves it at localhost:8000."""
    install(session, "docs")  # the package too: the CLI page is written from its parser
    session.run("python", "scripts/prose.py", "README.md", "docs")
    command = session.posargs or ["build"]
    session.run("mkdocs", *command, "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def golden(session: nox.Session) -> None:
    """Regenerate tests/golden/complexity.csv after an intended change to a model."""
    install(session)
    session.run("ablate", "golden", "--write")
