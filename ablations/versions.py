"""The version of the code that produced a training run, so that a run made by an older trainer
is flagged stale instead of silently counting as done.

TRAINER_VERSION is bumped by hand whenever a change to training (loop, data preparation,
evaluation, initialisation) changes what a run with the same config produces; a change that
forgets it fails tests/test_versions.py, which trains two pinned short runs and compares
their losses with tests/golden/trainer.json, written at this version. It is recorded in
every start of a run (env.json, next to the git commit) and in runs.csv; `ablate plan` shows a
run recorded by another version as "stale (trainer vN, now vM)", `ablate run` retrains it, and
the old run directory is moved aside to runs/.stale/<run_id>.v<N>/, never deleted.

Version 0 is what runs recorded before versions existed read as.
"""

from __future__ import annotations

TRAINER_VERSION = 1
STALE_DIR = ".stale"  # under the runs folder: set-aside runs (not globbed as runs: a dot folder)


def run_trainer_version(starts: list[dict[str, object]]) -> int:
    """The trainer version of a run from its env.json starts: the oldest of them (a run resumed
    by a newer trainer is still partly the older one's), 0 for starts recorded before versions."""
    found = [str(s.get("trainer_version", 0)) for s in starts]
    return min(int(v) if v.isdigit() else 0 for v in found) if found else 0


def stale_label(version: int) -> str | None:
    """The label of a run of another trainer version, "stale (trainer vN, now vM)"; None for a
    run of the current one."""
    if version == TRAINER_VERSION:
        return None
    return f"stale (trainer v{version}, now v{TRAINER_VERSION})"
