"""A prose check for Markdown pages: short plain sentences.

Only prose counts: code blocks, tables, headings, HTML comments, generated blocks (between
`<!-- ablate:NAME -->` markers) and link targets are left out, and a code span counts as one
word. Each paragraph and each list item is split into sentences at `.`, `!` or `?` followed by
a space and a capital, a digit or an opening mark; abbreviations ("e.g.", "Fig.", "et al."),
version numbers and file names do not end a sentence.

`python scripts/prose.py README.md docs` (any Markdown files, or folders of them) prints each
page's statistics. It exits 1 when a page's median sentence is longer than 20 words, or any
sentence is longer than 45.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_MEDIAN = 20
MAX_WORDS = 45

# Words that end in a dot without ending the sentence (compared in lower case).
ABBREVIATIONS = frozenset(
    {"e.g.", "i.e.", "etc.", "vs.", "cf.", "al.", "fig.", "figs.", "eq.", "no.", "approx.",
     "resp.", "sec.", "ch.", "ref.", "refs.", "incl.", "ca.", "vol.", "pp.", "p."}
)  # fmt: skip
FENCE = re.compile(r"^\s*(```|~~~)")
GENERATED_START = re.compile(r"^\s*<!--\s*ablate:[\w-]+\s*-->")
GENERATED_END = re.compile(r"^\s*<!--\s*/ablate:[\w-]+\s*-->")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
SKIPPED_LINE = re.compile(r"^\s*(?:#|\||<!--|-->|!\[|\[[^\]]+\]:\s|!!!|\?\?\?|---\s*$|===)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
HTML_TAG = re.compile(r"<[^>]+>")
LEAD_LABEL = re.compile(r"^\*\*[^*]+[.:]\*\*\s*")  # "**Interrupting.** Ctrl-C ...": a label
# A sentence ends at . ! or ? (perhaps with a closing mark) before a space.
BOUNDARY = re.compile(r"(?<=[.!?])(?P<close>[\"')\]*]*)\s+(?=\S)")


@dataclass(frozen=True)
class Stats:
    """The sentence lengths of one text, in words."""

    lengths: tuple[int, ...]
    long: tuple[str, ...]  # the sentences over MAX_WORDS words

    @property
    def median(self) -> float:
        return statistics.median(self.lengths) if self.lengths else 0.0

    @property
    def ok(self) -> bool:
        return self.median <= MAX_MEDIAN and not self.long


def prose_blocks(text: str) -> Iterator[str]:
    """The paragraphs and list items of a Markdown text, each as one line of prose."""
    block: list[str] = []
    for line in _prose_lines(text):
        if line is None or LIST_ITEM.match(line):
            if block:
                yield " ".join(block)
            block = [LIST_ITEM.sub("", line, count=1).strip()] if line else []
        else:
            block.append(line.strip())
    if block:
        yield " ".join(block)


def _prose_lines(text: str) -> Iterator[str | None]:
    """The lines that hold prose; None wherever a paragraph ends."""
    in_fence = in_generated = in_comment = False
    previous_blank = True
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            yield None
        elif GENERATED_START.match(line) or GENERATED_END.match(line):
            in_generated = bool(GENERATED_START.match(line))
            yield None
        elif in_comment or line.lstrip().startswith("<!--"):
            in_comment = "-->" not in line
            yield None
        elif in_fence or in_generated or not line.strip() or SKIPPED_LINE.match(line):
            yield None
        elif previous_blank and line.startswith("    ") and not LIST_ITEM.match(line):
            yield None  # an indented code block
            continue  # its following lines still count as code
        else:
            yield line
        previous_blank = not line.strip()


def plain(block: str) -> str:
    """A block's prose without markup: link targets and images dropped, code spans as one word."""
    block = LEAD_LABEL.sub("", IMAGE.sub("", block))
    block = CODE_SPAN.sub(lambda m: "CODE" if m[2].strip() else "", block)
    block = LINK.sub(r"\1", block)
    block = HTML_TAG.sub("", block)
    return block.replace("**", "").strip()


def sentences(block: str) -> list[str]:
    """A block split into sentences, keeping abbreviations whole."""
    found: list[str] = []
    start = 0
    for match in BOUNDARY.finditer(block):
        candidate = block[start : match.end("close")]
        if _ends_in_abbreviation(candidate):
            continue
        found.append(candidate.strip())
        start = match.end()
    found.append(block[start:].strip())
    return [s for s in found if words(s)]


def _ends_in_abbreviation(text: str) -> bool:
    last = text.rstrip("\"')]*").split()[-1:] or [""]
    word = last[0].lstrip("(\"'[*").lower()
    if word.endswith("..."):
        return True  # an ellipsis ("resnet18 ... resnet152") runs on
    return word in ABBREVIATIONS or bool(re.fullmatch(r"(?:[a-z]\.){2,}", word))


def words(sentence: str) -> list[str]:
    """The words of a sentence: tokens holding a letter or a digit."""
    return [token for token in sentence.split() if re.search(r"\w", token)]


def check_text(text: str) -> Stats:
    """The statistics of a Markdown text's prose."""
    all_sentences = [s for block in prose_blocks(text) for s in sentences(plain(block))]
    lengths = tuple(len(words(s)) for s in all_sentences)
    long = tuple(s for s, n in zip(all_sentences, lengths, strict=True) if n > MAX_WORDS)
    return Stats(lengths=lengths, long=long)


def describe(name: str, stats: Stats) -> str:
    """One line of statistics, then each sentence that is too long."""
    head = (
        f"{name}: {len(stats.lengths)} sentences, median {stats.median:g} words, "
        f"longest {max(stats.lengths, default=0)}, over {MAX_WORDS}: {len(stats.long)}"
    )
    return "\n".join([head, *(f"  too long ({len(words(s))} words): {s}" for s in stats.long)])


def markdown_files(paths: Sequence[Path]) -> list[Path]:
    """The files given, with each folder standing for the .md files directly in it."""
    return [f for p in paths for f in (sorted(p.glob("*.md")) if p.is_dir() else [p])]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that Markdown prose has short sentences.")
    parser.add_argument("pages", nargs="+", type=Path, help="Markdown files, or folders of them")
    args = parser.parse_args(argv)
    failed = False
    for page in markdown_files(args.pages):
        stats = check_text(page.read_text(encoding="utf-8"))
        print(describe(str(page), stats))
        failed |= not stats.ok
    if failed:
        print(
            f"prose: a median over {MAX_MEDIAN} words, or a sentence over {MAX_WORDS}",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
