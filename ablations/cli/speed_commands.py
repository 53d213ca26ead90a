"""`ablate` subcommands that measure speed: loader-speed, train-speed, runs-at-once, bench; their
options and handlers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablations.cli.options import NON_NEGATIVE, POSITIVE, add_selection, comma_separated, say
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
    p.add_argument("--paths", type=paths, default=tuple(LOADER_PATHS),
                   help=f"comma list (default: {','.join(LOADER_PATHS)})")  # fmt: skip
    p.add_argument("--workers", type=comma_separated(NON_NEGATIVE, "worker counts"),
                   help="comma list (default: the available cores)")  # fmt: skip
    p.add_argument("--batch", type=comma_separated(POSITIVE, "batch sizes"), default=(256,),
                   help="comma list of batch sizes (default: 256)")  # fmt: skip
    p.add_argument("--batches", type=POSITIVE, default=50, help="timed batches per setting")
    p.add_argument("--warmup", type=NON_NEGATIVE, default=5, help="untimed batches first")
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
    p.add_argument(
        "--workers",
        type=NON_NEGATIVE,
        help="conventional DataLoader workers (default: one per core)",
    )
    p.add_argument("--batch-size", type=POSITIVE, default=128)
    p.add_argument("--input-size", type=POSITIVE, help="default: native 32x32")
    p.add_argument("--compile", action="store_true", help="torch.compile our loop's model")
    p.add_argument(
        "--out", type=Path, default=Path("results/train_speed.csv"),
        help="a CSV file, or a folder for train_speed.csv (default: %(default)s)",
    )  # fmt: skip

    what = "combined training images/s of K runs at once, by method"
    p = command("runs-at-once", cmd_runs_at_once, what)
    p.add_argument("variant", nargs="?", default="resnet56", help="default: %(default)s")
    p.add_argument("--profile", choices=list(PROFILES), help="default: paper on a GPU, else cpu")
    ks = comma_separated(POSITIVE, "numbers of runs")
    p.add_argument("--streams", type=ks, default=(1, 2, 4, 8), metavar="K,...",
                   help="runs at once in this process, one CUDA stream each, as `ablate run "
                   "--jobs K` trains them (default: 1,2,4,8)")  # fmt: skip
    p.add_argument("--processes", type=ks, default=(2, 4), metavar="K,...",
                   help="runs at once as processes, as `--executor local --jobs K` trains "
                   "them (default: 2,4; an empty string for none)")  # fmt: skip
    p.add_argument("--iterations", type=POSITIVE, default=300, help="timed steps per run")
    p.add_argument("--warmup", type=NON_NEGATIVE, default=30, help="untimed steps first")
    p.add_argument("--data", help="CIFAR-10 path (default: $ABLATE_DATA, else download)")
    p.add_argument("--device", default="auto")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="the rows go to runs_at_once.csv here (default: %(default)s)")  # fmt: skip

    p = command("bench", cmd_bench, "images/s, step time and memory of variants")
    add_selection(p)
    p.add_argument("--mode", choices=["infer", "train", "both"], default="both")
    p.add_argument(
        "--precision", nargs="+", choices=list(PRECISIONS),
        help="one or more (default: bf16 on a GPU, fp32 on a CPU)",
    )  # fmt: skip
    p.add_argument(
        "--channels-last", nargs="?", const="on", choices=list(BOTH),
        help="memory format: off (NCHW), on, or both (default: both on a GPU, off on a CPU)",
    )  # fmt: skip
    p.add_argument(
        "--compile", nargs="?", const="on", default="off", choices=list(BOTH),
        help="torch.compile; each compiled setting is measured in a process of its own",
    )  # fmt: skip
    p.add_argument(
        "--step", choices=list(STEPS), default="auto",
        help="the training step: auto (as `ablate train` takes it: one CUDA graph on a GPU, "
        "eager on a CPU, with fp16 or compile), eager, or graph (GPU)",
    )  # fmt: skip
    p.add_argument(
        "--batch-size", nargs="+", type=_batch_size,
        help="one or more sizes, or 'max' (GPU: the largest that fits); "
        "default 128 CIFAR / 256 ImageNet on a GPU, 32 / 8 on a CPU",
    )  # fmt: skip
    p.add_argument("--input-size", type=POSITIVE, help="default: each variant's own")
    p.add_argument("--device", default="auto")
    p.add_argument("--warmup", type=POSITIVE, help="untimed steps (default: GPU 10, CPU 5 / 2)")
    p.add_argument("--repeats", type=POSITIVE, help="timed repeats (default: CIFAR / ImageNet: "
                   "GPU 7 / 5, CPU 7 / 5)")  # fmt: skip
    p.add_argument("--steps", type=POSITIVE, help="steps per repeat (default: CIFAR / ImageNet: "
                   "GPU 20 / 10, CPU 10 / 3)")  # fmt: skip
    p.add_argument("--runs", type=POSITIVE, default=1, help="repeat the whole measurement N times")
    p.add_argument(
        "--reference", choices=["timm"],
        help="also measure each setting with timm's benchmark.py (needs timm installed); "
        "rows of both go to results/throughput_timm.csv",
    )  # fmt: skip
    p.add_argument(
        "--out", type=Path,
        help="a CSV file, or a folder to hold throughput.csv (default: results/)",
    )  # fmt: skip


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
        warmup=args.warmup, log=say,
    )  # fmt: skip
    print(f"{len(rows)} row(s) appended to {args.results / schemas.RUNS_AT_ONCE_FILE}")
