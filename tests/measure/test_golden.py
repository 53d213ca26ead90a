"""The golden file as the projection of the complexity table: written incrementally, and checked
with each missing row or entry named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ablations.cli import main
from ablations.measure import complexity, golden
from ablations.registry import derive, register_variant
from ablations.results import schemas
from ablations.results.table import read_table, write_table

NAMES = ["resnet20", "plain20"]
NEW = "resnet20-golden-new"


def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list that collects the name of each variant complexity_row counts."""
    seen: list[str] = []
    real = complexity.complexity_row

    def row(variant):  # type: ignore[no-untyped-def]
        seen.append(variant.name)
        return real(variant)

    monkeypatch.setattr(complexity, "complexity_row", row)
    return seen


def test_write_counts_only_what_the_table_lacks(tmp_path, monkeypatch, scratch_registry):
    path, results = tmp_path / "golden.csv", tmp_path / "results"
    first = golden.write(path, results=results, names=NAMES)
    assert list(first["name"]) == NAMES and list(first.columns) == list(schemas.GOLDEN.columns)
    assert first.loc[0, "params"] == 269_722
    seen = counted(monkeypatch)
    pd.testing.assert_frame_equal(golden.write(path, results=results, names=NAMES), first)
    assert seen == []  # nothing changed: nothing counted
    register_variant(derive("resnet20", name=NEW, width=32))
    table = golden.write(path, results=results, names=[*NAMES, NEW])
    assert seen == [NEW]
    assert list(table["name"]) == [*NAMES, NEW]  # the registry's order
    assert read_table(path, schemas.GOLDEN).equals(table)
    rows = read_table(results / schemas.COMPLEXITY_FILE, schemas.COMPLEXITY)
    assert set(rows["name"]) == {*NAMES, NEW}


def test_check_names_a_variant_without_a_row(tmp_path, scratch_registry):
    path, results = tmp_path / "golden.csv", tmp_path / "results"
    golden.write(path, results=results, names=NAMES)
    register_variant(derive("resnet20", name=NEW, width=32))
    where = results / schemas.COMPLEXITY_FILE
    assert golden.check(path, results=results, names=NAMES) == []
    assert golden.check(path, results=results, names=[*NAMES, NEW]) == [
        f"{NEW}: registered but has no row in {where}; run `ablate golden --write`"
    ]
    golden.write(path, results=results, names=[*NAMES, NEW])
    assert golden.check(path, results=results, names=[*NAMES, NEW]) == []


def test_check_names_stale_rows_drifted_counts_and_unregistered_entries(tmp_path):
    path, results = tmp_path / "golden.csv", tmp_path / "results"
    golden.write(path, results=results, names=NAMES)
    where = results / schemas.COMPLEXITY_FILE
    table = read_table(where, schemas.COMPLEXITY)
    table.loc[table["name"] == "plain20", "code_version"] = "older-code"
    write_table(table, where, schemas.COMPLEXITY)
    entries = read_table(path, schemas.GOLDEN)
    entries.loc[entries["name"] == "resnet20", "params"] = 1
    extra = pd.DataFrame([{"name": "resnet-gone", "input_size": 32, "params": 1, "macs": 1}])
    write_table(pd.concat([entries, extra]), path, schemas.GOLDEN)
    assert golden.check(path, results=results, names=NAMES) == [
        f"plain20: its row in {where} is out of date (another architecture, counting code or "
        "fvcore); run `ablate golden --write`",
        "resnet-gone: golden entry for a variant that is not registered",
        f"resnet20: params 1 in the golden file, 269722 in {where}",
    ]


def test_differences_say_which_side_lacks_what():
    entries = pd.DataFrame([{"name": n, "input_size": 32, "params": 1, "macs": 1}
                            for n in ("resnet20", "gone")])  # fmt: skip
    rows = entries.iloc[[0]].assign(name="plain20")
    assert golden.differences(entries, rows, where=Path("t.csv")) == [
        "gone: golden entry for a variant that is not registered",
        "plain20: registered but has no golden entry; run `ablate golden --write`",
        "resnet20: registered but has no row in t.csv; run `ablate golden --write`",
    ]


def test_ablate_golden_names_what_is_missing(tmp_path, capsys, scratch_registry):
    path, results = tmp_path / "golden.csv", tmp_path / "results"
    rows = complexity.update(results / schemas.COMPLEXITY_FILE, ["resnet20"])
    write_table(golden.project(rows, ["resnet20"]), path, schemas.GOLDEN)
    argv = ["golden", "--path", str(path), "--results", str(results)]
    capsys.readouterr()  # complexity's progress lines
    assert main(argv) == 2  # every other registered variant lacks its row and entry
    out, err = capsys.readouterr()
    where = results / schemas.COMPLEXITY_FILE
    assert f"resnet56: registered but has no row in {where}; run `ablate golden --write`" in out
    assert not any(line.startswith("resnet20:") for line in out.splitlines())
    assert err.startswith("ablate: error: ") and err.count("\n") == 1
