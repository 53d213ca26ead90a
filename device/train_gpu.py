"""Issue 10/11's training on a lent GPU, in one command (run through device/train_gpu.sh).

1. img/s of every Fig. 6 net over a few thousand iterations with the fast (CUDA-graph) step,
   and over a few hundred with the eager step beside it: results/gpu_speed.csv, a row saved as
   each is measured.
2. The projected wall time of the whole Fig. 6 set (64k iterations x 9 nets, evaluation and
   checkpoints included) from those rates, one run at a time and `--jobs` at once (from
   results/concurrency.csv, which device/concurrency_gpu.py measures first):
   results/gpu_projection.json.
3. The paper-profile degradation runs, seed 0 of every net first, `--jobs` at once on their
   own CUDA streams (ablations.runners.together), resumable: each stops at its first
   checkpoint past the time limit, so the command ends cleanly before the device's 10-minute
   limit; rerunning it (with the packed results carried back) resumes.
4. The layer responses (Fig. 7) of the runs that finished, measured here from their weights,
   so that the weights need not come back.
5. Whatever happened above, --out gets runs.json, results.tar.gz (results/*.csv and *.json and
   the run records), checkpoints-N.tar.gz (the unfinished runs' checkpoint.pt, the furthest
   along first, as many as a later call can carry back) and weights-N.tar.gz (the model.pt of
   runs finished in this call), within what a device call returns (8 files, 16 MB each, 64 MB
   in all); what did not fit is named in the log.

`--smoke` runs all of it on the CPU at the smoke budget, in seconds (tests/test_device.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ablations import env, pipeline, store
from ablations.config import TrainConfig, resolve_config
from ablations.data import load_dataset
from ablations.data.prepare import Data, prepare_data
from ablations.experiments import EXPERIMENTS
from ablations.runners.records import RunRecord
from ablations.runners.steps import set_tf32
from ablations.runners.together import on, train_together
from ablations.runners.trainer import Trainer

# What a device call returns: 8 files of at most 16 MB, 64 MB in all. The log, runs.json and
# results.tar.gz take three files and a few MB; the checkpoint and weight parts share the rest.
PART_BYTES = 15 * 2**20
WEIGHT_PARTS = 5
WEIGHT_BYTES = 56 * 2**20
# What a later call can carry back: 64 MB with the tree (5.7 MB), the CIFAR-10 archive
# (19.6 MB), the wheels and results.tar.gz. A Fig. 6 checkpoint holds weights and momentum in
# fp32, 8 bytes a parameter: 2.2 MB (ResNet-20) to 13.8 MB (ResNet-110), so about 4 fit.
CARRY_BYTES = 34 * 2**20
WARMUP_ITERATIONS = 30  # untimed: cuDNN autotuning, graph capture
SPEED_FILE, PROJECTION_FILE, CONCURRENCY_FILE = (
    "gpu_speed.csv", "gpu_projection.json", "concurrency.csv",
)  # fmt: skip


def say(line: str) -> None:
    print(f"[train_gpu] {line}", file=sys.stderr, flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ready(config: TrainConfig, data: Data, device: torch.device, scratch: Path,
          stream: torch.cuda.Stream | None = None) -> tuple[Trainer, Iterator[Any]]:  # fmt: skip
    """A trainer past WARMUP_ITERATIONS (cuDNN autotuned, graph captured), its work on
    `stream`, and its batches: what every timing here starts from."""
    with on(stream):
        trainer = Trainer(config, data, directory=scratch / config.run_id, device=device,
                          show_progress=False)  # fmt: skip
        trainer.model.train()
        batches = data.train.batches(0)
        trainer.advance(batches, until=WARMUP_ITERATIONS)
    return trainer, batches


def measure(config: TrainConfig, data: Data, device: torch.device, iterations: int) -> dict:
    """images/s of the training loop (batches, step, sums) after WARMUP_ITERATIONS, and the
    time of one pass over the split the run evaluates on (the second: the first autotunes)."""
    with tempfile.TemporaryDirectory() as scratch:
        trainer, batches = ready(config, data, device, Path(scratch))
        synchronize(device)
        start = time.perf_counter()
        trainer.advance(batches, until=WARMUP_ITERATIONS + iterations)
        synchronize(device)
        seconds = time.perf_counter() - start
        for _ in range(2):
            start = time.perf_counter()
            trainer.evaluate(config.eval_split)  # the eager model, as training evaluates
            eval_s = time.perf_counter() - start
        kind, note = trainer.step_kind, trainer.step_note
    return {
        "variant": config.variant, "step": kind, "step_note": note, "iterations": iterations,
        "batch_size": config.batch_size, "seconds": seconds,
        "ms_per_step": 1e3 * seconds / iterations,
        "images_per_s": iterations * config.batch_size / seconds, "eval_split": config.eval_split,
        "eval_s": eval_s, "precision": config.precision, "channels_last": config.channels_last,
        "machine": env.device_name(device), "torch": torch.__version__,
        "git_commit": env.git_commit(),
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
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


def measure_set(configs: list[TrainConfig], *, data: str | None, device: torch.device,
                results: Path, iterations: dict[str, int], jobs: int,
                speedup: float) -> None:  # fmt: skip
    """Steps 1 and 2 of the module docstring; each row is saved as soon as it is measured."""
    dataset = load_dataset("cifar10", data=data)
    prepared = prepare_data(configs[0], dataset, device)  # the same data for every net
    set_tf32(configs[0].precision)
    rows: list[dict] = []
    for step, n in iterations.items():
        for config in configs:
            row = measure(TrainConfig(**{**config.to_json(), "step": step}), prepared, device, n)
            say(f"{row['variant']:>10} {row['step']:>5}: {row['images_per_s']:9,.0f} img/s "
                f"{row['ms_per_step']:7.2f} ms/step {row['step_note']}")  # fmt: skip
            rows.append(row)
            append_row(results / SPEED_FILE, row)
    projection = project(pd.DataFrame(rows), configs, prepared.train.steps_per_epoch)
    projection |= {"runs_at_once": jobs, "combined_speedup": speedup, "machine": rows[0]["machine"],
                   "git_commit": rows[0]["git_commit"]}  # fmt: skip
    (results / PROJECTION_FILE).write_text(json.dumps(projection, indent=1))
    for key, value in projection.items():
        if key.endswith("total_minutes"):
            at_once = f", {value / speedup:.1f} min {jobs} at once" if jobs > 1 else ""
            say(f"projected Fig. 6 set, {key.removesuffix('_total_minutes')} step: "
                f"{value:.1f} min one at a time{at_once}")  # fmt: skip


def append_row(path: Path, row: dict[str, Any]) -> None:
    """One row onto a CSV, as soon as it is measured (a time limit keeps what came before)."""
    pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)


def run_set(configs: list[TrainConfig], *, results: Path, data: str | None, device: torch.device,
            deadline: float, jobs: int, done: list[dict]) -> None:  # fmt: skip
    """Train the configs in order, `jobs` at once (ablations.runners.together), each stopping
    at its first checkpoint past the deadline, after which none starts (the first always
    does, so every call makes progress); each finished run is recorded in results/ as `ablate
    run` would, and appended to `done` as it ends (so that an error later keeps it)."""

    def ended(record: RunRecord) -> None:
        keys = ("status", "iterations", "train_s", "test_error", "images_per_s", "step")
        done.append({"run_id": record.config.run_id, **{k: record.summary.get(k) for k in keys}})
        say(f"{record.config.run_id}: {record.status} at iteration "
            f"{record.summary.get('iterations')}")  # fmt: skip
        if record.status != "stopped":
            store.record(record.run_dir, results)

    train_together(configs, jobs=jobs, out=results / store.RUNS_DIR, data=data, device=device,
                   deadline=deadline, on_record=ended)  # fmt: skip
    if len(done) < len(configs) or any(d["status"] == "stopped" for d in done):
        say("stopped cleanly at a checkpoint (time limit): rerun the same command to resume")


def choose_jobs(requested: str, measured: Path, machine: str | None = None) -> tuple[int, float]:
    """`--jobs`: a number, or "auto": the streams K of the highest combined images/s that
    device/concurrency_gpu.py measured (on `machine`, where given), if it beats one run alone
    by 10%. With it, that combined rate over one run's (1.0 where nothing was measured)."""
    rates = pd.Series(dtype=float)
    if measured.exists():
        table = pd.read_csv(measured)
        mine = (table["method"] == "streams") & (machine is None or table["machine"] == machine)
        rates = table[mine].groupby("jobs")["images_per_s"].max()

    def speedup(k: int) -> float:
        return float(rates[k] / rates[1]) if {1, k} <= set(rates.index) else 1.0

    if requested != "auto":
        return int(requested), speedup(int(requested))
    if 1 not in rates.index:
        return 1, 1.0
    best = int(rates.idxmax())
    return (best, speedup(best)) if speedup(best) >= 1.1 else (1, 1.0)


