"""Atomic file writes: write a temporary file beside the target, then rename it over the target.
A killed process leaves the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call `write` with a temporary path beside `path`, then rename that over `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_binary(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """`write_atomic` for a writer that takes an open binary file (numpy's save, say)."""

    def to_file(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            write(handle)

    write_atomic(path, to_file)


def write_json(path: str | Path, record: Any) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(record, indent=1, default=str) + "\n"))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())
