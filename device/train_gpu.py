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
   in all; device/packing.py); what did not fit is named in the log.

`--runs recipes` (later windows, after the Fig. 6 set) trains instead every arm of the CIFAR-10
recipes that claim an accuracy, at the tutorial's own budget, one at a time. It first times each
for a few hundred steps and saves its checkpoint: a ResNet-18's (11M weights and their optimizer
state) is over what a later call can carry back, so that run starts only where the whole of it
fits the time left; a ResNet-14's resumes like a Fig. 6 run's.

`--smoke` runs all of it on the CPU at the smoke budget, in seconds (tests/test_device.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from packing import CARRY_BYTES, pack  # device/, beside

from ablations import env, pipeline, recipes, store
from ablations.config import TrainConfig, resolve_config
from ablations.data import load_dataset
from ablations.data.prepare import Data, prepare_data
from ablations.experiments import EXPERIMENTS
from ablations.results import read_table
from ablations.runbook import CONCURRENCY_FILE, PROJECTION_FILE, SPEED, SPEED_FILE
from ablations.runners.records import RunRecord, load_current
from ablations.runners.steps import set_tf32
from ablations.runners.together import on, train_together
from ablations.runners.trainer import Trainer

WARMUP_ITERATIONS = 30  # untimed: cuDNN autotuning, graph capture
FIT_MARGIN = 1.15  # over a run's reckoned time: a run that cannot resume must end in the call


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
    """images/s of the training loop (batches, step, sums) after WARMUP_ITERATIONS, the time of
    one pass over the split the run evaluates on (the second: the first autotunes), and the size
    of the run's checkpoint."""
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
        trainer.save_checkpoint()  # its size: whether a later call can carry it back
        checkpoint_bytes = (trainer.dir / "checkpoint.pt").stat().st_size
    return {
        "variant": config.variant, "requested_step": config.step, "step": kind,
        "step_note": note, "iterations": iterations,
        "batch_size": config.batch_size, "seconds": seconds,
        "ms_per_step": 1e3 * seconds / iterations,
        "images_per_s": iterations * config.batch_size / seconds, "eval_split": config.eval_split,
        "eval_s": eval_s, "checkpoint_bytes": checkpoint_bytes, "precision": config.precision,
        "channels_last": config.channels_last,
        "machine": env.device_name(device), "torch": torch.__version__,
        "git_commit": env.git_commit(),
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }  # fmt: skip


def run_seconds(config: TrainConfig, row: pd.Series | dict, steps_per_epoch: int) -> float:
    """Wall time of `config` at its full budget from a `measure` row: its steps and evaluations
    (every interval's, and the final test pass, counted twice the size)."""
    iterations, _, eval_every = config.schedule(steps_per_epoch)
    evals = -(-iterations // eval_every) + 2
    return float(iterations * row["ms_per_step"] / 1e3 + evals * row["eval_s"])


def project(rows: pd.DataFrame, configs: list[TrainConfig], steps_per_epoch: int) -> dict:
    """Wall time of every config at its full budget from the measured step and eval times; a
    net the time limit left unmeasured is named (`STEP_unmeasured`) and counted in no total."""
    out: dict[str, Any] = {"nets": len(configs)}
    for step, table in rows.groupby("step"):
        measured = [c for c in configs if c.variant in set(table["variant"])]
        per_net = {c.variant: run_seconds(c, table[table["variant"] == c.variant].iloc[0],
                                          steps_per_epoch) for c in measured}  # fmt: skip
        out[f"{step}_seconds"] = per_net
        out[f"{step}_total_minutes"] = sum(per_net.values()) / 60
        if len(measured) < len(configs):
            out[f"{step}_unmeasured"] = [c.variant for c in configs if c not in measured]
    return out


def measure_set(configs: list[TrainConfig], *, data: str | None, device: torch.device,
                results: Path, iterations: dict[str, int], jobs: int, speedup: float,
                deadline: float) -> None:  # fmt: skip
    """Steps 1 and 2 of the module docstring; each row is saved as soon as it is measured, none
    starts past `deadline` (the fast step of every net first, then the eager), and a net this
    machine measured at this commit is not measured again (a call cut short is continued)."""
    # A later call measures only what an earlier one (same machine and commit) left out.
    rows = _measured_here(results / SPEED_FILE, device)
    done = {(r["variant"], r["requested_step"]) for r in rows}
    todo = [(step, c) for step in iterations for c in configs if (c.variant, step) not in done]
    if not todo:
        return
    prepared = prepare_data(configs[0], load_dataset("cifar10", data=data), device)  # one for all
    set_tf32(configs[0].precision)
    for step, config in todo:
        if time.monotonic() >= deadline:
            say(f"measuring stopped at the time limit, before {config.variant} ({step} step)")
            break
        row = measure(TrainConfig(**{**config.to_json(), "step": step}), prepared, device,
                      iterations[step])  # fmt: skip
        say(f"{row['variant']:>10} {row['step']:>5}: {row['images_per_s']:9,.0f} img/s "
            f"{row['ms_per_step']:7.2f} ms/step {row['step_note']}")  # fmt: skip
        rows.append(row)
        append_row(results / SPEED_FILE, row)
    if not rows:
        return
    projection = project(pd.DataFrame(rows), configs, prepared.train.steps_per_epoch)
    projection |= {"runs_at_once": jobs, "combined_speedup": speedup, "machine": rows[0]["machine"],
                   "git_commit": rows[0]["git_commit"]}  # fmt: skip
    (results / PROJECTION_FILE).write_text(json.dumps(projection, indent=1))
    for key, value in projection.items():
        if key.endswith("total_minutes"):
            at_once = f", {value / speedup:.1f} min {jobs} at once" if jobs > 1 else ""
            say(f"projected Fig. 6 set, {key.removesuffix('_total_minutes')} step: "
                f"{value:.1f} min one at a time{at_once}")  # fmt: skip


def _measured_here(path: Path, device: torch.device) -> list[dict]:
    """The rows of `path` this machine measured at this commit."""
    if not path.exists():
        return []
    table = read_table(path, SPEED)
    here = (table["machine"] == env.device_name(device)) & (table["git_commit"] == env.git_commit())
    return table[here].to_dict("records")


def append_row(path: Path, row: dict[str, Any]) -> None:
    """One row onto a CSV, as soon as it is measured (a time limit keeps what came before)."""
    pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)


def run_set(
    configs: list[TrainConfig], *, experiment: str, results: Path, data: str | None,
    device: torch.device, deadline: float, jobs: int, done: list[dict],
) -> None:  # fmt: skip
    """Train the configs in order, `jobs` at once (ablations.runners.together), each stopping
    at its first checkpoint past the deadline, after which none starts (the first always
    does, so every call makes progress); each finished run is recorded in results/ as `ablate
    run` would, a member of `experiment` (the report selects an experiment's runs by it), and
    appended to `done` as it ends (so that an error later keeps it)."""

    def ended(record: RunRecord) -> None:
        keys = ("status", "iterations", "train_s", "test_error", "images_per_s", "step")
        done.append({"run_id": record.config.run_id, **{k: record.summary.get(k) for k in keys}})
        say(f"{record.config.run_id}: {record.status} at iteration "
            f"{record.summary.get('iterations')}")  # fmt: skip
        if record.status != "stopped":
            store.mark_experiments(record.run_dir, [experiment])
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
    best = max((int(k) for k in rates.index), key=lambda k: float(rates[k]))
    return (best, speedup(best)) if speedup(best) >= 1.1 else (1, 1.0)


def claimed_recipes(profile: str, device: torch.device) -> list[TrainConfig]:
    """Issue 11's tutorial claims: every arm of each recipe that claims an accuracy on CIFAR-10
    (the data carried), at the recipe's own budget (smoke: the smoke budget)."""
    budget = recipes.budget_for(profile)
    return [config for recipe in recipes.RECIPES.values()
            if recipe.claimed_accuracy is not None and recipe.dataset == "cifar10"
            for config in recipes.recipe_configs(recipe.name, profile=budget,
                                                 device=device.type)]  # fmt: skip


def within_reach(
    configs: list[TrainConfig], *, data: str | None, device: torch.device, deadline: float,
    iterations: int,
) -> list[TrainConfig]:  # fmt: skip
    """The configs (unfinished) worth starting before `deadline`, from their rates measured here.
    A run whose checkpoint a later call can carry back (CARRY_BYTES) resumes there, so it may
    stop anywhere; one whose checkpoint cannot (a ResNet-18 holds 11M weights and their
    optimizer state) would restart from nothing, so it starts only where its whole run (as
    `run_seconds` reckons it, with a margin) fits the time left after those chosen before it.
    Those go first, one at a time in the reckoning (runs at once only end sooner); the
    resumable ones take what is left."""
    dataset = load_dataset("cifar10", data=data)
    whole: list[tuple[TrainConfig, float]] = []
    resumable: list[tuple[TrainConfig, float]] = []
    for config in configs:
        prepared = prepare_data(config, dataset, device)
        set_tf32(config.precision)
        row = measure(config, prepared, device, iterations)
        seconds = run_seconds(config, row, prepared.train.steps_per_epoch) * FIT_MARGIN
        carried = row["checkpoint_bytes"] <= CARRY_BYTES
        say(f"{config.run_id}: {row['images_per_s']:,.0f} img/s, {seconds:,.0f} s to train, "
            f"checkpoint {row['checkpoint_bytes'] / 2**20:.1f} MB"
            f"{'' if carried else ' (too big to carry back)'}")  # fmt: skip
        (resumable if carried else whole).append((config, seconds))
    chosen: list[TrainConfig] = []
    ahead = 0.0
    for config, seconds in whole:
        left = deadline - time.monotonic() - ahead
        if seconds <= left:
            chosen.append(config)
            ahead += seconds
        else:
            say(
                f"{config.run_id}: not started: it cannot resume in a later call and needs "
                f"{seconds:.0f} s of the {max(left, 0):.0f} s left; give it a call of its own"
            )
    return chosen + [config for config, _ in resumable]


def measure_responses(*, profile: str, results: Path, data: str | None,
                      device: torch.device) -> None:  # fmt: skip
    """Fig. 7's layer responses of the finished runs that have none yet, from their model.pt
    here, before the machine (and any weights that do not fit the return) goes."""
    tasks = pipeline.plan(["responses"], profile=profile, device=device)
    ctx = pipeline.Context(results=results, data=data, device=device)
    pipeline.execute(tasks, ctx, log=say)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="where the returned files go")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--data", help="CIFAR-10 archive (default: $ABLATE_DATA)")
    p.add_argument("--time-limit", type=float, default=540, metavar="S",
                   help="seconds for the whole command, from its start (default 540)")  # fmt: skip
    p.add_argument("--measure-iterations", type=int, default=2000)
    p.add_argument("--eager-iterations", type=int, default=200)
    p.add_argument("--skip-measure", action="store_true", help="no measuring, only training")
    p.add_argument(
        "--runs",
        choices=("degradation", "recipes"),
        default="degradation",
        help="the Fig. 6 set (default), or the CIFAR-10 recipes that claim an "
        "accuracy, at their own budget (issue 11, after the Fig. 6 set)",
    )
    p.add_argument(
        "--fit-iterations",
        type=int,
        default=300,
        help="recipes: steps timed per run to reckon whether it ends in time",
    )
    p.add_argument("--jobs", default="auto", metavar="K|auto",
                   help="runs at once, one CUDA stream each (auto: the best K measured in "
                   "--results/concurrency.csv on this GPU, else 1; with --runs recipes, "
                   "1)")  # fmt: skip
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
    margin = 0 if args.smoke else 45  # the last interval, the final test pass, packing
    deadline = start + args.time_limit - margin
    profile, device = (
        ("smoke", torch.device("cpu")) if args.smoke else ("paper", torch.device("cuda"))
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    args.out.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    machine = env.device_name(device)
    say(f"{args.runs}, {profile} profile, {machine}, torch {torch.__version__}")
    # Runs at once were measured on Fig. 6's nets; the recipes' fit reckons one at a time.
    requested = "1" if args.runs == "recipes" and args.jobs == "auto" else args.jobs
    jobs, speedup = choose_jobs(requested, args.results / CONCURRENCY_FILE, machine)
    todo = (
        claimed_recipes(profile, device) if args.runs == "recipes"
        # Seed 0 of every net first: the whole Fig. 6 set once before any second seed.
        else sorted((t.config for t in pipeline.plan(["degradation"], profile=profile,
                                                     device=device) if t.config is not None),
                    key=lambda c: c.seed)
    )  # fmt: skip
    runs_dir = args.results / store.RUNS_DIR  # a stale finished run counts as unfinished
    todo = [c for c in todo if load_current(runs_dir / c.run_id) is None]
    done: list[dict] = []
    try:
        try:  # a failed measurement must not cost the training its turn
            todo = _measured(todo, args, profile=profile, device=device, deadline=deadline,
                             jobs=jobs, speedup=speedup)  # fmt: skip
        except Exception:
            say("measuring failed (below); training anyway")
            traceback.print_exc()
        say(f"training {len(todo)} unfinished run(s), {jobs} at once")
        run_set(todo, experiment=args.runs, results=args.results, data=args.data,
                device=device, deadline=deadline, jobs=jobs, done=done)  # fmt: skip
        if args.runs == "degradation":
            measure_responses(profile=profile, results=args.results, data=args.data,
                              device=device)  # fmt: skip
    finally:  # whatever happened, bring back what was made
        (args.out / "runs.json").write_text(json.dumps(done, indent=1))
        written, notes = pack(args.results, [d["run_id"] for d in done], args.out)
        for line in [*notes, *(f"{p}: {p.stat().st_size / 2**20:.1f} MB" for p in written)]:
            say(line)
        say(f"done in {time.monotonic() - start:.0f} s")
    return 0


def _measured(todo: list[TrainConfig], args: argparse.Namespace, *, profile: str,
              device: torch.device, deadline: float, jobs: int,
              speedup: float) -> list[TrainConfig]:  # fmt: skip
    """Before the training: the Fig. 6 nets' img/s and the set's projection (degradation,
    unless --skip-measure); the recipe runs that can end in time (recipes)."""
    if args.runs == "recipes":
        return within_reach(todo, data=args.data, device=device, deadline=deadline,
                            iterations=args.fit_iterations)  # fmt: skip
    if not args.skip_measure:
        variants = EXPERIMENTS["degradation"].variants_for(profile)
        measure_set([resolve_config(v, profile=profile, device=device.type) for v in variants],
                    data=args.data, device=device, results=args.results,
                    iterations={"auto": args.measure_iterations,
                                "eager": args.eager_iterations},
                    jobs=jobs, speedup=speedup, deadline=deadline)  # fmt: skip
    return todo


if __name__ == "__main__":
    sys.exit(main())
