"""The README's generated blocks: the mechanism, and that the committed README matches results/."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablations.registry import AblationsError
from ablations.report import readme

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
