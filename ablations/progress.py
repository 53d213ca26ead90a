"""Progress for long loops: a tqdm bar on a terminal, plain timestamped lines otherwise (CI logs,
files, pipes), so that progress is readable wherever the output goes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def _is_tty(stream: IO[str]) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def progress(
    items: Sequence[T],
    *,
    desc: str,
    label: Callable[[T], str] = str,
    stream: IO[str] | None = None,
    min_interval_s: float = 5.0,
) -> Iterator[T]:
    """Yield `items`, reporting which one is being worked on and an ETA."""
    out = stream if stream is not None else sys.stderr
    if _is_tty(out):
        bar = tqdm(items, desc=desc, file=out, leave=False, dynamic_ncols=True)
        for item in bar:
            bar.set_postfix_str(label(item))
            yield item
        return
    start = last = time.monotonic()
    for i, item in enumerate(items):
        now = time.monotonic()
        if i == 0 or now - last >= min_interval_s:
            eta = f"eta {(now - start) / i * (len(items) - i):.0f}s" if i else "starting"
            print(f"[{desc}] {i}/{len(items)} {label(item)} ({eta})", file=out, flush=True)
            last = now
        yield item
    print(f"[{desc}] {len(items)}/{len(items)} done in {time.monotonic() - start:.1f}s", file=out)
