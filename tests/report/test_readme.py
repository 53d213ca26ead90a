"""The pages' generated blocks and links: the mechanism, and that the committed README, docs
pages and report match results/ and link only to what exists."""

from __future__ import annotations

import argparse
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


def test_unknown_block_is_an_error_naming_the_page_and_the_known_ones():
    with pytest.raises(AblationsError, match=r"^docs/a.md: block 'gamma' has no generator; "
                       r"known: alpha, beta$"):  # fmt: skip
        readme.fill(TEXT + "<!-- ablate:gamma -->\n<!-- /ablate:gamma -->\n", blocks({}),
                    results=Path("r"), page="docs/a.md")  # fmt: skip


def project(root: Path, pages: dict[str, str]) -> Path:
    """A project folder holding `pages` (README.md, docs/*.md); returns its README's path."""
    for name, text in pages.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / readme.README


def test_update_and_stale_blocks_cover_every_page(tmp_path):
    """The pages are found by scanning docs/: a page added there is covered without a list."""
    path = project(tmp_path, {"README.md": "# Top\n", "docs/a.md": TEXT, "docs/new.md": "x\n"})
    assert list(readme.pages(path)) == ["README.md", "docs/a.md", "docs/new.md"]
    assert readme.stale_blocks(path, blocks({}), results=tmp_path) == {
        "docs/a.md": ["alpha", "beta"]
    }
    assert readme.update(path, blocks({}), results=tmp_path) == [tmp_path / "docs" / "a.md"]
    assert "alpha from " in (tmp_path / "docs" / "a.md").read_text()
    assert readme.stale_blocks(path, blocks({}), results=tmp_path) == {}
    assert readme.update(path, blocks({}), results=tmp_path) == []
    (tmp_path / "docs" / "new.md").write_text("<!-- ablate:alpha -->\n<!-- /ablate:alpha -->\n")
    with pytest.raises(AblationsError, match=r"^docs/new.md: block 'alpha' is also in docs/a.md"):
        readme.update(path, blocks({}), results=tmp_path)


@pytest.mark.parametrize(
    ("other", "first"), [("README.md", "README.md"), ("docs/b.md", "docs/a.md")]
)  # the README is read first, then docs/ in name order
def test_a_block_in_two_pages_or_an_unknown_one_is_an_error_naming_the_page(tmp_path, other, first):
    path = project(tmp_path, {"docs/a.md": TEXT, other: TEXT.replace("alpha", "gamma")})
    with pytest.raises(AblationsError) as unknown:
        readme.stale_blocks(path, blocks({}), results=tmp_path)
    assert str(unknown.value).startswith(f"{other}: block 'gamma' has no generator")
    (tmp_path / other).write_text(TEXT)
    with pytest.raises(AblationsError) as twice:
        readme.update(path, blocks({}), results=tmp_path)
    later = other if first == "docs/a.md" else "docs/a.md"
    assert str(twice.value) == (
        f"{later}: block 'alpha' is also in {first}; a block stands in one page only"
    )
    assert "old alpha" in (tmp_path / "docs" / "a.md").read_text()  # nothing written


# --- links: written from the project root, as each page reaches them -------------------------

ANCHORS = {
    "README.md": {"top", "shared"},
    "docs/clusters.md": {"time-limited-gpus", "shared"},
    "docs/index.md": {"start"},
}


