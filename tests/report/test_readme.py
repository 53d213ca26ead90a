"""The README's generated blocks: the mechanism, and that the committed README matches results/."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ablations.registry import AblationsError
from ablations.report import readme
from ablations.results import schemas

TEXT = """intro
<!-- ablate:alpha -->
old alpha
<!-- /ablate:alpha -->
between
<!-- ablate:beta -->
<!-- /ablate:beta -->
outro
"""


def blocks(counter: dict[str, int]) -> dict[str, readme.BlockFn]:
    def alpha(results: Path) -> str:
        counter["alpha"] = counter.get("alpha", 0) + 1
        return f"alpha from {results.name}"

    return {"alpha": alpha, "beta": lambda results: "| a |\n|---|\n| 1 |\n\n"}


def test_fill_regenerates_only_the_marked_text():
    out = readme.fill(TEXT, blocks({}), results=Path("res"))
    assert out == TEXT.replace("old alpha", "alpha from res").replace(
        "<!-- ablate:beta -->\n", "<!-- ablate:beta -->\n| a |\n|---|\n| 1 |\n"
    )
    # Idempotent: a second pass changes nothing.
    assert readme.fill(out, blocks({}), results=Path("res")) == out


def test_unknown_block_is_an_error_naming_the_known_ones():
    with pytest.raises(AblationsError, match=r"'gamma' has no generator; known: alpha, beta"):
        readme.fill(TEXT + "<!-- ablate:gamma -->\n<!-- /ablate:gamma -->\n", blocks({}),
                    results=Path("r"))  # fmt: skip


def test_update_and_stale_blocks(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(TEXT)
    assert readme.stale_blocks(path, blocks({}), results=tmp_path) == ["alpha", "beta"]
    assert readme.update(path, blocks({}), results=tmp_path)
    assert readme.stale_blocks(path, blocks({}), results=tmp_path) == []
    assert not readme.update(path, blocks({}), results=tmp_path)


ROOT = Path(__file__).resolve().parents[2]


def test_committed_readme_figures_match_the_committed_results():
    """Every number the README quotes between markers is what results/ gives now."""
    from ablations.report import readme_blocks

    readme_path = ROOT / "README.md"
    assert readme.block_names(readme_path.read_text()), "the README has generated blocks"
    assert readme.stale_blocks(readme_path, readme_blocks.BLOCKS, results=ROOT / "results") == []


def test_ablate_report_rewrites_only_the_readme_beside_its_results(tmp_path, capsys):
    from ablations.cli import main

    page = tmp_path / "README.md"
    page.write_text("x\n<!-- ablate:runs-summary -->\nold\n<!-- /ablate:runs-summary -->\n")
    other = tmp_path / "elsewhere"
    assert main(["report", "--results", str(other), "--out", str(tmp_path / "r1"),
                 "--readme", str(page)]) == 0  # fmt: skip
    assert "old" in page.read_text()
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "r2"),
                 "--readme", str(page), "--check-readme"]) == 2  # fmt: skip
    assert "blocks runs-summary differ" in capsys.readouterr().err
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "r2"),
                 "--readme", str(page)]) == 0  # fmt: skip
    assert "No training runs are committed yet." in page.read_text()


def test_the_module_map_names_every_module():
    """The README's module map stays true: every module of the package is named in it (by its
    path under ablations/, or by file name on a line that groups several)."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```\nablations/\n")
    block = readme[start : readme.index("```", start + 4)]
    package = ROOT / "ablations"

    def named(rel: str) -> bool:
        if rel.endswith("/__init__.py"):  # a subpackage: its folder is named
            return rel.removesuffix("__init__.py") in block
        return rel in block or rel.rsplit("/", 1)[-1] in block

    rels = [p.relative_to(package).as_posix() for p in package.rglob("*.py")]
    missing = [rel for rel in rels if not named(rel)]
    assert not missing, f"add these to the README's module map: {missing}"


def test_cpu_throughput_block_shows_one_machine(tmp_path: Path):
    """A table re-measured on a second CPU holds both machines' rows: the block shows one
    machine's numbers (the report's choice: the most measured, then the fastest) with its name
    alone, never a median across the two."""
    from ablations.report.readme_blocks import cpu_throughput
    from ablations.results.table import read_table, write_table

    committed = read_table(Path("results") / schemas.THROUGHPUT_FILE, schemas.THROUGHPUT)
    other = committed.assign(
        machine="Other CPU (2 cores)", cpu_flags="0123456789ab",
        images_per_s=committed["images_per_s"] * 1000, created_at="9999-01-01T00:00:00+00:00",
    )  # fmt: skip
    write_table(
        pd.concat([committed, other]), tmp_path / schemas.THROUGHPUT_FILE, schemas.THROUGHPUT
    )
    block = cpu_throughput(tmp_path)
    assert "Other CPU (2 cores)" in block
    assert committed["machine"].iloc[0] not in block
    alone = tmp_path / "alone"
    alone.mkdir()
    write_table(other, alone / schemas.THROUGHPUT_FILE, schemas.THROUGHPUT)
    assert block == cpu_throughput(alone)
