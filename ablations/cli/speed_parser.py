"""The options of the subcommands that measure speed (loader-speed, train-speed, runs-at-once,
bench), and the variant selection (GLOB ..., --exclude) that list and complexity take too."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ablations.cli.options import BOTH, NON_NEGATIVE, POSITIVE, comma_separated, one_of
from ablations.cli.speed_commands import (
    cmd_bench,
    cmd_loader_speed,
    cmd_runs_at_once,
    cmd_train_speed,
)
from ablations.config import PRECISIONS, STEPS, STREAMS
from ablations.measure.loader_speed import PATHS as LOADER_PATHS
from ablations.profiles import PROFILES

Subparsers = Any  # argparse's _SubParsersAction, which it does not export


def add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patterns", nargs="*", metavar="GLOB", help="variant names or globs")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="drop matches (repeatable)"
    )


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


def add_speed_commands(sub: Subparsers) -> None:
    p = sub.add_parser("loader-speed", help="images/s of the streaming (ImageNet) loader alone")
    p.add_argument("--data", help="ImageNet root or shard folder (else $ABLATE_DATA_IMAGENET)")
    paths = comma_separated(one_of(LOADER_PATHS), f"paths from {', '.join(LOADER_PATHS)}")
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
    p.set_defaults(func=cmd_loader_speed)

    p = sub.add_parser(
        "train-speed", help="images/s of this suite's training loop vs the conventional one"
    )
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
    p.add_argument("--input-size", type=POSITIVE, default=None, help="default: native 32x32")
    p.add_argument("--compile", action="store_true", help="torch.compile our loop's model")
    p.add_argument(
        "--out", type=Path, default=Path("results/train_speed.csv"),
        help="a CSV file, or a folder for train_speed.csv (default: %(default)s)",
    )  # fmt: skip
    p.set_defaults(func=cmd_train_speed)

    p = sub.add_parser(
        "runs-at-once", help="combined training images/s of K runs at once, by method"
    )
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
    p.set_defaults(func=cmd_runs_at_once)

    p = sub.add_parser("bench", help="images/s, step time and memory of variants")
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
    p.set_defaults(func=cmd_bench)
