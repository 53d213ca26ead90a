"""Issue 10/11's training on a lent GPU, in one command (run through device/train_gpu.sh).

1. img/s of every Fig. 6 net over a few thousand iterations with the fast (CUDA-graph) step,
   and over a few hundred with the eager step beside it: speed.csv.
2. The projected wall time of the whole Fig. 6 set (64k iterations x 9 nets, evaluation and
   checkpoints included) from those rates: projection.json.
3. The paper-profile degradation runs, in order, resumable: each stops at its first checkpoint
   past the time limit (`train(deadline=...)`), so the command ends cleanly before the device's
   10-minute limit; rerunning it (with the packed results carried back) resumes.
4. results.tar.gz (the run records and results/*.csv) and weights-N.tar.gz (model.pt and
   checkpoint.pt, split under the 16 MB a returned file may have) under --out.

`--smoke` runs all of it on the CPU at the smoke budget, in seconds (tests/test_device.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ablations import env, pipeline, store
from ablations.config import TrainConfig, resolve_config
from ablations.data import load_dataset
from ablations.data.prepare import Data, prepare_data
from ablations.experiments import EXPERIMENTS
from ablations.runners.steps import set_tf32
from ablations.runners.train import Trainer, train

PART_BYTES = 15 * 2**20  # a returned file may have 16 MB
WARMUP_ITERATIONS = 30  # untimed: cuDNN autotuning, graph capture


def say(line: str) -> None:
    print(f"[train_gpu] {line}", file=sys.stderr, flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(config: TrainConfig, data: Data, device: torch.device, iterations: int) -> dict:
    """images/s of the training loop (batches, step, sums) after WARMUP_ITERATIONS, and the
    time of one validation pass (the second: the first autotunes), for one config."""
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config, data, directory=Path(scratch), device=device, show_progress=False)
        trainer.model.train()
        batches = data.train.batches(0)
        trainer.advance(batches, until=WARMUP_ITERATIONS)
        synchronize(device)
        start = time.perf_counter()
        trainer.advance(batches, until=WARMUP_ITERATIONS + iterations)
        synchronize(device)
        seconds = time.perf_counter() - start
        for _ in range(2):
            start = time.perf_counter()
            trainer.evaluate("val")  # the eager model, as training evaluates
            eval_s = time.perf_counter() - start
        kind, note = trainer.step_kind, trainer.step_note
    return {
        "variant": config.variant, "step": kind, "step_note": note, "iterations": iterations,
        "batch_size": config.batch_size, "seconds": seconds,
        "ms_per_step": 1e3 * seconds / iterations,
        "images_per_s": iterations * config.batch_size / seconds, "eval_s": eval_s,
        "precision": config.precision, "channels_last": config.channels_last,
        "machine": env.device_name(device), "torch": torch.__version__,
    }  # fmt: skip


def project(rows: pd.DataFrame, configs: list[TrainConfig], steps_per_epoch: int) -> dict:
    """Wall time of every config at its full budget from the measured step and eval times."""
    out: dict[str, Any] = {"nets": len(configs)}
    for step, table in rows.groupby("step"):
        per_net = {}
        for config in configs:
            row = table[table["variant"] == config.variant].iloc[0]
            iterations, _, eval_every = config.schedule(steps_per_epoch)
            evals = -(-iterations // eval_every) + 2  # + the final test pass (twice the size)
            per_net[config.variant] = iterations * row["ms_per_step"] / 1e3 + evals * row["eval_s"]
        out[f"{step}_seconds"] = per_net
        out[f"{step}_total_minutes"] = sum(per_net.values()) / 60
    return out


def run_set(configs: list[TrainConfig], *, results: Path, data: str | None, device: torch.device,
            deadline: float) -> list[dict]:  # fmt: skip
    """Train the configs in order until one stops at the deadline (the first always starts,
    so every call makes progress); each finished run is recorded in results/ as `ablate run`
    would."""
    done: list[dict] = []
    for config in configs:
        if done and time.monotonic() >= deadline:
            say(f"time limit reached before {config.run_id}: rerun to continue")
            break
        record = train(config, out=results / store.RUNS_DIR, data=data, device=device,
                       deadline=deadline)  # fmt: skip
        done.append(
            {
                "run_id": config.run_id,
                **{
                    k: record.summary.get(k)
                    for k in (
                        "status",
                        "iterations",
                        "train_s",
                        "test_error",
                        "images_per_s",
                        "step",
                    )
                },
            }
        )
        say(f"{config.run_id}: {record.status} at iteration {record.summary.get('iterations')}")
        if record.status == "stopped":
            say("stopped cleanly at a checkpoint: rerun the same command to resume")
            break
        store.record(record.run_dir, results)
    return done


def pack(results: Path, run_ids: list[str], out: Path) -> list[Path]:
    """results.tar.gz: results/*.csv and the runs' records; weights-N.tar.gz: their .pt files,
    in parts under PART_BYTES (compressed weights are about as large as raw ones)."""
    runs = [
        results / store.RUNS_DIR / r for r in run_ids if (results / store.RUNS_DIR / r).exists()
    ]
    records = [*sorted(results.glob("*.csv")), *(f for d in runs for f in sorted(d.iterdir())
                                                 if f.suffix != ".pt")]  # fmt: skip
    weights = [f for d in runs for f in sorted(d.glob("*.pt")) if f.name != "best.pt"]
    written = [_tar(out / "results.tar.gz", records, results.parent)]
    part: list[Path] = []
    for f in weights:
        if part and sum(p.stat().st_size for p in part) + f.stat().st_size > PART_BYTES:
            written.append(_tar(out / f"weights-{len(written)}.tar.gz", part, results.parent))
            part = []
        part.append(f)
    if part:
        written.append(_tar(out / f"weights-{len(written)}.tar.gz", part, results.parent))
    return written


def _tar(path: Path, files: list[Path], root: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=str(f.relative_to(root)))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="where the returned files go")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--data", help="CIFAR-10 archive (default: $ABLATE_DATA)")
    p.add_argument("--time-limit", type=float, default=540, metavar="S",
                   help="seconds for the whole command, from its start (default 540)")  # fmt: skip
    p.add_argument("--measure-iterations", type=int, default=2000)
    p.add_argument("--eager-iterations", type=int, default=200)
    p.add_argument("--skip-measure", action="store_true", help="only train (a later session)")
    p.add_argument("--smoke", action="store_true", help="the CPU at the smoke budget (tests)")
    args = p.parse_args(argv)
    try:  # needed at the end of every run (its MACs): fail now, not after the training
        import fvcore  # noqa: F401
    except ImportError:
        say("fvcore is missing: carry its wheels (../shared/device/wheels.sh .whl), see README")
        return 2
    start = time.monotonic()
    deadline = start + args.time_limit
    profile, device = (
        ("smoke", torch.device("cpu")) if args.smoke else ("paper", torch.device("cuda"))
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    args.out.mkdir(parents=True, exist_ok=True)
    variants = EXPERIMENTS["degradation"].variants_for(profile)
    configs = [resolve_config(v, profile=profile, device=device.type) for v in variants]
    machine = f"{env.device_name(device)}, torch {torch.__version__}"
    say(f"{len(configs)} nets, {profile} profile, {machine}")
    if not args.skip_measure:
        dataset = load_dataset("cifar10", data=args.data)
        data = prepare_data(configs[0], dataset, device)  # the same data for every net
        set_tf32(configs[0].precision)
        rows = []
        for step, n in (("auto", args.measure_iterations), ("eager", args.eager_iterations)):
            for config in configs:
                row = measure(TrainConfig(**{**config.to_json(), "step": step}), data, device, n)
                say(f"{row['variant']:>10} {row['step']:>5}: {row['images_per_s']:9,.0f} img/s "
                    f"{row['ms_per_step']:7.2f} ms/step {row['step_note']}")  # fmt: skip
                rows.append(row)
        table = pd.DataFrame(rows)
        table.to_csv(args.out / "speed.csv", index=False)
        steps_per_epoch = prepare_data(
            configs[0], dataset, torch.device("cpu")
        ).train.steps_per_epoch
        projection = project(table, configs, steps_per_epoch)
        (args.out / "projection.json").write_text(json.dumps(projection, indent=1))
        for key, value in projection.items():
            if key.endswith("total_minutes"):
                step = key.removesuffix("_total_minutes")
                say(f"projected Fig. 6 set with the {step} step: {value:.1f} min")
    tasks = pipeline.plan(["degradation"], profile=profile, device=device)
    todo = [t.config for t in tasks if t.config is not None]
    margin = 0 if args.smoke else 45  # the last interval, the final test pass, packing
    done = run_set(todo, results=args.results, data=args.data, device=device,
                   deadline=deadline - margin)  # fmt: skip
    (args.out / "runs.json").write_text(json.dumps(done, indent=1))
    for path in pack(args.results, [c.run_id for c in todo], args.out):
        say(f"{path}: {path.stat().st_size / 2**20:.1f} MB")
    say(f"done in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
