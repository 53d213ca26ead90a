"""Issue 10's "several runs on one GPU": which way of running K runs at once fills the GPU best.

For K copies of one net (seeds 0..K-1, the `paper` profile's step: bf16, channels_last, the
CUDA-graph step), the combined training images/s over the same number of steps per run:

- `streams`: K runs in this process, one CUDA stream each, stepped in turn: what `ablate run
  --jobs K` and `train_gpu.py --jobs K` do (ablations.runners.together);
- `processes`: K processes (spawned), started together at a barrier: what `ablate run
  --executor local --jobs K` does on one GPU. Without MPS a GPU runs one process's kernels at a
  time, so the `mps` column says whether an MPS daemon was serving them (device/train_gpu.sh
  starts one where `nvidia-cuda-mps-control` exists and reruns this with --methods processes).

Rows go to --out (CSV) with the machine, torch and commit. `--smoke` runs every method on the
CPU at a tiny budget (tests/test_device.py): the numbers mean nothing there, the code path is
what is checked.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from train_gpu import WARMUP_ITERATIONS, append_row, ready, synchronize  # device/, beside

from ablations import env
from ablations.config import TrainConfig, resolve_config
from ablations.data import load_dataset
from ablations.data.prepare import Data, prepare_data
from ablations.runners import together
from ablations.runners.steps import set_tf32


def _seeded(config: TrainConfig, seed: int) -> TrainConfig:
    return TrainConfig(**{**config.to_json(), "seed": seed})


def streams(config: TrainConfig, data: Data, device: torch.device, *, jobs: int,
            iterations: int) -> tuple[float, str]:  # fmt: skip
    """Seconds for `iterations` steps of each of `jobs` runs issued in turn on their streams,
    and the step they took."""
    with tempfile.TemporaryDirectory() as scratch:
        runs = []
        for seed in range(jobs):
            stream = together.stream_for(device)  # after the shared data's copy to the GPU
            runs.append((*ready(_seeded(config, seed), data, device, Path(scratch), stream),
                         stream))  # fmt: skip
        synchronize(device)
        start = time.perf_counter()
        for i in range(1, iterations + 1):
            for trainer, batches, stream in runs:
                with together.on(stream):
                    trainer.advance(batches, until=WARMUP_ITERATIONS + i)
        synchronize(device)
        return time.perf_counter() - start, runs[0][0].step_kind


def _process(config: dict[str, Any], data: str | None, device: str, iterations: int,
             barrier: Any, results: Any) -> None:  # fmt: skip
    """One run of the `processes` method, in its own interpreter."""
    dev = torch.device(device)
    run = TrainConfig.from_json(config)
    prepared = prepare_data(run, load_dataset("cifar10", data=data), dev)
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    set_tf32(run.precision)
    with tempfile.TemporaryDirectory() as scratch:
        trainer, batches = ready(run, prepared, dev, Path(scratch), None)
        synchronize(dev)
        barrier.wait()
        start = time.monotonic()  # one clock for every process
        trainer.advance(batches, until=WARMUP_ITERATIONS + iterations)
        synchronize(dev)
        results.put((start, time.monotonic(), trainer.step_kind))


def processes(config: TrainConfig, data: str | None, device: torch.device, *, jobs: int,
              iterations: int) -> tuple[float, str]:  # fmt: skip
    """Seconds from the first process's start to the last one's end, `jobs` processes."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(jobs), context.Queue()
    children = [
        context.Process(target=_process, args=(_seeded(config, seed).to_json(), data,
                                               str(device), iterations, barrier, results))
        for seed in range(jobs)
    ]  # fmt: skip
    for child in children:
        child.start()
    spans = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join()
    return max(s[1] for s in spans) - min(s[0] for s in spans), spans[0][2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="the CSV the rows are appended to")
    p.add_argument("--data", help="CIFAR-10 archive (default: $ABLATE_DATA)")
    p.add_argument("--variant", default="resnet56")
    p.add_argument("--methods", default="streams,processes")
    p.add_argument("--jobs", default="1,2,4,8", help="K values for streams")
    p.add_argument("--process-jobs", default="2,4", help="K values for processes")
    p.add_argument("--iterations", type=int, default=300, help="timed steps per run")
    p.add_argument("--if-missing", action="store_true",
                   help="only the methods --out has no rows of on this device")  # fmt: skip
    p.add_argument("--smoke", action="store_true", help="the CPU at the smoke budget (tests)")
    args = p.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        p.error("no CUDA device here: run this on the GPU machine, or with --smoke on a CPU")
    profile, device = (
        ("smoke", torch.device("cpu")) if args.smoke else ("paper", torch.device("cuda"))
    )
    config = resolve_config(args.variant, profile=profile, device=device.type)
    data = args.data or os.environ.get("ABLATE_DATA")
    torch.backends.cudnn.benchmark = device.type == "cuda"
    set_tf32(config.precision)
    mps = os.environ.get("CUDA_MPS_PIPE_DIRECTORY") is not None and device.type == "cuda"
    methods = args.methods.split(",")
    if unknown := set(methods) - {"streams", "processes"}:
        p.error(f"--methods: unknown {', '.join(sorted(unknown))}; choose streams,processes")
    if args.if_missing:
        methods = [m for m in methods if not _measured(args.out, m, mps=mps, device=device)]
        if not methods:
            print("[concurrency] measured on this device already", file=sys.stderr)
            return 0
    counts = {"streams": _ints(args.jobs), "processes": _ints(args.process_jobs)}
    prepared = prepare_data(config, load_dataset("cifar10", data=data), device) \
        if "streams" in methods else None  # fmt: skip
    rows = []
    for method in methods:
        for jobs in counts[method]:
            if method == "streams":
                assert prepared is not None
                seconds, step = streams(config, prepared, device, jobs=jobs,
                                        iterations=args.iterations)  # fmt: skip
            else:
                seconds, step = processes(config, data, device, jobs=jobs,
                                          iterations=args.iterations)  # fmt: skip
            images = jobs * args.iterations * config.batch_size
            rows.append({
                "method": method, "mps": mps, "jobs": jobs, "variant": config.variant,
                "step": step, "precision": config.precision,
                "channels_last": config.channels_last, "batch_size": config.batch_size,
                "iterations": args.iterations, "seconds": seconds,
                "images_per_s": images / seconds, "machine": env.device_name(device),
                "torch": torch.__version__, "git_commit": env.git_commit(),
                "created_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
            })  # fmt: skip
            print(f"[concurrency] {method}{' (MPS)' if mps else ''} x{jobs} {config.variant}: "
                  f"{images / seconds:,.0f} img/s in all", file=sys.stderr, flush=True)  # fmt: skip
            append_row(args.out, rows[-1])  # each as it is measured: a time limit keeps the rest
    return 0


def _ints(text: str) -> list[int]:
    return [int(k) for k in text.split(",") if k.strip()]


def _measured(path: Path, method: str, *, mps: bool, device: torch.device) -> bool:
    if not path.exists():
        return False
    table = pd.read_csv(path)
    mine = (table["machine"] == env.device_name(device)) & (table["method"] == method)
    return bool((mine & (table["mps"] == mps)).any())


if __name__ == "__main__":
    sys.exit(main())
