"""Tidy CSV tables: a schema per table, validated on load, each write locked and atomic, so that
runs finishing at once lose no rows. A file that does not match its schema is reported by name,
never skipped or merged silently."""

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
BOOLS = {"true": True, "false": False, "1": True, "0": False}


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
    # there: an older table stays readable, and nothing measured is lost to a schema change.
    added: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    def empty(self) -> pd.DataFrame:
        return self.validate(pd.DataFrame({c: pd.Series(dtype=object) for c in self.columns}))

    def validate(self, df: pd.DataFrame, *, source: str | Path = "<table>") -> pd.DataFrame:
        df = df.assign(**{c: v for c, v in self.added.items() if c not in df.columns})
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise ResultsError(
                f"{source}: not a {self.name} table (missing columns: {', '.join(missing)}); "
                f"{self.fix}"
            )
        for column, kind in self.columns.items():
            try:
                df[column] = _coerce(df[column], kind)
            except (ValueError, TypeError, KeyError) as err:
                raise ResultsError(
                    f"{source}: column {column!r} does not hold {kind} values ({err}); "
                    "fix or regenerate the file"
                ) from None
        duplicated = df.duplicated(list(self.key), keep=False)
        if duplicated.any():
            first = df.loc[duplicated, list(self.key)].iloc[0].to_dict()
            raise ResultsError(f"{source}: duplicate rows for key {first}; remove one of them")
        extra = [c for c in df.columns if c not in self.columns]
        return df[[*self.columns, *extra]].reset_index(drop=True)


def _coerce(values: pd.Series, kind: ColumnType) -> pd.Series:
    if kind == "str":
        return values.fillna("").astype(str)
    if kind == "bool":
        return values.map(lambda v: BOOLS[str(v).lower()]).astype(bool)
    numbers = pd.to_numeric(values, errors="raise")
    if kind == "float":
        return numbers.astype("float64")
    if len(numbers) and not (numbers == numbers.round()).all():
        raise ValueError("not an integer")
    return numbers.astype("int64")


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
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes
        yield


def write_table(df: pd.DataFrame, path: str | Path, schema: Schema) -> None:
    """Validate and replace the file at `path` in one atomic step."""
    df = schema.validate(df, source=path)
    write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def _keys(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    return df[list(columns)].astype(str).agg("\x1f".join, axis=1)


def upsert(
    path: str | Path, rows: pd.DataFrame, schema: Schema, *, replace: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Add `rows` to the table at `path`, each replacing a stored row of its key in place; every
    stored row of a `replace` group in `rows` goes (a rerun's shorter curve). Returns the table."""
    path = Path(path)
    with locked(path):
        old = read_table(path, schema)
        new = schema.validate(rows, source="new rows")
        if replace and len(old):
            old = old[~_keys(old, replace).isin(set(_keys(new, replace)))]
        if len(old):
            combined = pd.concat([old, new], ignore_index=True)
            keys = _keys(combined, schema.key)
            last = ~keys.duplicated(keep="last")
            latest = combined[last].set_axis(keys[last])
            new = latest.loc[keys[~keys.duplicated()]].reset_index(drop=True)
        write_table(new, path, schema)
    return new