@pytest.mark.parametrize(
    ("page", "link", "expected"),
    [
        ("README.md", "[GPUs](#time-limited-gpus)", "[GPUs](docs/clusters.md#time-limited-gpus)"),
        ("docs/index.md", "[GPUs](#time-limited-gpus)", "[GPUs](clusters.md#time-limited-gpus)"),
        ("docs/clusters.md", "[GPUs](#time-limited-gpus)", "[GPUs](#time-limited-gpus)"),
        ("README.md", "[it](#shared)", "[it](#shared)"),  # the page itself first
        ("docs/index.md", "[it](#shared)", "[it](clusters.md#shared)"),  # then a site page
        ("README.md", "[it](#top)", "[it](#top)"),
        ("docs/index.md", "[it](#top)", "it"),  # the site cannot reach the README
        ("README.md", "[it](#nowhere)", "it"),
        ("README.md", "![fig](reports/a.png)", "![fig](reports/a.png)"),
        ("docs/index.md", "![fig](reports/a.png)", "![fig](reports/a.png)"),  # the site's copy
        ("README.md", "[m](docs/methodology.md#rule)", "[m](docs/methodology.md#rule)"),
        ("docs/index.md", "[m](docs/methodology.md#rule)", "[m](methodology.md#rule)"),
        ("docs/index.md", "[r](README.md)", "r"),
        ("docs/index.md", "[web](https://example.org/#a)", "[web](https://example.org/#a)"),
    ],
)  # fmt: skip
def test_block_links_point_where_the_page_reaches_them(page: str, link: str, expected: str):
    assert readme.relink(f"see {link}.", page=page, anchors=ANCHORS) == f"see {expected}."


def test_fill_points_heading_links_at_the_page_that_holds_the_heading(tmp_path):
    def note(results: Path) -> str:
        return "See [Time-limited GPUs](#time-limited-gpus).\n![fig](reports/f.png)"

    page = "<!-- ablate:note -->\n<!-- /ablate:note -->\n"
    path = project(tmp_path, {"README.md": page, "docs/clusters.md": "## Time-limited GPUs\n"})
    readme.update(path, {"note": note}, results=tmp_path)
    assert "[Time-limited GPUs](docs/clusters.md#time-limited-gpus)" in path.read_text()
    assert "![fig](reports/f.png)" in path.read_text()
    # The blocks move to a docs page and the heading to the README: the links follow.
    project(tmp_path, {"README.md": "## Time-limited GPUs\n", "docs/index.md": page,
                       "docs/clusters.md": "# Clusters\n"})  # fmt: skip
    readme.update(path, {"note": note}, results=tmp_path)
    assert (
        "See Time-limited GPUs.\n![fig](reports/f.png)" in (tmp_path / "docs/index.md").read_text()
    )


@pytest.mark.parametrize(
    ("title", "github", "site"),
    [
        ("Time-limited GPUs", "time-limited-gpus", "time-limited-gpus"),
        ("Sweeps: `ablate run --executor local|slurm`", "sweeps-ablate-run---executor-localslurm",
         "sweeps-ablate-run-executor-localslurm"),
        ("What `nox -s ablate` does", "what-nox--s-ablate-does", "what-nox-s-ablate-does"),
        ("One run across GPUs: torchrun", "one-run-across-gpus-torchrun",
         "one-run-across-gpus-torchrun"),
        ("Fig. 6 [replica](x.md)", "fig-6-replica", "fig-6-replica"),
    ],
)  # fmt: skip
def test_heading_anchors_follow_github_and_the_site(title: str, github: str, site: str):
    assert readme.slug(title, site=False) == github
    assert readme.slug(title, site=True) == site


def test_heading_anchors_skip_code_and_number_repeats():
    text = "# A\n\n```bash\n# not a heading\n```\n\n## A\n\n## B {#custom}\n"
    assert readme.heading_anchors(text, site=True) == {"a", "a_1", "custom"}
    assert readme.heading_anchors(text, site=False) == {"a", "a-1", "b-custom"}


def test_broken_links_names_each_missing_file_and_heading(tmp_path):
    texts = {
        "README.md": "# Top\n[a](docs/a.md#one) [b](docs/a.md#two) [c](missing.md) [d](#top) "
                     "`[code](nowhere.md)` [e](https://x.org/y)\n",
        "docs/a.md": "# One\n[r](../README.md) [f](reports/f.png) [g](#three)\n",
    }  # fmt: skip
    for name, text in texts.items():
        project(tmp_path, {name: text})
    project(tmp_path, {"reports/f.png": ""})
    assert readme.broken_links(texts, root=tmp_path) == [
        "README.md: docs/a.md#two (no such heading in docs/a.md)",
        "README.md: missing.md (no such file from this page)",
        "docs/a.md: ../README.md (no such file from this page)",
        "docs/a.md: #three (no such heading in docs/a.md)",
    ]


