"""Tidy results tables on disk: a schema per table, validated on load, written atomically.

Tables are CSV (diffable, committed to the repository). Every write holds an exclusive lock and
replaces the file in one `os.replace`, so a crash never leaves half a table and concurrent
writers (several runs finishing at once) lose no rows. A file that does not match its schema is
reported by name; it is never skipped or merged silently.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from ablations.io import write_atomic
from ablations.registry import AblationsError

try:  # POSIX; elsewhere writes are still atomic, just not serialised between processes
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

ColumnType = Literal["str", "int", "float", "bool"]


class ResultsError(AblationsError):
    """A results file that cannot be read as the table it should be."""


@dataclass(frozen=True)
class Schema:
    """The columns a table must have (extra columns are kept) and the key that identifies a row."""

    name: str
    columns: Mapping[str, ColumnType]
    key: tuple[str, ...]
    fix: str = "move the file aside or regenerate it"  # what an invalid file's error suggests
    # Columns added after a table was first committed, and what an older file's rows read as
    # there ("" for an unknown machine hash, 0 for a run recorded before trainer versions): an
    # older table stays readable, and nothing measured is lost to a schema change.
    added: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    def empty(self) -> pd.DataFrame:
        return self.validate(pd.DataFrame({c: pd.Series(dtype=object) for c in self.columns}))

    def validate(self, df: pd.DataFrame, *, source: str | Path = "<table>") -> pd.DataFrame:
        absent = [c for c in self.added if c not in df.columns]
        if absent:
            df = df.assign(**{c: self.added[c] for c in absent})
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise ResultsError(
                f"{source}: not a {self.name} table (missing columns: {', '.join(missing)}); "
                f"{self.fix}"
            )
        df = df.copy()
        for column, kind in self.columns.items():
            df[column] = _coerce(df[column], kind, source=source, column=column)
        duplicated = df.duplicated(list(self.key), keep=False)
        if duplicated.any():
            first = df.loc[duplicated, list(self.key)].iloc[0].to_dict()
            raise ResultsError(f"{source}: duplicate rows for key {first}; remove one of them")
        extra = [c for c in df.columns if c not in self.columns]
        return df[[*self.columns, *extra]].reset_index(drop=True)


def _coerce(values: pd.Series, kind: ColumnType, *, source: str | Path, column: str) -> pd.Series:
    try:
        if kind == "str":
            return values.fillna("").astype(str)
        if kind == "bool":
            mapping = {"true": True, "false": False, "1": True, "0": False}
            out = values.map(lambda v: v if isinstance(v, bool) else mapping[str(v).lower()])
            return out.astype(bool)
        numbers = pd.to_numeric(values, errors="raise")
        if kind == "int":
            if len(numbers) and not (numbers == numbers.round()).all():
                raise ValueError("not an integer")
            return numbers.astype("int64")
        return numbers.astype("float64")
    except (ValueError, TypeError, KeyError) as err:
        raise ResultsError(
            f"{source}: column {column!r} does not hold {kind} values ({err}); "
            "fix or regenerate the file"
        ) from None


def read_table(path: str | Path, schema: Schema) -> pd.DataFrame:
    """The table at `path`, validated; an empty table when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return schema.empty()
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ResultsError(
            f"{path}: not a readable CSV table ({type(err).__name__}); move it aside and rerun"
        ) from None
    return schema.validate(df, source=path)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (via a sibling .lock file) for a read-modify-write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def write_table(df: pd.DataFrame, path: str | Path, schema: Schema) -> None:
    """Validate and replace the file at `path` in one atomic step."""
    df = schema.validate(df, source=path)
    write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def upsert(
    path: str | Path, rows: pd.DataFrame, schema: Schema, *, replace: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Add `rows` to the table at `path`, replacing rows with the same key; returns the table.
    `replace` names columns whose values identify a whole group (e.g. a run's curve): every
    stored row of a group in `rows` goes, so a rerun with fewer points leaves none behind."""
    path = Path(path)
    with locked(path):
        old = read_table(path, schema)
        new = schema.validate(rows, source="new rows")
        if replace and len(old):
            groups = set(new[list(replace)].astype(str).agg("\x1f".join, axis=1))
            old_groups = old[list(replace)].astype(str).agg("\x1f".join, axis=1)
            old = old[~old_groups.isin(groups)].reset_index(drop=True)
        merged = merge(old, new, schema)
        write_table(merged, path, schema)
    return merged


def merge(old: pd.DataFrame, new: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """`old` with rows of the same key replaced in place by `new`'s, other new rows appended."""
    if not len(old):
        return new.reset_index(drop=True)
    combined = pd.concat([old, new], ignore_index=True)
    keys = combined[list(schema.key)].astype(str).agg("\x1f".join, axis=1)
    first_seen = {k: i for i, k in reversed(list(enumerate(keys)))}
    latest = combined[~keys.duplicated(keep="last")]
    order = keys[latest.index].map(first_seen).sort_values(kind="stable").index
    return latest.loc[order].reset_index(drop=True)
