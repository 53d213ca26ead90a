"""The figures quoted in the project's README, generated from `results/` like the reports.

A README states numbers (verdicts, errors, images/s, counts) between markers,

    <!-- ablate:NAME -->
    ... generated text ...
    <!-- /ablate:NAME -->

and `ablate report` rewrites each block from `results/` with the function registered under NAME,
so a number in the README is always one a committed row backs. Text outside the markers is never
touched. `ablate report --check-readme` (and a test) fails when a block has drifted from the
results, which is how a stale README figure is caught before it lands.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ablations.registry import AblationsError

BLOCK = re.compile(
    r"(?P<open><!-- ablate:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- /ablate:(?P=name) -->)",
    re.S,
)

BlockFn = Callable[[Path], str]


def block_names(text: str) -> list[str]:
    return [m["name"] for m in BLOCK.finditer(text)]


def fill(text: str, blocks: dict[str, BlockFn], *, results: Path) -> str:
    """`text` with every marked block regenerated; an unknown block name is an error (a typo in
    the README should not leave a stale number in place silently)."""
    unknown = sorted(set(block_names(text)) - set(blocks))
    if unknown:
        raise AblationsError(
            f"README block {unknown[0]!r} has no generator; known: {', '.join(sorted(blocks))}"
        )

    def regenerate(match: re.Match[str]) -> str:
        body = blocks[match["name"]](results).rstrip("\n") + "\n"
        return match["open"] + body + match["close"]

    return BLOCK.sub(regenerate, text)


def update(readme: Path, blocks: dict[str, BlockFn], *, results: Path) -> bool:
    """Regenerate the blocks of `readme` in place; returns whether anything changed."""
    text = readme.read_text()
    new = fill(text, blocks, results=results)
    if new != text:
        readme.write_text(new)
    return new != text


def stale_blocks(readme: Path, blocks: dict[str, BlockFn], *, results: Path) -> list[str]:
    """The names of the blocks whose text differs from what `results` gives."""
    text = readme.read_text()
    now = {m["name"]: m["body"] for m in BLOCK.finditer(text)}
    fresh = {m["name"]: m["body"] for m in BLOCK.finditer(fill(text, blocks, results=results))}
    return [name for name in now if now[name] != fresh[name]]