# --- the committed pages ----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_committed_figures_match_the_committed_results():
    """Every number the README and the docs pages quote between markers is what results/ gives
    now, and each block stands in one page."""
    from ablations.report import readme_blocks

    texts = {page: path.read_text() for page, path in readme.pages(README).items()}
    assert any(readme.block_names(text) for text in texts.values()), "the pages have blocks"
    assert readme.stale_blocks(README, readme_blocks.BLOCKS, results=ROOT / "results") == {}


def site_texts() -> dict[str, str]:
    """The README, every docs page and the report, as the site shows them: the CLI page gets
    a `## ablate NAME` heading per command from docs/hooks.py."""
    from ablations.cli import build_parser

    texts = {page: path.read_text() for page, path in readme.pages(README).items()}
    [commands] = [action.choices for action in build_parser()._actions
                  if isinstance(action, argparse._SubParsersAction)]  # fmt: skip
    texts["docs/cli.md"] += "".join(f"\n## ablate {name}\n" for name in commands)
    texts["reports/README.md"] = (ROOT / "reports" / "README.md").read_text()
    return texts


def test_every_link_of_the_pages_names_a_file_and_heading_that_exist():
    """mkdocs --strict checks the docs pages in the site; this checks them too, and the README
    and the report, which the site's check does not see as GitHub shows them."""
    assert readme.broken_links(site_texts(), root=ROOT) == []


def test_ablate_report_rewrites_only_the_pages_beside_its_results(tmp_path, capsys):
    from ablations.cli import main

    block = "<!-- ablate:runs-summary -->\nold\n<!-- /ablate:runs-summary -->\n"
    page = project(tmp_path, {"README.md": "x\n", "docs/runs.md": block})
    docs_page = tmp_path / "docs" / "runs.md"
    other = tmp_path / "elsewhere"
    assert main(["report", "--results", str(other), "--out", str(tmp_path / "r1"),
                 "--readme", str(page)]) == 0  # fmt: skip
    assert "old" in docs_page.read_text()
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "r2"),
                 "--readme", str(page), "--check-readme"]) == 2  # fmt: skip
    assert "docs/runs.md: blocks runs-summary differ" in capsys.readouterr().err
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "r2"),
                 "--readme", str(page)]) == 0  # fmt: skip
    assert str(docs_page) in capsys.readouterr().out.splitlines()
    assert "No training runs are committed yet." in docs_page.read_text()
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "r2"),
                 "--readme", str(page), "--check-readme"]) == 0  # fmt: skip
    assert "every generated block matches" in capsys.readouterr().out


MODULE_MAP = ROOT / "docs" / "architecture.md"
MAP_START = "```\nablations/\n"


def test_the_module_map_names_every_module():
    """The module map (docs/architecture.md) stays true: every module of the package is named
    in it (by its path under ablations/, or by file name on a line that groups several)."""
    text = MODULE_MAP.read_text()
    start = text.index(MAP_START)
    block = text[start : text.index("```", start + 4)]
    package = ROOT / "ablations"

    def named(rel: str) -> bool:
        if rel.endswith("/__init__.py"):  # a subpackage: its folder is named
            return rel.removesuffix("__init__.py") in block
        return rel in block or rel.rsplit("/", 1)[-1] in block

    rels = [p.relative_to(package).as_posix() for p in package.rglob("*.py")]
    missing = [rel for rel in rels if not named(rel)]
    assert not missing, f"add these to the module map in {MODULE_MAP.name}: {missing}"


def test_the_module_map_stands_in_one_page():
    others = [page for page, path in readme.pages(README).items()
              if path != MODULE_MAP and MAP_START in path.read_text()]  # fmt: skip
    assert not others, f"the module map belongs in docs/{MODULE_MAP.name} only: {others}"


def test_the_package_description_has_no_relative_links():
    """The package index shows the description away from the repository, where a relative link
    or image breaks: pyproject.toml's readme has absolute links only."""
    tomllib = pytest.importorskip("tomllib")
    project_table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    description = (ROOT / project_table["readme"]).read_text()
    assert description.startswith("# resnet-ablations\n")
    relative = [link for link in readme.page_links(description) if not readme.SCHEME.match(link)]
    assert relative == [], "the package index cannot follow these links"
    assert "<img" not in description and "src=" not in description


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
