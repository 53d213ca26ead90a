"""Bring results made elsewhere into a results folder without losing a row (`ablate merge`).

A machine that trains elsewhere (a cloud instance, a notebook service, a cluster job) returns
whole tables: its copy of results/ with its new rows (`ablate pack`). Two machines' tarballs, or
one taken back to the machine that made it, hold different versions of the same table, and
unpacking one over another keeps whichever came last: rows measured in between are lost.
Merging keeps every row instead. A source is a results folder, a tarball whose members are
results/... (as `ablate pack` writes them) or one CSV table (named as in results/); each is
merged in turn:

- a run directory is copied where this folder has none; over an unfinished one where the
  incoming run finished, or got as far or further (its curves); its checkpoint only where it
  holds a later iteration. A finished run here is never replaced (it is never recomputed
  either), but takes the files it lacks (weights packed apart). Finished runs merged are
  recorded in runs.csv and curves.csv, as `ablate collect` would;
- a table with a schema takes the incoming rows by key, the later `created_at` winning a key
  both hold (the incoming row where neither says); other CSV tables take the rows they lack;
- a JSON record (projection.json) is replaced by a newer one.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ablations import rundir
from ablations.io import write_atomic
from ablations.registry import AblationsError
from ablations.results import collect, schemas
from ablations.results.table import Schema, locked, read_table, upsert
from ablations.rundir import CHECKPOINT, progress
from ablations.train.resume import checkpoint_iteration

SCHEMAS: dict[str, Schema] = {
    schemas.RESPONSES_FILE: schemas.RESPONSES, schemas.EVALUATIONS_FILE: schemas.EVALUATIONS,
    schemas.COMPLEXITY_FILE: schemas.COMPLEXITY, schemas.THROUGHPUT_FILE: schemas.THROUGHPUT,
    schemas.REFERENCE_FILE: schemas.THROUGHPUT, schemas.TRAIN_SPEED_FILE: schemas.TRAIN_SPEED,
    schemas.STEP_SPEED_FILE: schemas.STEP_SPEED,
    schemas.RUNS_AT_ONCE_FILE: schemas.RUNS_AT_ONCE,
}  # fmt: skip
# Rebuilt from the run directories, never merged as tables.
FROM_RUNS = (schemas.RUNS_FILE, schemas.CURVES_FILE)


def merge(sources: list[Path], results: Path, *, log: Callable[[str], None] = print) -> int:
    """Merge each source into `results` in turn; returns the finished runs recorded."""
    recorded = 0
    for source in sources:
        if source.suffix == ".csv":  # one table, as `ablate loader-speed --out` writes it
            results.mkdir(parents=True, exist_ok=True)
            _merge_table(source, results / source.name)
            log(f"[merge] {source}: merged into {results / source.name}")
            continue
        with _opened(source) as incoming:
            recorded += _merge_folder(incoming, results, log=log)
            log(f"[merge] {source}: merged into {results}")
    return recorded


@contextmanager
def _opened(source: Path) -> Iterator[Path]:
    """The results folder a source holds: itself, or a tarball's results/ unpacked."""
    if source.is_dir():
        yield source
        return
    if not tarfile.is_tarfile(source):
        raise AblationsError(f"{source}: not a results folder or a tarball of results/...; "
                             "give tarballs written by `ablate pack`")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(source) as tar:
        try:  # refuses links out of the folder and device files (Python 3.12, 3.11.4, ...)
            tar.extractall(scratch, filter="data")
        except TypeError:  # a Python without extraction filters: trusted tarballs only
            tar.extractall(scratch)
        folders = [p for p in Path(scratch).iterdir() if p.is_dir()]
        if len(folders) != 1:
            raise AblationsError(f"{source}: its members must lie under one folder "
                                 "(results/...), as `ablate pack` writes them")  # fmt: skip
        yield folders[0]


def _merge_folder(incoming: Path, results: Path, *, log: Callable[[str], None]) -> int:
    results.mkdir(parents=True, exist_ok=True)
    for table in sorted(incoming.glob("*.csv")):
        if table.name not in FROM_RUNS:
            _merge_table(table, results / table.name)
    for record in sorted(incoming.glob("*.json")):
        _merge_record(record, results / record.name)
    finished = [d for d in sorted((incoming / schemas.RUNS_DIR).glob("*")) if d.is_dir()
                and _merge_run(d, results / schemas.RUNS_DIR / d.name, log=log)]  # fmt: skip
    for run in finished:
        collect.record(results / schemas.RUNS_DIR / run.name, results)
    return len(finished)


def _merge_table(incoming: Path, ours: Path) -> None:
    schema = SCHEMAS.get(ours.name)
    if schema is None:  # no key known: every distinct row once
        with locked(ours):
            new = pd.read_csv(incoming, dtype=str, keep_default_na=False)
            old = (pd.read_csv(ours, dtype=str, keep_default_na=False) if ours.exists()
                   else new.iloc[:0])  # fmt: skip
            merged = pd.concat([old, new], ignore_index=True).drop_duplicates()
            write_atomic(ours, lambda tmp: merged.to_csv(tmp, index=False))
        return
    new, key = read_table(incoming, schema), list(schema.key)
    # A row older than ours stays out (a key that holds the time cannot be older).
    if "created_at" in new.columns and "created_at" not in key and ours.exists():
        theirs = read_table(ours, schema)[[*key, "created_at"]]
        paired = new[key].astype(str).merge(theirs.astype(str), on=key, how="left")
        new = new[~(paired["created_at"].fillna("") > new["created_at"]).to_numpy()]
    upsert(ours, new, schema)


def _merge_record(incoming: Path, ours: Path) -> None:
    def created(path: Path) -> str:
        return str(json.loads(path.read_text()).get("created_at", ""))

    if not ours.exists() or created(incoming) >= created(ours):
        shutil.copyfile(incoming, ours)


def _merge_run(incoming: Path, ours: Path, *, log: Callable[[str], None]) -> bool:
    """One run directory (see the module docstring); True when a finished run came in."""
    if not ours.exists():
        shutil.copytree(incoming, ours)
        return rundir.is_finished(ours)
    if rundir.is_finished(ours):
        for f in incoming.iterdir():  # the weights packed apart, say
            if f.name != CHECKPOINT and not (ours / f.name).exists():
                shutil.copy2(f, ours / f.name)
        return False
    if rundir.is_finished(incoming):
        shutil.rmtree(ours)
        shutil.copytree(incoming, ours)
        return True
    if progress(incoming) >= max(progress(ours), 0):
        for f in incoming.iterdir():
            if f.name != CHECKPOINT:
                shutil.copy2(f, ours / f.name)
    if rundir.checkpoint(incoming).exists():
        at = checkpoint_iteration(ours)
        if checkpoint_iteration(incoming) > at:
            shutil.copy2(rundir.checkpoint(incoming), rundir.checkpoint(ours))
        else:
            log(f"[merge] {ours.name}: kept our checkpoint (iteration {at:,}), the incoming "
                "one is not later")  # fmt: skip
    return False
