"""Progress for long loops: a tqdm bar on a terminal, plain lines with an ETA elsewhere (CI logs,
files, pipes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
LINE_EVERY_S = 5.0  # the shortest gap between two plain-text lines of `progress`
HEARTBEAT_S = 30.0  # the longest silence of a plain-text training log


def progress(items: Sequence[T], *, desc: str, label: Callable[[T], str] = str) -> Iterator[T]:
    """Yield `items`, saying on stderr which one is being worked on, with an ETA."""
    if not items:  # nothing to do is not progress: no "0/0 done" line
        return
    if sys.stderr.isatty():
        bar = tqdm(items, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
        for item in bar:
            bar.set_postfix_str(label(item))
            yield item
        return
    start = last = time.monotonic()
    for i, item in enumerate(items):
        now = time.monotonic()
        if i == 0 or now - last >= LINE_EVERY_S:
            eta = f"eta {(now - start) / i * (len(items) - i):.0f}s" if i else "starting"
            print(f"[{desc}] {i}/{len(items)} {label(item)} ({eta})", file=sys.stderr, flush=True)
            last = now
        yield item
    done = f"[{desc}] {len(items)}/{len(items)} done in {time.monotonic() - start:.1f}s"
    print(done, file=sys.stderr)


class TrainProgress:
    """Iteration progress with statistics: a tqdm bar (the statistics as its postfix) on a
    terminal, else one plain line per report. `advance` reads no device value, so it adds no
    host sync. `position` is the bar's line where several runs train at once."""

    def __init__(
        self,
        *,
        total: int,
        initial: int,
        desc: str,
        enabled: bool = True,
        position: int | None = None,
    ) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.start_iteration, self.start_time = initial, time.monotonic()
        self.iteration, self.last_line = initial, self.start_time
        bar = dict(total=total, initial=initial, desc=desc, unit="it", position=position)
        tty = enabled and sys.stderr.isatty()
        self.bar = tqdm(file=sys.stderr, dynamic_ncols=True, **bar) if tty else None

    def advance(self, n: int = 1) -> None:
        """n steps more; without a terminal, a line when reports are far apart (a tutorial's
        epoch can take many minutes between evaluations)."""
        self.iteration += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.monotonic() - self.last_line > HEARTBEAT_S:
            self._line(self.iteration, "")

    def report(self, iteration: int, stats: dict[str, str]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(stats, refresh=True)
        elif self.enabled:
            self._line(iteration, "".join(f"{k} {v} " for k, v in stats.items()))

    def _line(self, iteration: int, fields: str) -> None:
        self.last_line = time.monotonic()
        done = iteration - self.start_iteration
        eta = (self.last_line - self.start_time) / done * (self.total - iteration) if done else 0
        minutes, seconds = divmod(int(eta), 60)
        shown = "?" if not done else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
        line = f"[{self.desc}] {iteration}/{self.total} {fields}eta {shown}"
        print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> TrainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
