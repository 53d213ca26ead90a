"""Provenance warnings in bold: rows of any results table produced from uncommitted code
("+dirty" commits), and training runs of an older trainer (stale)."""

from __future__ import annotations

import pandas as pd

from ablations.report.tables import distinct
from ablations.versions import TRAINER_VERSION

DIRTY = "+dirty"


def provenance_notes(tables: dict[str, pd.DataFrame], *, runs: pd.DataFrame) -> str:
    """The notes, one per paragraph, for the tables ({"training runs": runs, ...}) and the stale
    runs; "" when everything is clean and current."""
    notes = []
    for what, df in tables.items():
        dirty = df[df["git_commit"].astype(str).str.endswith(DIRTY)]
        if len(dirty):
            notes.append(
                f"**{len(dirty)} of {len(df)} {what} were produced from a dirty tree "
                f"(commit {distinct(dirty['git_commit'])}): uncommitted code; "
                "regenerate them from a clean commit.**"
            )
    stale = runs[runs["trainer_version"] != TRAINER_VERSION]
    if len(stale):
        versions = stale["trainer_version"].astype(int).astype(str)
        labels = sorted(set(stale["run_id"] + " (trainer v" + versions + ")"))
        notes.append(
            f"**{len(stale)} run(s) are stale, made by an older trainer than "
            f"v{TRAINER_VERSION}; `ablate run` trains them again: "
            f"{', '.join(labels)}.**"
        )
    return "\n\n".join(notes)
