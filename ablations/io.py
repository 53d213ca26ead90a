"""Atomic file writes: write a temporary file beside the target, then rename it over the target.
A killed process leaves the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on failure it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def write_binary(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """`write_atomic` for a writer that takes an open binary file (numpy's save, say)."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        write(handle)


def write_json(path: str | Path, record: Any) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(record, indent=1, default=str) + "\n"))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())
