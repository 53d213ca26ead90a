"""`ablate runs-at-once`: the combined training img/s of K copies of one net (seeds 0..K-1) as
`streams` (one process, a CUDA stream each: `ablate run --jobs K`) and as `processes` (spawned
together at a barrier: `--executor local --jobs K`; `mps` says whether an MPS daemon served
them). Rows are appended to results/runs_at_once.csv as measured; on a CPU they check the code."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ablations.config import TrainConfig, resolve_device
from ablations.data.prepare import RunData, prepare_data
from ablations.gpu import streams as cuda_streams
from ablations.measure import synchronize
from ablations.measure.step_speed import append_row, now, ready
from ablations.results import provenance, schemas


def streams(
    config: TrainConfig, data: RunData, device: torch.device, *, jobs: int, iterations: int,
    warmup: int,
) -> tuple[float, str]:  # fmt: skip
    """Seconds for `iterations` steps of `jobs` runs issued in turn on their streams; the step."""
    with tempfile.TemporaryDirectory() as scratch:
        runs = []
        for seed in range(jobs):
            stream = cuda_streams.stream_for(device, slot=seed)  # after the data's copy
            trainer, batches = ready(replace(config, seed=seed), data, device, Path(scratch),
                                     warmup=warmup, stream=stream)  # fmt: skip
            runs.append((trainer, batches, stream))
        synchronize(device)
        start = time.perf_counter()
        for _ in range(iterations):
            for trainer, batches, stream in runs:
                with cuda_streams.on(stream):
                    trainer.advance(batches, until=trainer.state.iteration + 1)
        synchronize(device)
        return time.perf_counter() - start, runs[0][0].step_kind


def _process(config: dict[str, Any], data: str | None, device: str, iterations: int,
             warmup: int, barrier: Any, results: Any) -> None:  # fmt: skip
    """One run of the `processes` method, in its own interpreter."""
    dev = resolve_device(device)
    run = TrainConfig.from_json(config)
    run_data = prepare_data(run, data, dev)
    with tempfile.TemporaryDirectory() as scratch:
        trainer, batches = ready(run, run_data, dev, Path(scratch), warmup=warmup)
        synchronize(dev)
        barrier.wait()
        start = time.monotonic()  # one clock for every process
        trainer.advance(batches, until=trainer.state.iteration + iterations)  # from `ready`
        synchronize(dev)
        results.put((start, time.monotonic(), trainer.step_kind))


def processes(
    config: TrainConfig, data: str | None, device: torch.device, *, jobs: int, iterations: int,
    warmup: int,
) -> tuple[float, str]:  # fmt: skip
    """Seconds from the first process's start to the last one's end, `jobs` processes."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(jobs), context.Queue()
    children = [
        context.Process(target=_process, args=(replace(config, seed=seed).to_json(), data,
                                               str(device), iterations, warmup, barrier,
                                               results))
        for seed in range(jobs)
    ]  # fmt: skip
    for child in children:
        child.start()
    spans = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join()
    return max(s[1] for s in spans) - min(s[0] for s in spans), spans[0][2]


def measure(
    config: TrainConfig, *, results: Path, data: str | None, device: torch.device,
    counts: dict[str, Sequence[int]], iterations: int, warmup: int,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:  # fmt: skip
    """A row per method of `counts` and K, appended to results/ as it is measured. `processes`
    goes first, so its children share the GPU with no memory of this process's. After
    `streams` this process would still hold its CUDA context and the streams' cuBLAS
    workspaces, which `torch.cuda.empty_cache` cannot hand back."""
    mps = device.type == "cuda" and os.environ.get("CUDA_MPS_PIPE_DIRECTORY") is not None
    shared: RunData | None = None
    rows = []
    for method, ks in sorted(counts.items(), key=lambda item: item[0] != "processes"):
        for jobs in ks:
            if method == "streams":
                if shared is None:  # prepared after `processes`, once for every K
                    shared = prepare_data(config, data, device)
                seconds, step = streams(config, shared, device, jobs=jobs,
                                        iterations=iterations, warmup=warmup)  # fmt: skip
            else:
                seconds, step = processes(config, data, device, jobs=jobs,
                                          iterations=iterations, warmup=warmup)  # fmt: skip
            images = jobs * iterations * config.batch_size
            rows.append({
                "method": method, "mps": mps, "jobs": jobs, "variant": config.variant,
                "step": step, "precision": config.precision,
                "channels_last": config.channels_last, "batch_size": config.batch_size,
                "iterations": iterations, "seconds": seconds,
                "images_per_s": images / seconds, "machine": provenance.device_name(device),
                "torch": torch.__version__, "git_commit": provenance.git_commit(),
                "created_at": now(),
            })  # fmt: skip
            log(f"[runs-at-once] {method}{' (MPS)' if mps else ''} x{jobs} {config.variant}: "
                f"{images / seconds:,.0f} img/s in all")  # fmt: skip
            append_row(results / schemas.RUNS_AT_ONCE_FILE, rows[-1], schemas.RUNS_AT_ONCE)
    return rows
