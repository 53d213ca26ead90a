"""Progress for long loops: a tqdm bar on a terminal, plain timestamped lines otherwise (CI logs,
files, pipes), so that progress is readable wherever the output goes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


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
    if not items:  # nothing to do is not progress: no "0/0 done" line
        return
    if out.isatty():
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


HEARTBEAT_S = 30.0  # the longest silence of a plain-text progress log


class TrainProgress:
    """Iteration progress with statistics. On a terminal: a tqdm bar whose postfix (loss, error,
    lr) is refreshed at each report and whose ETA tqdm keeps. Otherwise one plain line per
    report, with its own ETA. `advance` never reads device values, so it adds no host sync.
    `position` is the bar's line where several runs train at once (each has its own bar)."""

    def __init__(
        self, *, total: int, initial: int, desc: str, stream: IO[str] | None = None,
        enabled: bool = True, position: int | None = None,
    ) -> None:  # fmt: skip
        self.out = stream if stream is not None else sys.stderr
        self.total, self.desc, self.enabled = total, desc, enabled
        self.start_iteration, self.start_time = initial, time.monotonic()
        self.iteration, self.last_line = initial, self.start_time
        self.bar: tqdm | None = None
        if enabled and self.out.isatty():
            self.bar = tqdm(total=total, initial=initial, desc=desc, file=self.out,
                            dynamic_ncols=True, unit="it", position=position)  # fmt: skip

    def advance(self, n: int = 1) -> None:
        """One step more; without a terminal, a plain line when reports are far apart (a
        tutorial's epoch can take many minutes between evaluations)."""
        self.iteration += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.monotonic() - self.last_line > HEARTBEAT_S:
            self._line(self.iteration, "")

    def report(self, iteration: int, stats: dict[str, str]) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(stats, refresh=True)
            return
        self._line(iteration, " ".join(f"{k} {v}" for k, v in stats.items()) + " ")

    def _line(self, iteration: int, fields: str) -> None:
        self.last_line = time.monotonic()
        done = iteration - self.start_iteration
        elapsed = self.last_line - self.start_time
        eta = elapsed / done * (self.total - iteration) if done else float("nan")
        print(f"[{self.desc}] {iteration}/{self.total} {fields}eta {_duration(eta)}",
              file=self.out, flush=True)  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> TrainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN: nothing measured yet
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
