"""The docs read in short plain sentences: scripts/prose.py on the README and every page of
docs/, and the check's own rules (what counts as prose, where a sentence ends)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import prose

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]


def test_there_are_pages_to_check():
    assert len(DOCS) >= 10, "docs/ holds the site's pages"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_each_page_reads_in_short_sentences(page: Path):
    stats = prose.check_text(page.read_text(encoding="utf-8"))
    assert stats.lengths, f"{page.name}: no prose found"
    assert stats.ok, prose.describe(page.name, stats)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Use e.g. ResNet-56 here. Then stop.", ["Use e.g. ResNet-56 here.", "Then stop."]),
        ("The rule, i.e. Welch's test. Fine.", ["The rule, i.e. Welch's test.", "Fine."]),
        ("He et al. 2016 says so. Fig. 6 too.", ["He et al. 2016 says so.", "Fig. 6 too."]),
        ("It needs torch 2.4.1 at least. It runs.", ["It needs torch 2.4.1 at least.", "It runs."]),
        ("See reports/README.md or a.pt. Done.", ["See reports/README.md or a.pt.", "Done."]),
        ("It loads resnet18 ... resnet152 alike.", ["It loads resnet18 ... resnet152 alike."]),
        ("It stops! Why? It says so.", ["It stops!", "Why?", "It says so."]),
        ('It reads "holds." Then more.', ['It reads "holds."', "Then more."]),
        ("lr 0.1 (not 0.05). torchvision agrees.", ["lr 0.1 (not 0.05).", "torchvision agrees."]),
    ],
)  # fmt: skip
def test_sentences_end_where_a_reader_ends_them(text: str, expected: list[str]):
    assert prose.sentences(text) == expected


def test_only_prose_counts():
    page = "\n".join([
        "# A heading that is long enough to be a sentence of its own, but is not one",
        "",
        "One short sentence [with a link](https://example.com/a/very/long/target/path.html).",
        "",
        "```bash",
        "ablate run --profile cpu --experiments degradation. This is code, not prose.",
        "```",
        "",
        "| a table | is not prose either. |",
        "|---|---|",
        "",
        "<!-- ablate:cpu-runs -->",
        "Generated text. It is left out.",
        "<!-- /ablate:cpu-runs -->",
        "",
        "<!-- a comment. Also left out. -->",
        "",
        "    indented code. Left out too.",
        "",
        "- A list item is a sentence",
        "- and so is the next one, even without a full stop",
        "",
        "**Label.** The label does not count.",
    ])  # fmt: skip
    found = [s for block in prose.prose_blocks(page) for s in prose.sentences(prose.plain(block))]
    assert found == [
        "One short sentence with a link.",
        "A list item is a sentence",
        "and so is the next one, even without a full stop",
        "The label does not count.",
    ]


def test_a_code_span_is_one_word():
    assert prose.words(prose.plain("Run `ablate run --profile cpu --seeds 7` now.")) == [
        "Run",
        "CODE",
        "now.",
    ]


def sentence_of(n: int) -> str:
    return " ".join(["word"] * (n - 1) + ["end."])


def test_the_limits():
    assert prose.check_text(sentence_of(45)).long == ()
    too_long = prose.check_text(f"{sentence_of(46)} {sentence_of(3)} {sentence_of(3)}")
    assert not too_long.ok
    assert too_long.long == (sentence_of(46),)
    assert prose.check_text(" ".join(sentence_of(20) for _ in range(3))).ok
    assert not prose.check_text(" ".join(sentence_of(21) for _ in range(3))).ok


def test_the_command_fails_on_a_long_winded_page(tmp_path: Path, capsys):
    good, bad = tmp_path / "good.md", tmp_path / "bad.md"
    good.write_text(f"{sentence_of(12)} {sentence_of(8)}\n")
    bad.write_text(f"{sentence_of(50)}\n")
    assert prose.main([str(good)]) == 0
    assert prose.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "bad.md: 1 sentences, median 50 words" in out
    assert "too long (50 words)" in out


def test_the_readme_is_a_front_door():
    """At most 250 lines: what it is, set-up, quick start, the report, your own ablation and
    links; the reference lives in docs/."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move reference to docs/"
