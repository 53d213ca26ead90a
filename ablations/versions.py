"""The trainer's version: a run recorded by another version is stale, not done (docs/results.md).

Bump TRAINER_VERSION when a change to training changes what a run with the same config produces;
tests/test_versions.py catches a forgotten bump. Version 0 is a run recorded before versions."""

from __future__ import annotations

TRAINER_VERSION = 1
STALE_DIR = ".stale"  # under the runs folder: set-aside runs (not globbed as runs: a dot folder)


def run_trainer_version(starts: list[dict[str, object]]) -> int:
    """A run's trainer version from its starts: the oldest (a resumed run is partly the older)."""
    found = [str(s.get("trainer_version", 0)) for s in starts]
    return min(int(v) if v.isdigit() else 0 for v in found) if found else 0


def stale_label(version: int) -> str | None:
    """ "stale (trainer vN, now vM)" for a run of another version; None for the current one."""
    if version == TRAINER_VERSION:
        return None
    return f"stale (trainer v{version}, now v{TRAINER_VERSION})"
