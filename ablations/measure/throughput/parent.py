"""The measuring process tree: which settings share a child interpreter, running the children,
and appending their rows to the table as each finishes.

Eager settings of one variant (and one repeated run) share a child: a fresh process per
variant keeps one variant's allocator state or crash from distorting or stopping the next, and
a separate child per run makes runs independent. On a CPU the children are forked from a server
that has only imported the measuring code, never run an op (so no thread pool, allocator or
denormal state is inherited): that saves each child torch's import, several seconds each on 2
cores. On a GPU each child is spawned, a new interpreter, so that no CUDA state can ever cross a
fork. A compiled setting always gets a child of its own: dynamo counts recompilations of a code
object per process, and several compiled settings of one variant in one process pass its
recompile limit, after which the later settings would run eagerly while their rows say
compile=on.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from ablations.measure.throughput import child
from ablations.measure.throughput import reference as timm
from ablations.measure.throughput.schema import row
from ablations.measure.throughput.settings import Setting
from ablations.progress import progress
from ablations.registry import AblationsError, get_variant
from ablations.results import provenance
from ablations.results.schemas import OURS, THROUGHPUT_FILE
from ablations.results.schemas import THROUGHPUT as SCHEMA
from ablations.results.table import read_table, upsert

if TYPE_CHECKING:  # ForkServerContext exists only where fork does
    from multiprocessing.context import ForkServerContext, SpawnContext

CHILD: Callable[..., None] = child.serve  # what a child runs (a test swaps in a crash)


def output_path(out: Path, name: str = THROUGHPUT_FILE) -> Path:
    """`out`, or `out/name` where `out` is an existing directory."""
    return out / name if out.is_dir() else out


def process_groups(settings: Iterable[Setting]) -> list[list[Setting]]:
    """The settings of each child: eager ones by (variant, run), each compiled one alone."""
    groups: dict[tuple[str, int, int], list[Setting]] = {}
    for i, s in enumerate(settings):
        groups.setdefault((s.variant, s.run, i if s.compile else -1), []).append(s)
    return list(groups.values())


def start_method(device: str) -> ForkServerContext | SpawnContext:
    """How children start (see the module's docstring): forked from an import-only server on a
    CPU where the platform can, spawned otherwise."""
    if device == "cpu" and "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([child.__name__])  # imported once, by the server
        return context
    return multiprocessing.get_context("spawn")


def run_child(settings: Sequence[Setting]) -> list[dict[str, Any]]:
    """Measure `settings` in a fresh child process. The variant travels as its axes, so variants
    registered at run time (not only built-ins) can be measured."""
    messages = [{"setting": asdict(s), "variant": get_variant(s.variant).axes()} for s in settings]
    context = start_method(settings[0].device)
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=CHILD, args=(send, messages), daemon=True,
                              kwargs={"started": context.get_start_method()})  # fmt: skip
    process.start()
    send.close()  # the child holds the only sender: its exit ends the loop below
    rows: list[dict[str, Any]] = []
    with receive:
        while True:
            try:
                rows += receive.recv()
            except EOFError:
                break
    process.join()
    done = {json.dumps(r["setting"], sort_keys=True) for r in rows}
    for s in settings:  # a crashed child: every setting it did not report is recorded as such
        if json.dumps(asdict(s), sort_keys=True) not in done:
            rows.append({"setting": asdict(s), "status": "crashed",
                         "error": _exit_text(process.exitcode)})  # fmt: skip
    return rows


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        return f"child killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"child exited with status {code} before reporting"


def run(
    settings: Iterable[Setting], *, out: Path | None = None, show_progress: bool = True,
    reference: str | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Measure every setting (see `process_groups` for which share a process); rows are
    appended to `out` (a file, or a directory to hold throughput.csv) as each child finishes,
    so an interrupted sweep keeps what it measured. `reference="timm"` also measures each
    setting with timm's benchmark.py, right after ours (so drift affects both alike).
    Children start through multiprocessing, so a script that calls this needs the
    `if __name__ == "__main__":` guard (a spawned child imports the script again)."""
    groups = process_groups(settings)
    if not groups:
        raise AblationsError("nothing to measure")
    if reference not in (None, "timm"):
        raise AblationsError(f"unknown reference {reference!r}; the one there is: timm")
    jobs: list[tuple[str, list[Setting]]] = []
    for group in groups:
        jobs += [(OURS, group), *(("timm", [s]) for s in group if reference)]
    if reference:
        timm.check([s for group in groups for s in group])
    device = torch.device(groups[0][0].device)
    facts = {**provenance.environment(device), "driver": provenance.driver_version()}
    path = output_path(out) if out is not None else None
    if path is not None:
        read_table(path, SCHEMA)  # a file that cannot take the rows fails before measuring
    tables = []
    for kind, group in progress(jobs, desc="throughput", label=_label) if show_progress else jobs:
        results = run_child(group) if kind == OURS else [timm.run_timm(group[0])]
        table = SCHEMA.validate(pd.DataFrame([row(result, facts) for result in results]))
        if path is not None:
            upsert(path, table, SCHEMA)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _label(job: tuple[str, list[Setting]]) -> str:
    kind, group = job
    s = group[0]
    compiled = f" {s.mode} {s.precision} compiled" if s.compile else ""
    timm_run = f" {s.mode} (timm)" if kind != OURS else ""
    return f"{s.variant}{compiled}{timm_run}" + (f" run {s.run}" if s.run else "")
