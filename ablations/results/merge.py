"""`ablate merge`: results made elsewhere come into a results folder without losing a row. A
source is a results folder, a tarball of results/... (as `ablate pack` writes it) or one CSV
table; docs/clusters.md says which copy of a table row, record or run directory wins."""

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
from ablations.results.table import locked, read_table, upsert
from ablations.train.resume import checkpoint_iteration


def merge(sources: list[Path], results: Path, *, log: Callable[[str], None] = print) -> int:
    """Merge each source into `results` in turn; returns the finished runs recorded."""
    recorded = 0
    for source in sources:
        if source.suffix == ".csv":  # one table, as `ablate loader-speed --out` writes it
            _merge_table(source, results / source.name)
            log(f"[merge] {source}: merged into {results / source.name}")
            continue
        with _opened(source) as incoming:
            results.mkdir(parents=True, exist_ok=True)
            for table in sorted(incoming.glob("*.csv")):
                if table.name not in (schemas.RUNS_FILE, schemas.CURVES_FILE):  # from the runs
                    _merge_table(table, results / table.name)
            for record in sorted(incoming.glob("*.json")):
                _merge_record(record, results / record.name)
            for run in sorted((incoming / schemas.RUNS_DIR).glob("*")):
                ours = results / schemas.RUNS_DIR / run.name
                if run.is_dir() and _merge_run(run, ours, log=log):
                    collect.record(ours, results)
                    recorded += 1
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


def _merge_table(incoming: Path, ours: Path) -> None:
    """By key, the later `created_at` winning (the incoming row where neither says); a table
    without a schema takes the rows it lacks."""
    schema = schemas.TABLES.get(ours.name)
    if schema is None:
        with locked(ours):
            new = pd.read_csv(incoming, dtype=str, keep_default_na=False)
            old = pd.read_csv(ours, dtype=str, keep_default_na=False) if ours.exists() else new[:0]
            merged = pd.concat([old, new], ignore_index=True).drop_duplicates()
            write_atomic(ours, lambda tmp: merged.to_csv(tmp, index=False))
        return
    new, key = read_table(incoming, schema), list(schema.key)
    if "created_at" in new.columns and "created_at" not in key and ours.exists():
        theirs = read_table(ours, schema)[[*key, "created_at"]]
        paired = new[key].astype(str).merge(theirs.astype(str), on=key, how="left")
        new = new[~(paired["created_at"].fillna("") > new["created_at"]).to_numpy()]
    upsert(ours, new, schema)


def _merge_record(incoming: Path, ours: Path) -> None:
    """A JSON record (projection.json) is replaced by a newer one."""

    def created(path: Path) -> str:
        return str(json.loads(path.read_text()).get("created_at", ""))

    if not ours.exists() or created(incoming) >= created(ours):
        shutil.copyfile(incoming, ours)


def _merge_run(incoming: Path, ours: Path, *, log: Callable[[str], None]) -> bool:
    """Copy a run directory in as far as it got, never over a finished one (which takes only the
    files it lacks), a checkpoint only where later; True when a finished run came in."""
    if rundir.is_finished(ours):
        for f in incoming.iterdir():  # the weights packed apart, say
            if f.name != rundir.CHECKPOINT and not (ours / f.name).exists():
                shutil.copy2(f, ours / f.name)
        return False
    if not ours.exists() or rundir.is_finished(incoming):
        shutil.rmtree(ours, ignore_errors=True)
        shutil.copytree(incoming, ours)
        return rundir.is_finished(ours)
    if rundir.progress(incoming) >= max(rundir.progress(ours), 0):
        for f in incoming.iterdir():
            if f.name != rundir.CHECKPOINT:
                shutil.copy2(f, ours / f.name)
    if rundir.checkpoint(incoming).exists():
        at = checkpoint_iteration(ours)
        if checkpoint_iteration(incoming) > at:
            shutil.copy2(rundir.checkpoint(incoming), rundir.checkpoint(ours))
        else:
            log(f"[merge] {ours.name}: kept our checkpoint (iteration {at:,}), the incoming "
                "one is not later")  # fmt: skip
    return False
