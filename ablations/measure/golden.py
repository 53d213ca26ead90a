"""The golden complexity file (`ablate golden --write`): params and MACs of every registered
variant, as the tests expect, reviewed in diffs. It is the projection of results/complexity.csv,
which `write` first brings up to date, counting only what is missing or stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ablations.measure import complexity
from ablations.registry import get_variant, list_variants
from ablations.results.schemas import COMPLEXITY, COMPLEXITY_FILE, GOLDEN
from ablations.results.table import read_table, write_table

DEFAULT_PATH = Path("tests/golden/complexity.csv")
DEFAULT_RESULTS = Path("results")
FIX = "run `ablate golden --write`"


def table_path(results: Path) -> Path:
    return results / COMPLEXITY_FILE


def project(rows: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The golden rows of `names`, in that order, from complexity rows that hold them all."""
    by_name = rows.drop_duplicates("name", keep="last").set_index("name")
    return by_name.loc[list(names)].reset_index()[list(GOLDEN.columns)]


def up_to_date(results: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The rows of the complexity table in `results` that `complexity.update` would reuse."""
    stored = read_table(table_path(results), COMPLEXITY)
    return complexity.reusable([get_variant(n) for n in names], stored)


def outdated(results: Path, names: Sequence[str] | None = None) -> list[str]:
    """The registered variants whose counts `write` has to compute: no row, or a stale one."""
    names = list_variants() if names is None else list(names)
    current = up_to_date(results, names)
    return [n for n in names if n not in current]


def write(
    path: Path = DEFAULT_PATH,
    *,
    results: Path = DEFAULT_RESULTS,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Update the complexity table for `names` (default: the registry), write its projection."""
    names = list_variants() if names is None else list(names)
    table = complexity.update(table_path(results), names)
    golden = project(table, names)
    write_table(golden, path, GOLDEN)
    return golden


def check(
    path: Path = DEFAULT_PATH,
    *,
    results: Path = DEFAULT_RESULTS,
    names: Sequence[str] | None = None,
) -> list[str]:
    """Where the golden file and the up-to-date complexity rows differ, one line per problem."""
    names = list_variants() if names is None else list(names)
    where = table_path(results)
    stored = set(read_table(where, COMPLEXITY)["name"])
    current = up_to_date(results, names)
    missing = [n for n in names if n not in stored]
    stale = [n for n in names if n in stored and n not in current]
    lines = [f"{n}: registered but has no row in {where}; {FIX}" for n in missing]
    lines += [f"{n}: its row in {where} is out of date (another architecture, counting code or "
              f"fvcore); {FIX}" for n in stale]  # fmt: skip
    expected = read_table(path, GOLDEN)
    expected = expected[~expected["name"].isin([*missing, *stale])]
    actual = project(pd.DataFrame(list(current.values()), columns=list(COMPLEXITY.columns)),
                     [n for n in names if n in current])  # fmt: skip
    return sorted(lines + differences(expected, actual, where=where, registered=names))


def differences(
    expected: pd.DataFrame,
    actual: pd.DataFrame,
    *,
    where: str | Path = DEFAULT_RESULTS / COMPLEXITY_FILE,
    registered: Sequence[str] | None = None,
) -> list[str]:
    """Golden rows against complexity rows (from `where`), one line per difference."""
    known = set(list_variants() if registered is None else registered)
    want = expected.set_index("name").to_dict("index")
    got = actual.set_index("name").to_dict("index")
    lines = []
    for name in got.keys() - want.keys():
        unregistered = f"a row in {where} for a variant that is not registered"
        lines.append(f"{name}: registered but has no golden entry; {FIX}" if name in known
                     else f"{name}: {unregistered}")  # fmt: skip
    for name in want.keys() - got.keys():
        lines.append(f"{name}: registered but has no row in {where}; {FIX}" if name in known
                     else f"{name}: golden entry for a variant that is not registered")  # fmt: skip
    for name in want.keys() & got.keys():
        for column, value in want[name].items():
            if got[name][column] != value:
                lines.append(f"{name}: {column} {value} in the golden file, "
                             f"{got[name][column]} in {where}")  # fmt: skip
    return sorted(lines)