def measure_responses(*, profile: str, results: Path, data: str | None,
                      device: torch.device) -> None:  # fmt: skip
    """Fig. 7's layer responses of the finished runs that have none yet, from their model.pt
    here, before the machine (and any weights that do not fit the return) goes."""
    tasks = pipeline.plan(["responses"], profile=profile, device=device)
    ctx = pipeline.Context(results=results, data=data, device=device)
    pipeline.execute(tasks, ctx, log=say)


def pack(results: Path, trained: list[str], out: Path) -> list[Path]:
    """results.tar.gz: results/*.csv, *.json and every run's records (not its weights);
    checkpoints-N.tar.gz: checkpoint.pt of each unfinished run, the furthest along first, within
    CARRY_BYTES (a later call carries them back, beside the tree and the data); weights-N.tar.gz:
    model.pt of each run in `trained` (finished in this call), for the record. Parts under
    PART_BYTES, WEIGHT_PARTS and WEIGHT_BYTES in all. Returns the files written; logs what was
    left out."""
    runs = sorted(d for d in (results / store.RUNS_DIR).glob("*") if d.is_dir())
    records = [*sorted(results.glob("*.csv")), *sorted(results.glob("*.json")),
               *(f for d in runs for f in sorted(d.iterdir()) if f.suffix != ".pt")]  # fmt: skip
    resumable = sorted((d for d in runs if (d / "checkpoint.pt").exists()), key=_progress,
                       reverse=True)  # fmt: skip
    finished = [f for r in trained if (f := results / store.RUNS_DIR / r / "model.pt").exists()]
    written = [_tar(out / "results.tar.gz", records, results.parent)]
    room = {"parts": WEIGHT_PARTS, "bytes": WEIGHT_BYTES}
    for name, files, limit, lost in (
        ("checkpoints", [d / "checkpoint.pt" for d in resumable], CARRY_BYTES,
         "over what a later call can carry: that run restarts"),
        ("weights", finished, WEIGHT_BYTES, "over what a call returns"),
    ):  # fmt: skip
        parts, left_out = _parts(files, room=room, limit=limit)
        written += [_tar(out / f"{name}-{i + 1}.tar.gz", part, results.parent)
                    for i, part in enumerate(parts)]  # fmt: skip
        for f in left_out:
            say(f"left out ({lost}): {f.relative_to(results.parent)}")
    return written


