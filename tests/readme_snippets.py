"""The README's examples, as a user pastes them: a section's Python file and its `ablate` line."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet_and_command(heading: str) -> tuple[str, str]:
    """The first ```python block under `heading` and the section's `ablate --plugin ...` line."""
    text = README.read_text()
    section = text[text.index(heading) :]
    section = section[: section.index("\n## ")]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    command = re.search(r"^(ablate --plugin .*)$", section, re.M)
    assert snippet and command, f"{heading!r} shows a Python snippet and an `ablate` line"
    return snippet[1], command[1]
