"""`ablate` subcommands that train or run models: train, run / plan / status (the experiments),
subset, evaluate."""

from __future__ import annotations

import argparse
import os
import signal
import time
from dataclasses import fields
from typing import Any

import pandas as pd

from ablations import cluster, experiments, pipeline, recipes
from ablations.cli.options import TRAIN_OVERRIDES, say
from ablations.cli.report_commands import report_run
from ablations.config import TrainConfig, resolve_config
from ablations.data import resolve_source
from ablations.profiles import default_profile
from ablations.registry import AblationsError
from ablations.results import schemas
from ablations.tasks import Context, Task, context, data_for, plan


def _deadline(args: argparse.Namespace) -> float | None:
    """--time-limit (seconds) as a time.monotonic() instant, counted from now."""
    limit = getattr(args, "time_limit", None)
    return None if limit is None else time.monotonic() + limit


def cmd_train(args: argparse.Namespace) -> int:
    from ablations.cluster import distributed
    from ablations.train import run  # imports the data stack only when training

    # Under torchrun: join the group; each rank trains on its own GPU (or the CPU, with gloo).
    device = distributed.setup(args.device) or args.device
    deadline = _deadline(args)
    try:
        config = distributed.for_world(train_config(args), sync_bn=args.sync_bn)
        # SIGTERM (a scheduler, `kill`) stops like Ctrl-C: the last checkpoint stays.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        data = args.data
        if data is None and config.data_id == recipes.DEMO_DATA_ID:  # as `ablate plan` prints
            data = recipes.demo_data(cifar=None, budget=config.profile)
        record = run.train(config, out=args.out, data=data, device=device, deadline=deadline)
    finally:
        distributed.teardown()
    if distributed.launched_world() == 1 or int(os.environ.get("RANK", "0")) == 0:
        print(f"{record.run_dir}: {_train_summary(record.summary)}")
    return 1 if record.status == "diverged" else 0


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The config of `ablate train VARIANT` (a profile) or `ablate train --recipe NAME` (a
    budget), from its parsed arguments."""
    overrides = {k: getattr(args, k) for k in TRAIN_OVERRIDES if hasattr(args, k)}
    if (args.variant is None) == (args.recipe is None):
        raise AblationsError("give a variant or --recipe NAME (`ablate recipes` lists them)")
    if args.recipe is None and (args.profile == "full" or args.arm is not None):
        raise AblationsError("--profile full and --arm apply to recipes; add --recipe NAME")
    dataset = args.dataset if args.recipe is None else recipes.get_recipe(args.recipe).dataset
    if dataset == "imagefolder" and "data_id" not in overrides:
        # By default an ImageFolder run's data_id is the name of the folder it trains on.
        source = resolve_source("imagefolder", args.data)
        if source is None:
            raise AblationsError(
                "ImageFolder data needs --data DIR (offline, build one with `ablate subset`)"
            )
        overrides["data_id"] = source.name
    if args.recipe is None:
        return resolve_config(
            args.variant, profile=args.profile, dataset=dataset, seed=args.seed,
            device=args.device, **overrides,
        )  # fmt: skip
    return recipes.resolve_recipe(
        args.recipe, profile=args.profile, seed=args.seed, arm=args.arm, device=args.device,
        **overrides,
    )  # fmt: skip


def _train_summary(summary: dict[str, Any]) -> str:
    if summary["status"] == "stopped":
        return (
            f"stopped by --time-limit at iteration {summary['iterations']:,} of "
            f"{summary['planned_iterations']:,}, checkpointed; rerun the same command to resume"
        )
    if summary["status"] == "diverged":
        return f"diverged at iteration {summary['diverged_at']} (recorded; lower --lr?)"
    evaluated = (
        f"val {summary['val_error']:.2%}, " if "val_error" in summary
        else f"best-on-test {summary['best_test_error']:.2%} (selects on the test set), "
    )  # fmt: skip
    budget = f" [{summary['profile']} budget]" if summary.get("recipe") else ""
    if "test_error" in summary:
        final = f"final test {summary['test_error']:.2%}"
    else:  # ImageNet: top-1 / top-5 on val, centre crop, 10-crop and multi-scale where run
        protocols = {"centre": "", "10-crop": "ten_crop_", "multi-scale": "multi_scale_"}
        final = "final val top-1 / top-5: " + ", ".join(
            f"{label} {summary[f'{prefix}val_error']:.2%} / "
            f"{summary[f'{prefix}val_top5_error']:.2%}"
            for label, prefix in protocols.items()
            if f"{prefix}val_error" in summary
        )
    return (
        f"complete{budget}: train error {summary['train_error']:.2%}, {evaluated}"
        f"{final}; {summary['train_s']:.0f} s training, "
        f"{summary['images_per_s']:,.0f} images/s"
    )


def _tasks(args: argparse.Namespace) -> tuple[list[Task], Context]:
    args.profile = args.profile or default_profile()  # resolved once, for the report too
    ctx = context(results=args.results, data=args.data, device=args.device,
                  deadline=_deadline(args))  # fmt: skip
    names = experiments.parse(args.experiments, profile=args.profile)
    tasks = plan(names, profile=args.profile, seeds=args.seeds, device=ctx.device)
    say(f"[ablate] profile {args.profile}: {', '.join(names)} on {ctx.device.type}")
    return tasks, ctx


def cmd_run(args: argparse.Namespace) -> int:
    tasks, ctx = _tasks(args)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.executor == "inprocess":
        counts = pipeline.execute(tasks, ctx, jobs=args.jobs)
        say(f"[ablate] {counts['ran']} task(s) run, {counts['done']} already done")
        if counts["left"]:
            say(
                f"[ablate] stopped at the time limit with {counts['left']} task(s) left; the "
                "same command resumes them, then renders the reports"
            )
            return 0
    else:
        if args.time_limit is not None:
            raise AblationsError(
                "--time-limit stops runs trained by this process (--executor inprocess, with "
                "--jobs); Slurm and local jobs have --slurm-time, and resume when run again"
            )
        from ablations.cluster import submit  # the executors and submitit load only when asked

        # The executor options are parsed into the namespace under their fields' names.
        given = {f.name: getattr(args, f.name) for f in fields(cluster.LaunchOptions)}
        options = cluster.LaunchOptions(**given | {"extra": tuple(args.extra)})
        counts = submit.execute_submitted(tasks, ctx, options=options)
        say(
            f"[ablate] {counts['submitted']} run(s) submitted, {counts['busy']} already queued or "
            f"running, {counts['done']} done; {counts['unfinished']} unfinished"
        )
        if counts["unfinished"]:
            say(
                "[ablate] `ablate status` shows each run; `ablate run` again resubmits failed "
                "ones (they resume) and, once all are done, runs the rest and renders reports"
            )
            return 1 if args.executor == "local" else 0
    report_run(args.results, profile=args.profile, reports=args.reports)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ablations.cluster import submit

    tasks, ctx = _tasks(args)
    table = submit.launch_status(tasks, ctx)
    print(table.drop(columns="task").to_string(index=False) if len(table) else "no training runs")
    counts = table["state"].value_counts() if len(table) else pd.Series(dtype=int)
    print("\n" + ", ".join(f"{counts.get(s, 0)} {s}" for s in cluster.STATES))
    return 1 if counts.get("failed", 0) else 0


def cmd_plan(args: argparse.Namespace) -> None:
    tasks, ctx = _tasks(args)
    table = pipeline.status_table(tasks, ctx)
    print(table.drop(columns="command").to_string(index=False))
    missing = [c for c in table["command"] if c]
    if missing:
        print(f"\n# {len(missing)} missing training run(s); on any machine, then `ablate collect`:")
        print("\n".join(missing))
    if not args.measure:
        return
    from ablations.measure import step_speed

    # --measure: time each planned run here, and print the set's projected time.
    train = [t.config for t in tasks if t.kind == "train" and t.config is not None]
    if not train:
        print("\n# no training runs to measure")
        return
    projection = step_speed.measure_plan(
        train, results=ctx.results, data=lambda config: data_for(config, ctx),
        device=ctx.device, iterations=args.iterations, warmup=args.warmup, deadline=ctx.deadline,
        log=say,
    )  # fmt: skip
    to_run = {t.config.run_id for t in tasks if t.config and not pipeline.is_done(t, ctx)}
    print(f"\n# projected on {projection['machine']} (`{ctx.results / schemas.PROJECTION_FILE}`):")
    print("\n".join(step_speed.describe(projection, missing=to_run)))


def cmd_subset(args: argparse.Namespace) -> None:
    from ablations.data import make_subset, parse_classes  # the data stack only when needed

    classes = parse_classes(args.classes)
    out = make_subset(
        args.dataset, data=args.data, out=args.out, classes=classes,
        train_per_class=args.train_per_class, test_per_class=args.test_per_class, seed=args.seed,
    )  # fmt: skip
    print(
        f"{out}: {len(classes)} classes, {args.train_per_class} train + {args.test_per_class} "
        f"test images each, from {args.dataset} (seed {args.seed}); "
        f"use it with --dataset imagefolder --data {out}"
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ablations.weights.evaluate import evaluate_checkpoint

    row = evaluate_checkpoint(
        args.variant, weights=args.weights, dataset=args.dataset, data=args.data,
        results=args.results, device=args.device, batch_size=args.batch_size, limit=args.limit,
        crops=args.crops,
    ).iloc[0]  # fmt: skip
    top5 = "" if row["top5_error"] != row["top5_error"] else f", top-5 {row['top5_error']:.2%}"
    print(
        f"{row['variant']} from {row['weights']} ({row['weights_format']}, {row['preprocessing']}"
        f"{'' if row['crops'] == 'center' else ', ' + row['crops']})"
        f" on {row['dataset']} {row['split']} ({row['images']} images of {row['data_source']}): "
        f"top-1 error {row['top1_error']:.2%}{top5}, loss {row['loss']:.4f} -> "
        f"{args.results / 'evaluations.csv'}"
    )
