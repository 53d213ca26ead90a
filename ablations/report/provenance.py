"""Provenance warnings for any results table: rows produced from uncommitted code ("+dirty"
commits) and training runs of an older trainer (stale), said in bold. Pure: DataFrames in,
Markdown out."""

from __future__ import annotations

import pandas as pd

from ablations.report.tables import distinct
from ablations.versions import TRAINER_VERSION

DIRTY = "+dirty"


def dirty_note(df: pd.DataFrame, *, what: str) -> str:
    """A bold line naming the rows of `df` whose git_commit ends in "+dirty"; "" for none."""
    dirty = df[df["git_commit"].astype(str).str.endswith(DIRTY)]
    if dirty.empty:
        return ""
    return (f"**{len(dirty)} of {len(df)} {what} were produced from a dirty tree (commit "
            f"{distinct(dirty['git_commit'])}): uncommitted code; regenerate them from a clean "
            "commit.**")  # fmt: skip


def stale_note(runs: pd.DataFrame) -> str:
    """A bold line naming the runs recorded by another trainer version; "" for none."""
    stale = runs[runs["trainer_version"] != TRAINER_VERSION]
    if stale.empty:
        return ""
    labels = sorted({f"{r['run_id']} (trainer v{int(r['trainer_version'])})"
                     for r in stale.to_dict("records")})  # fmt: skip
    return (f"**{len(stale)} run(s) are stale, made by an older trainer than v{TRAINER_VERSION}; "
            f"`ablate run` trains them again: {', '.join(labels)}.**")  # fmt: skip


def provenance_notes(tables: dict[str, pd.DataFrame], *, runs: pd.DataFrame | None = None) -> str:
    """The bold notes for several tables ({"training runs": runs, "layer responses": ...}),
    one per line, and the stale runs; "" when everything is clean and current."""
    notes = [dirty_note(df, what=what) for what, df in tables.items()]
    if runs is not None:
        notes.append(stale_note(runs))
    return "\n\n".join(n for n in notes if n)
