"""The `ablate` argument parser: each subcommand's options, and its handler as `func`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from ablations import experiments, golden, launch, recipes
from ablations.cli.options import (
    BOTH,
    NON_NEGATIVE,
    POSITIVE,
    TRAIN_OVERRIDES,
    at_least,
    comma_separated,
    one_of,
)
from ablations.cli.report_commands import (
    DEFAULT_README,
    cmd_collect,
    cmd_complexity,
    cmd_golden,
    cmd_list,
    cmd_merge,
    cmd_recipes,
    cmd_report,
)
from ablations.cli.train_commands import (
    cmd_bench,
    cmd_evaluate,
    cmd_loader_speed,
    cmd_plan,
    cmd_run,
    cmd_status,
    cmd_subset,
    cmd_train,
    cmd_train_speed,
)
from ablations.config import STREAM_DATASETS
from ablations.data import DATASETS
from ablations.data.imagenet_augment import EVAL_CROPS, RECIPES
from ablations.data.loader_speed import PATHS as LOADER_PATHS
from ablations.profiles import PROFILES
from ablations.runners import complexity
from ablations.runners.steps import PRECISIONS, STEPS

# The package docstring's first line (ablations/cli/__init__.py), as `ablate --help` shows it.
DESCRIPTION = "`ablate`: thin subcommands over the library (parse -> call -> print)."


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


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patterns", nargs="*", metavar="GLOB", help="variant names or globs")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="drop matches (repeatable)"
    )


def _add_launch_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executors (training runs through submitit; see README: On a cluster)")
    g.add_argument(
        "--executor", choices=list(launch.EXECUTORS), default="inprocess",
        help="inprocess (default: here, --jobs runs at once, one CUDA stream each), local "
        "(N submitit processes here, one GPU each while there are enough), slurm (a job array)",
    )  # fmt: skip
    g.add_argument(
        "--jobs", type=POSITIVE, default=1,
        help="runs at once (inprocess: in this process, one CUDA stream each, for small nets "
        "on one GPU; local: processes; Slurm: array parallelism)",
    )  # fmt: skip
    g.add_argument("--slurm-partition", metavar="P")
    g.add_argument(
        "--slurm-time",
        type=POSITIVE,
        default=240,
        metavar="MIN",
        help="minutes per job; longer runs are requeued and resume (default 240)",
    )
    g.add_argument(
        "--gpus-per-task",
        type=POSITIVE,
        default=1,
        metavar="G",
        help="Slurm: G > 1 trains each run across G GPUs (DDP, synchronised BN)",
    )
    g.add_argument("--slurm-nodes", type=POSITIVE, default=1, metavar="N", help="nodes per run")
    g.add_argument("--cpus-per-task", type=POSITIVE, metavar="C",
                   help="Slurm: CPUs per task; with --gpus-per-task G a task is one rank (one "
                   "GPU), so a node gets G x C")  # fmt: skip
    g.add_argument("--slurm-account", metavar="A")
    g.add_argument(
        "--max-requeues", type=NON_NEGATIVE, default=5, help="timeouts/preemptions per run"
    )
    g.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any further sbatch option, e.g. qos=high (repeatable)")  # fmt: skip


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line that point at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ablate", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

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
    p.add_argument("--recipe", default="imagenet-torchvision", choices=sorted(RECIPES))
    p.add_argument("--out", type=Path, help="CSV file to write (else stdout)")
    p.set_defaults(func=cmd_loader_speed)
    p = sub.add_parser("list", help="registered variants with params and MACs")
    _add_selection(p)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument(
        "--results", type=Path, default=Path("results") / complexity.COMPLEXITY_FILE,
        help="reuse up-to-date counts from this table when it exists (default: %(default)s)",
    )  # fmt: skip
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("complexity", help="measure params and MACs into a results table")
    _add_selection(p)
    p.add_argument("--out", type=Path, default=Path("results") / complexity.COMPLEXITY_FILE)
    p.add_argument("--rerun", action="store_true", help="recompute rows that are up to date")
    p.set_defaults(func=cmd_complexity)

    p = sub.add_parser("golden", help="check (or --write) the golden complexity file")
    p.add_argument("--write", action="store_true", help="regenerate the file from the registry")
    p.add_argument("--path", type=Path, default=golden.DEFAULT_PATH)
    p.set_defaults(func=cmd_golden)

    p = sub.add_parser("train", help="train one variant (or recipe) and record its curves")
    p.add_argument("variant", nargs="?", help="a registered variant (or give --recipe)")
    p.add_argument("--recipe", help="a tutorial recipe instead of a variant (`ablate recipes`)")
    p.add_argument("--arm", help="the recipe's arm (default: its first)")
    p.add_argument(
        "--dataset", choices=[*DATASETS, *STREAM_DATASETS],
        help="default: the profile's (imagenet for the imagenet-* profiles), else cifar10",
    )  # fmt: skip
    p.add_argument(
        "--data", help="dataset path (default: $ABLATE_DATA, else download; imagenet: "
        "$ABLATE_DATA_IMAGENET, never downloaded)",
    )  # fmt: skip
    p.add_argument(
        "--profile", choices=[*PROFILES, *(b for b in recipes.BUDGETS if b not in PROFILES)],
        help="budget (default: paper on a GPU, cpu otherwise; recipes: full, cpu, smoke)",
    )  # fmt: skip
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.add_argument("--out", type=Path, default=Path("results/runs"), help="runs folder")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--sync-bn",
        action="store_true",
        help="under torchrun: BN over the global batch (the one-process run, same run key); "
        "without it each rank's BN sees batch/G images and the key records bn_batch",
    )
    p.add_argument(
        "--stop-after", type=at_least(0, float), metavar="MIN",
        help="stop at the first checkpoint after MIN minutes and exit 0; rerun to resume",
    )  # fmt: skip
    overrides = p.add_argument_group("overrides of the profile")
    for name, spec in TRAIN_OVERRIDES.items():
        overrides.add_argument(
            f"--{name.replace('_', '-')}", dest=name, default=argparse.SUPPRESS, **spec
        )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("recipes", help="the tutorial recipes: variant, data, budget, claim")
    p.add_argument("-v", "--verbose", action="store_true", help="with each tutorial's setup")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("subset", help="write a class subset of a dataset as an ImageFolder tree")
    p.add_argument("--dataset", default="cifar10", choices=list(DATASETS))
    p.add_argument("--data", help="dataset path (default: $ABLATE_DATA, else download)")
    p.add_argument("--classes", required=True, help="comma-separated class names")
    p.add_argument("--train-per-class", type=POSITIVE, default=100)
    p.add_argument("--test-per-class", type=POSITIVE, default=50)
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.add_argument("--out", type=Path, required=True, help="a folder that does not exist yet")
    p.set_defaults(func=cmd_subset)

    p = sub.add_parser(
        "train-speed", help="images/s of this suite's training loop vs the conventional one"
    )
    _add_selection(p)
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

    p = sub.add_parser("bench", help="images/s, step time and memory of variants")
    _add_selection(p)
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

    p = sub.add_parser(
        "evaluate", help="evaluate a checkpoint (ours or published) into results/evaluations.csv"
    )
    p.add_argument("variant", help="our architecture to load the weights into, e.g. resnet20")
    p.add_argument(
        "--weights", required=True,
        help="run:<run_id>, torchvision:<IMAGENET1K_V1|file> (from $TORCH_HOME/hub/checkpoints, "
        "never downloaded) or an akamaster .th file",
    )  # fmt: skip
    p.add_argument(
        "--dataset", choices=["cifar10", "imagenet", "fashion-mnist"],
        help="default: the run's, cifar10 for akamaster, imagenet for torchvision",
    )  # fmt: skip
    p.add_argument(
        "--data",
        help="dataset path (default: $ABLATE_DATA...; imagenet: an ImageNet layout, its val "
        "split streamed, or $ABLATE_DATA_IMAGENET)",
    )
    p.add_argument("--limit", type=POSITIVE, help="a fixed random subset of N test images")
    p.add_argument(
        "--crops", default="center", choices=list(EVAL_CROPS),
        help="ImageNet test protocol: the centre crop (default; torchvision's published "
        "numbers), 10 crops (the paper's Tables 2-3) or the whole image at 5 scales (Table 4)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=POSITIVE, default=200)
    p.add_argument("--device", default="auto")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="render reports/ (and README.md's figures) from results/")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--out", type=Path, default=Path("reports"))
    p.add_argument(
        "--readme", type=Path, default=DEFAULT_README,
        help="a README whose <!-- ablate:NAME --> blocks are regenerated (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--check-readme", action="store_true",
        help="only check that the README's blocks match results/ (exit 2 if not)",
    )  # fmt: skip
    p.set_defaults(func=cmd_report)

    for name, func, text in (
        ("run", cmd_run, "run the missing tasks of experiments, then render reports/"),
        ("plan", cmd_plan, "list the tasks of experiments, done or missing (as commands)"),
        ("status", cmd_status, "each training run: missing, pending, running, done, failed"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--profile", choices=list(PROFILES), help="default: paper on a GPU, cpu otherwise"
        )
        p.add_argument(
            "--experiments",
            help=f"comma-separated, from: {', '.join(experiments.EXPERIMENTS)} "
            "(default: the profile's own list)",
        )
        p.add_argument("--seeds", type=POSITIVE, help="runs per config (default: the profile's)")
        p.add_argument(
            "--data", help="the profile's dataset: CIFAR-10 (default: $ABLATE_DATA, else "
            "download), or ImageNet for imagenet-* profiles ($ABLATE_DATA_IMAGENET)",
        )  # fmt: skip
        p.add_argument("--device", default="auto")
        p.add_argument("--results", type=Path, default=Path("results"))
        p.add_argument("--reports", type=Path, default=Path("reports"))
        if name == "run":
            _add_launch_options(p)
        p.set_defaults(func=func)

    p = sub.add_parser("collect", help="rebuild runs.csv and curves.csv from results/runs/")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.set_defaults(func=cmd_collect)
    p = sub.add_parser("merge", help="merge results made elsewhere (a runbook's tarballs, a "
                       "results folder) into --results without losing a row")  # fmt: skip
    p.add_argument("sources", nargs="+", type=Path, metavar="SOURCE",
                   help="a results folder, a tarball of results/... or one CSV table, merged "
                   "in the order given")  # fmt: skip
    p.add_argument("--results", type=Path, default=Path("results"))
    p.set_defaults(func=cmd_merge)
    return parser
