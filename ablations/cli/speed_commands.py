"""`ablate` subcommands that measure speed: loader-speed, train-speed, runs-at-once, bench; their
options and handlers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ablations.cli.options import (
    NON_NEGATIVE,
    POSITIVE,
    RESULTS,
    add_selection,
    comma_separated,
    say,
)
from ablations.cli.report_commands import select
from ablations.config import PRECISIONS, STEPS, STREAMS, resolve_config
from ablations.measure.loader_speed import PATHS as LOADER_PATHS
from ablations.profiles import PROFILES, default_profile
from ablations.results import schemas

SPEED_DEFAULT = ("resnet20", "resnet56", "resnet110")
BOTH = {"off": (False,), "on": (True,), "both": (False, True)}  # bench's off / on / both
# The parser's `command(name, handler, help)`: a subcommand's parser, its handler set.
Command = Callable[[str, Callable[[argparse.Namespace], Any], str], argparse.ArgumentParser]


def _batch_size(text: str) -> int | str:
    if text == "max":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a batch size or 'max', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"batch size must be >= 1, got {value}")
    return value


def add_speed_commands(command: Command) -> None:
    what = "images/s of the streaming (ImageNet) loader alone"
    p = command("loader-speed", cmd_loader_speed, what)
    p.add_argument("--data", help="ImageNet root or shard folder (else $ABLATE_DATA_IMAGENET)")
    paths = comma_separated(str, f"paths from {', '.join(LOADER_PATHS)}", choices=LOADER_PATHS)
    every = f"comma list (default: {','.join(LOADER_PATHS)})"
    p.add_argument("--paths", type=paths, default=tuple(LOADER_PATHS), help=every)
    workers = comma_separated(NON_NEGATIVE, "worker counts")
    p.add_argument("--workers", type=workers, help="comma list (default: the available cores)")
    batches = comma_separated(POSITIVE, "batch sizes")
    p.add_argument("--batch", type=batches, default=(256,), help="comma list (default: 256)")
    rounds = "rounded up to whole rounds of the workers"
    p.add_argument("--batches", type=POSITIVE, default=50, help=f"timed batches, {rounds} (3+)")
    p.add_argument("--warmup", type=NON_NEGATIVE, default=5, help=f"untimed batches, {rounds}")
    p.add_argument("--recipe", default="imagenet-torchvision", choices=sorted(STREAMS))
    p.add_argument("--out", type=Path, help="CSV file to write (else stdout)")

    what = "images/s of this suite's training loop vs the conventional one"
    p = command("train-speed", cmd_train_speed, what)
    add_selection(p)
    p.add_argument("--profile", choices=list(PROFILES), help="precision and memory format")
    p.add_argument("--data", help="CIFAR-10 path (default: $ABLATE_DATA, else download)")
    p.add_argument("--device", default="auto")
    p.add_argument("--iterations", type=POSITIVE, default=50, help="timed steps per loop")
    p.add_argument("--warmup", type=NON_NEGATIVE, default=10, help="untimed steps first")
    conventional = "conventional DataLoader workers (default: one per core)"
    p.add_argument("--workers", type=NON_NEGATIVE, help=conventional)
    p.add_argument("--batch-size", type=POSITIVE, default=128)
    p.add_argument("--input-size", type=POSITIVE, help="default: native 32x32")
    p.add_argument("--compile", action="store_true", help="torch.compile our loop's model")
    out = "a CSV file, or a folder for train_speed.csv (default: %(default)s)"
    p.add_argument("--out", type=Path, default=RESULTS / schemas.TRAIN_SPEED_FILE, help=out)

    what = "combined training images/s of K runs at once, by method"
    p = command("runs-at-once", cmd_runs_at_once, what)
    p.add_argument("variant", nargs="?", default="resnet56", help="default: %(default)s")
    p.add_argument("--profile", choices=list(PROFILES), help="default: paper on a GPU, else cpu")
    ks = comma_separated(POSITIVE, "numbers of runs")
    streams = "runs at once in this process, one CUDA stream each, as `ablate run --jobs K`"
    p.add_argument("--streams", type=ks, default=(1, 2, 4, 8), metavar="K,...", help=streams)
    processes = "runs at once as processes, as `--executor local --jobs K` ('' for none)"
    p.add_argument("--processes", type=ks, default=(2, 4), metavar="K,...", help=processes)
    p.add_argument("--iterations", type=POSITIVE, default=300, help="timed steps per run")
    p.add_argument("--warmup", type=NON_NEGATIVE, default=30, help="untimed steps first")
    p.add_argument("--data", help="CIFAR-10 path (default: $ABLATE_DATA, else download)")
    p.add_argument("--device", default="auto")
    rows = "the rows go to runs_at_once.csv here (default: %(default)s)"
    p.add_argument("--results", type=Path, default=RESULTS, help=rows)

    p = command("bench", cmd_bench, "images/s, step time and memory of variants")
    add_selection(p)
    p.add_argument("--mode", choices=["infer", "train", "both"], default="both")
    precision = "one or more (default: bf16 on a GPU, fp32 on a CPU)"
    p.add_argument("--precision", nargs="+", choices=list(PRECISIONS), help=precision)
    layout = "memory format: off (NCHW), on, or both (default: both on a GPU, off on a CPU)"
    p.add_argument("--channels-last", nargs="?", const="on", choices=list(BOTH), help=layout)
    compiled = "torch.compile; each compiled setting is measured in a process of its own"
    p.add_argument(
        "--compile", nargs="?", const="on", default="off", choices=list(BOTH), help=compiled
    )
    step = "the training step: auto (as `ablate train` takes it), eager, or graph (GPU)"
    p.add_argument("--step", choices=list(STEPS), default="auto", help=step)
    sizes = "one or more, or 'max' (GPU); default CIFAR / ImageNet: GPU 128 / 256, CPU 32 / 8"
    p.add_argument("--batch-size", nargs="+", type=_batch_size, help=sizes)
    p.add_argument("--input-size", type=POSITIVE, help="default: each variant's own")
    p.add_argument("--device", default="auto")
    p.add_argument("--warmup", type=POSITIVE, help="untimed steps (default: GPU 10, CPU 5 / 2)")
    repeats = "timed repeats (default: CIFAR / ImageNet: GPU 7 / 5, CPU 7 / 5)"
    p.add_argument("--repeats", type=POSITIVE, help=repeats)
    steps = "steps per repeat (default: CIFAR / ImageNet: GPU 20 / 10, CPU 10 / 3)"
    p.add_argument("--steps", type=POSITIVE, help=steps)
    p.add_argument("--runs", type=POSITIVE, default=1, help="repeat the whole measurement N times")
    timm = "also measure each setting with timm's benchmark.py, into throughput_timm.csv"
    p.add_argument("--reference", choices=["timm"], help=timm)
    out = "a CSV file, or a folder to hold throughput.csv (default: results/)"
    p.add_argument("--out", type=Path, help=out)


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
    from ablations.measure.loader_speed import loader_speed

    rows = loader_speed(
        args.data, paths=args.paths, workers=args.workers, batch_sizes=args.batch,
        batches=args.batches, warmup=args.warmup, recipe=args.recipe,
    )  # fmt: skip
    pd.DataFrame(rows).to_csv(args.out or sys.stdout, index=False)
    if args.out is not None:
        say(f"wrote {args.out}")


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
    out = throughput.output_path(args.out, name) if args.out else RESULTS / name
    table = throughput.run(settings, out=out, reference=args.reference)
    print(throughput.format_table(table))
    if args.runs > 1:
        spreads = throughput_report.spread(table)
        for reference, part in spreads.groupby("reference"):
            print(f"run-to-run spread of images/s over {args.runs} runs ({reference}): median "
                  f"{part['spread'].median():.1%}, worst {part['spread'].max():.1%}")  # fmt: skip
    print(f"appended to {out}")


def cmd_runs_at_once(args: argparse.Namespace) -> None:
    from ablations.measure import runs_at_once
    from ablations.tasks import context

    [variant] = select([args.variant], [])
    ctx = context(results=args.results, data=args.data, device=args.device)
    config = resolve_config(variant, profile=args.profile or default_profile(), device=ctx.device)
    counts = {"streams": args.streams, "processes": args.processes}
    rows = runs_at_once.measure(
        config, results=args.results, data=args.data, device=ctx.device,
        counts={m: k for m, k in counts.items() if k}, iterations=args.iterations,
        warmup=args.warmup, log=say,
    )  # fmt: skip
    print(f"{len(rows)} row(s) appended to {args.results / schemas.RUNS_AT_ONCE_FILE}")
