"""`ablate` subcommands that measure speed: train-speed, runs-at-once, loader-speed, bench."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ablations.cli.options import BOTH
from ablations.cli.report_commands import select
from ablations.config import resolve_config
from ablations.profiles import default_profile
from ablations.results import schemas

SPEED_DEFAULT = ("resnet20", "resnet56", "resnet110")


def cmd_train_speed(args: argparse.Namespace) -> None:
    from ablations.data import load_dataset
    from ablations.measure import train_speed

    names = select(args.patterns or list(SPEED_DEFAULT), args.exclude)
    overrides: dict[str, Any] = {"input_size": args.input_size, "batch_size": args.batch_size}
    if args.compile:
        overrides["compile"] = True
    configs = [resolve_config(n, profile=args.profile, device=args.device, **overrides)
               for n in names]  # fmt: skip
    out = args.out / schemas.TRAIN_SPEED_FILE if args.out.is_dir() else args.out
    dataset = load_dataset("cifar10", data=args.data)
    table = train_speed.compare(
        configs, dataset, device=args.device, iterations=args.iterations, warmup=args.warmup,
        workers=args.workers, out=out,
    )  # fmt: skip
    shown = table[["variant", "loop", "precision", "channels_last", "compile", "workers",
                   "tf32_cudnn", "images_per_s", "speedup"]]  # fmt: skip
    print(f"# {table['machine'].iloc[0]}, batch {args.batch_size}, {args.iterations} timed steps")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    print(f"appended to {out}")


def cmd_loader_speed(args: argparse.Namespace) -> None:
    from ablations.measure import loader_speed

    rows = loader_speed.loader_speed(
        args.data, paths=args.paths, workers=args.workers, batch_sizes=args.batch,
        batches=args.batches, warmup=args.warmup, recipe=args.recipe,
    )  # fmt: skip
    if args.out is None:
        loader_speed.write_csv(rows, sys.stdout)
        return
    with open(args.out, "w", newline="") as handle:
        loader_speed.write_csv(rows, handle)
    print(f"wrote {args.out}", file=sys.stderr)


def cmd_bench(args: argparse.Namespace) -> None:
    from ablations.measure import throughput
    from ablations.report import throughput as throughput_report

    names = select(args.patterns, args.exclude)
    settings = throughput.grid(
        names, device=args.device,
        modes=throughput.MODES if args.mode == "both" else (args.mode,),
        precisions=args.precision, channels_last=BOTH.get(args.channels_last),
        compile=BOTH[args.compile], batch_sizes=args.batch_size, input_size=args.input_size,
        warmup=args.warmup, repeats=args.repeats, steps=args.steps, runs=args.runs,
        step=args.step,
    )  # fmt: skip
    name = schemas.REFERENCE_FILE if args.reference else schemas.THROUGHPUT_FILE
    out = throughput.output_path(args.out, name) if args.out else Path("results") / name
    table = throughput.run(settings, out=out, reference=args.reference)
    print(throughput.format_table(table))
    if args.runs > 1:
        spreads = throughput_report.spread(table)
        for reference, part in spreads.groupby("reference"):
            print(f"run-to-run spread of images/s over {args.runs} runs ({reference}): median "
                  f"{part['spread'].median():.1%}, worst {part['spread'].max():.1%}")  # fmt: skip
    print(f"appended to {out}")


def cmd_runs_at_once(args: argparse.Namespace) -> None:
    from ablations import pipeline
    from ablations.measure import runs_at_once

    [variant] = select([args.variant], [])
    ctx = pipeline.context(results=args.results, data=args.data, device=args.device)
    config = resolve_config(variant, profile=args.profile or default_profile(), device=ctx.device)
    counts = {"streams": args.streams, "processes": args.processes}
    rows = runs_at_once.measure(
        config, results=args.results, data=args.data, device=ctx.device,
        counts={m: k for m, k in counts.items() if k}, iterations=args.iterations,
        warmup=args.warmup, log=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    print(f"{len(rows)} row(s) appended to {args.results / schemas.RUNS_AT_ONCE_FILE}")