def _progress(run: Path) -> int:
    """The iteration a run's checkpoint holds (its curves end there)."""
    curves = run / "curves.csv"
    return int(pd.read_csv(curves)["iteration"].max()) if curves.exists() else 0


def _parts(files: list[Path], *, room: dict[str, int],
           limit: int) -> tuple[list[list[Path]], list[Path]]:  # fmt: skip
    """`files` in parts of at most PART_BYTES, in order, within `room` (parts and bytes left to
    the call's return, updated) and `limit` bytes; with the files that did not fit."""
    parts: list[list[Path]] = []
    left_out: list[Path] = []
    used = 0
    for f in files:
        size = f.stat().st_size
        joins_last = bool(parts) and sum(p.stat().st_size for p in parts[-1]) + size <= PART_BYTES
        if (size > PART_BYTES or used + size > min(limit, room["bytes"])
                or (not joins_last and room["parts"] == 0)):  # fmt: skip
            left_out.append(f)
            continue
        if not joins_last:
            parts.append([])
            room["parts"] -= 1
        parts[-1].append(f)
        used += size
    room["bytes"] -= used
    return parts, left_out


def _tar(path: Path, files: list[Path], root: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=str(f.relative_to(root)))
    return path


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="where the returned files go")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--data", help="CIFAR-10 archive (default: $ABLATE_DATA)")
    p.add_argument("--time-limit", type=float, default=540, metavar="S",
                   help="seconds for the whole command, from its start (default 540)")  # fmt: skip
    p.add_argument("--measure-iterations", type=int, default=2000)
    p.add_argument("--eager-iterations", type=int, default=200)
    p.add_argument("--skip-measure", action="store_true", help="only train (a later session)")
    p.add_argument("--jobs", default="auto", metavar="K|auto",
                   help="runs at once, one CUDA stream each (auto: the best K measured in "
                   "--results/concurrency.csv on this GPU, else 1)")  # fmt: skip
    p.add_argument("--smoke", action="store_true", help="the CPU at the smoke budget (tests)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:  # needed at the end of every run (its MACs): fail now, not after the training
        import fvcore  # noqa: F401
    except ImportError:
        say("fvcore is missing: carry its wheels (../shared/device/wheels.sh .whl), see README")
        return 2
    if not args.smoke and not torch.cuda.is_available():
        say("no CUDA device here: run this on the GPU machine, or with --smoke on a CPU")
        return 2
    start = time.monotonic()
    deadline = start + args.time_limit
    profile, device = (
        ("smoke", torch.device("cpu")) if args.smoke else ("paper", torch.device("cuda"))
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    args.out.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    variants = EXPERIMENTS["degradation"].variants_for(profile)
    configs = [resolve_config(v, profile=profile, device=device.type) for v in variants]
    machine = env.device_name(device)
    say(f"{len(configs)} nets, {profile} profile, {machine}, torch {torch.__version__}")
    jobs, speedup = choose_jobs(args.jobs, args.results / CONCURRENCY_FILE, machine)
    tasks = pipeline.plan(["degradation"], profile=profile, device=device)
    # Seed 0 of every net first: the whole Fig. 6 set once before any second seed.
    todo = sorted((t.config for t in tasks if t.config is not None), key=lambda c: c.seed)
    unfinished = {c.run_id for c in todo if not (args.results / store.RUNS_DIR / c.run_id /
                                                 "summary.json").exists()}  # fmt: skip
    done: list[dict] = []
    try:
        if not args.skip_measure:
            try:  # a failed measurement must not cost the training its turn
                measure_set(configs, data=args.data, device=device, results=args.results,
                            iterations={"auto": args.measure_iterations,
                                        "eager": args.eager_iterations},
                            jobs=jobs, speedup=speedup)  # fmt: skip
            except Exception:
                say("measuring failed (below); training anyway")
                traceback.print_exc()
        margin = 0 if args.smoke else 45  # the last interval, the final test pass, packing
        say(f"training {len(unfinished)} unfinished run(s), {jobs} at once")
        run_set(todo, results=args.results, data=args.data, device=device,
                deadline=deadline - margin, jobs=jobs, done=done)  # fmt: skip
        measure_responses(profile=profile, results=args.results, data=args.data, device=device)
    finally:  # whatever happened, bring back what was made
        (args.out / "runs.json").write_text(json.dumps(done, indent=1))
        trained = [d["run_id"] for d in done if d["run_id"] in unfinished]
        for path in pack(args.results, trained, args.out):
            say(f"{path}: {path.stat().st_size / 2**20:.1f} MB")
        say(f"done in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
