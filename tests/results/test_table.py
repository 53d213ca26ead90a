from __future__ import annotations

import multiprocessing

import pandas as pd
import pytest

from ablations.results.table import ResultsError, Schema, read_table, upsert, write_table

SCHEMA = Schema(name="toy", columns={"name": "str", "n": "int", "x": "float", "ok": "bool"},
                key=("name",))  # fmt: skip


def _rows(*names, n=1):
    return pd.DataFrame([{"name": s, "n": n, "x": 0.5, "ok": True} for s in names])


def test_round_trip_keeps_types(tmp_path):
    path = tmp_path / "t.csv"
    write_table(_rows("a", "b"), path, SCHEMA)
    df = read_table(path, SCHEMA)
    assert df["n"].dtype == "int64" and df["x"].dtype == "float64" and df["ok"].dtype == bool
    assert list(df["name"]) == ["a", "b"]


def test_missing_file_is_an_empty_table(tmp_path):
    df = read_table(tmp_path / "none.csv", SCHEMA)
    assert df.empty and list(df.columns) == list(SCHEMA.columns)


def test_foreign_file_is_reported_by_name(tmp_path):
    path = tmp_path / "foreign.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(
        ResultsError, match=r"foreign\.csv: not a toy table \(missing columns: name"
    ):
        read_table(path, SCHEMA)


def test_corrupt_values_are_reported_with_the_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("name,n,x,ok\na,one,0.5,True\n")
    with pytest.raises(ResultsError, match=r"bad\.csv: column 'n' does not hold int"):
        read_table(path, SCHEMA)


def test_unreadable_file_is_reported(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(ResultsError, match=r"binary\.csv"):
        read_table(path, SCHEMA)


def test_duplicate_keys_are_an_error(tmp_path):
    with pytest.raises(ResultsError, match="duplicate rows"):
        SCHEMA.validate(_rows("a", "a"))


def test_upsert_replaces_in_place_and_appends(tmp_path):
    path = tmp_path / "t.csv"
    upsert(path, _rows("a", "b", "c"), SCHEMA)
    merged = upsert(path, _rows("b", "d", n=2), SCHEMA)
    assert read_table(path, SCHEMA).equals(merged)
    assert list(merged["name"]) == ["a", "b", "c", "d"]
    assert list(merged["n"]) == [1, 2, 1, 2]


def test_extra_columns_are_kept(tmp_path):
    path = tmp_path / "t.csv"
    write_table(_rows("a").assign(note="kept"), path, SCHEMA)
    assert read_table(path, SCHEMA).loc[0, "note"] == "kept"


def _writer(args):
    path, worker = args
    for i in range(10):
        upsert(path, _rows(f"w{worker}-{i}"), SCHEMA)


def test_concurrent_writers_lose_no_rows(tmp_path):
    path = tmp_path / "shared.csv"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_writer, [(path, w) for w in range(4)])
    assert len(read_table(path, SCHEMA)) == 40
    assert not list(tmp_path.glob(".shared.csv.*.tmp"))  # no temporary files left behind
