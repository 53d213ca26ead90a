"""The measuring process tree: which settings share a child interpreter, running the children,
and appending their rows to the table as each finishes; the terminal table."""

from __future__ import annotations

import contextlib
import gc
import json
import math
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
from ablations.measure.throughput.settings import Setting
from ablations.progress import progress
from ablations.registry import AblationsError, get_variant
from ablations.results import provenance, schemas
from ablations.results.schemas import OURS, THROUGHPUT_FILE
from ablations.results.schemas import THROUGHPUT as SCHEMA
from ablations.results.table import read_table, upsert

if TYPE_CHECKING:  # ForkServerContext exists only where fork does
    from multiprocessing.context import ForkServerContext, SpawnContext

CHILD: Callable[..., None] = child.serve  # what a child runs (a test swaps in a crash)
# What a child or timm reports, and the value of each where it reported none (a crash).
REPORTED = {
    "reference": OURS, "error": "", "macs": 0, "memory_kind": "", "peak_source": "",
    "protocol": "", "cudnn": "", "torch_threads": 0,  # the child's threads, not the parent's
    **dict.fromkeys(("images_per_s", "step_ms", "step_ms_iqr", "first_step_s", "peak_mem_mb",
                     "tflops", "peak_tflops", "fraction_of_peak", "host_syncs_per_step"), math.nan),
    **dict.fromkeys(("dynamo_graphs", "dynamo_graph_breaks", "dynamo_frames_skipped"), 0),
    **dict.fromkeys(("tf32_matmul", "tf32_cudnn", "cudnn_benchmark"), False),
}  # fmt: skip
ENVIRONMENT = ("machine", "driver", "torch", "cuda", "git_commit", "created_at", "cpu_kernels")


def output_path(out: Path, name: str = THROUGHPUT_FILE) -> Path:
    """`out`, or `out/name` where `out` is an existing directory."""
    return out / name if out.is_dir() else out


def process_groups(settings: Iterable[Setting]) -> list[list[Setting]]:
    """The settings of each child. Eager ones share a child per (variant, run): one variant's
    allocator state or crash cannot touch the next, and runs stay independent. A compiled one
    is alone: dynamo's recompile limit is per process, past it a setting would run eagerly."""
    groups: dict[tuple[str, int, int], list[Setting]] = {}
    for i, s in enumerate(settings):
        groups.setdefault((s.variant, s.run, i if s.compile else -1), []).append(s)
    return list(groups.values())


def start_method(device: str) -> ForkServerContext | SpawnContext:
    """On a CPU, children fork from a server that has only imported the measuring code (no
    thread pool, allocator or denormal state to inherit), saving each child torch's import. On
    a GPU they are spawned, so no CUDA state can cross a fork."""
    if device == "cpu" and "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([child.__name__])  # imported once, by the server
        return context
    return multiprocessing.get_context("spawn")


def run_child(settings: Sequence[Setting]) -> list[dict[str, Any]]:
    """Measure `settings` in a fresh child; variants travel as axes (run-time ones included).
    A child that exits cleanly with settings left stopped after a failed CUDA graph capture:
    a fresh child measures the rest. A crashed child's unreported settings are recorded as
    crashed."""
    messages = [{"setting": asdict(s), "variant": get_variant(s.variant).axes()} for s in settings]
    context = start_method(settings[0].device)
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=CHILD, args=(send, messages), daemon=True,
                              kwargs={"started": context.get_start_method()})  # fmt: skip
    process.start()
    send.close()  # the child holds the only sender: its exit ends the loop below
    rows: list[dict[str, Any]] = []
    with receive, contextlib.suppress(EOFError):
        while True:
            rows += receive.recv()
    process.join()
    code = process.exitcode
    done = {json.dumps(r["setting"], sort_keys=True) for r in rows}
    left = [s for s in settings if json.dumps(asdict(s), sort_keys=True) not in done]
    if left and rows and code == 0:  # a clean exit that reported nothing would loop forever
        return rows + run_child(left)
    if code is not None and code < 0:
        killer = signal.Signals(-code).name
        error = f"child killed by {killer}" + (" (out of memory?)" if killer == "SIGKILL" else "")
    else:
        error = f"child exited with status {code} before reporting"
    return rows + [{"setting": asdict(s), "status": "crashed", "error": error} for s in left]


def row(result: dict[str, Any], environment: dict[str, Any]) -> dict[str, Any]:
    """A results row: the setting, what was measured and reported, the environment."""
    setting = Setting(**result["setting"])
    v = get_variant(setting.variant)
    # A setting that measured nothing: its fixed batch, or 0 where none was fixed.
    requested = setting.batch_size if isinstance(setting.batch_size, int) else 0
    return {
        **asdict(setting), "variant": v.name, "family": v.family, "depth": v.depth,
        "residual": v.residual, "shortcut": v.shortcut, "stem": v.stem,
        "requested_batch_size": str(setting.batch_size or "default"),
        "batch_size": result.get("batch_size", requested),
        "input_size": setting.input_size or v.input_size, "status": result["status"],
        **{column: result.get(column, missing) for column, missing in REPORTED.items()},
        **{column: environment[column] for column in (*ENVIRONMENT, *schemas.MACHINE_HASHES)},
    }  # fmt: skip


def run(
    settings: Iterable[Setting], *, out: Path | None = None, show_progress: bool = True,
    reference: str | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Measure every setting, appending rows to `out` (a file or folder) as each child ends.
    `reference="timm"` measures each with timm's script right after ours, so drift affects both
    alike. A calling script needs the `if __name__ == "__main__":` guard (spawned children)."""
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
    release_cached_memory(device)
    tables = []
    for kind, group in progress(jobs, desc="throughput", label=_label) if show_progress else jobs:
        results = run_child(group) if kind == OURS else [timm.run_timm(group[0])]
        table = SCHEMA.validate(pd.DataFrame([row(result, facts) for result in results]))
        if path is not None:
            upsert(path, table, SCHEMA)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def release_cached_memory(device: torch.device) -> None:
    """Hand the GPU memory this process's allocator caches back to the driver. Measuring after
    training or responses in the same process, the parent would keep the blocks it reserved
    while its children measure on the same GPU: a `max` sweep would stop lower, and a fixed
    batch near the limit would read as out of memory. The parent itself allocates nothing on
    the GPU (and `empty_cache` makes no CUDA context where none exists)."""
    if device.type == "cuda":
        gc.collect()  # tensors kept only by reference cycles free their blocks first
        torch.cuda.empty_cache()


def _label(job: tuple[str, list[Setting]]) -> str:
    kind, group = job
    s = group[0]
    compiled = f" {s.mode} {s.precision} compiled" if s.compile else ""
    timm_run = f" {s.mode} (timm)" if kind != OURS else ""
    return f"{s.variant}{compiled}{timm_run}" + (f" run {s.run}" if s.run else "")


def format_table(table: pd.DataFrame) -> str:
    """The measurements as a terminal table."""
    shown = pd.DataFrame({
        "variant": table["variant"], "mode": table["mode"], "step": table["step"],
        "ref": table["reference"],
        "precision": table["precision"], "channels_last": table["channels_last"],
        "compile": table["compile"], "batch": table["batch_size"], "status": table["status"],
        "images/s": table["images_per_s"].map("{:,.1f}".format),
        "step ms (IQR)": [f"{m:.2f} ({q:.2f})"
                          for m, q in zip(table["step_ms"], table["step_ms_iqr"], strict=True)],
        "peak MB": table["peak_mem_mb"].map("{:,.0f}".format),
        "TFLOP/s": table["tflops"].map("{:.3g}".format),
        "of peak": table["fraction_of_peak"].map(lambda f: "" if f != f else f"{f:.1%}"),
    })  # fmt: skip
    return f"# {table['machine'].iloc[0]}\n{shown.to_string(index=False)}"
