"""The `ablate` argument parser: each subcommand's options, and its handler as `func`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from ablations import cluster, experiments, recipes
from ablations.cli import report_commands as report
from ablations.cli import train_commands as train
from ablations.cli.options import (
    NON_NEGATIVE,
    POSITIVE,
    TRAIN_OVERRIDES,
    add_selection,
    add_time_limit,
    at_least,
)
from ablations.cli.speed_commands import add_speed_commands
from ablations.config import EVAL_CROPS, STREAM_DATASETS
from ablations.data import DATASETS
from ablations.measure import golden
from ablations.profiles import PROFILES
from ablations.results import schemas

# The package docstring's first line (ablations/cli/__init__.py), as `ablate --help` shows it.
DESCRIPTION = "`ablate`: thin subcommands over the library (parse -> call -> print)."
RESULTS = Path("results")


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line that point at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ablate", description=DESCRIPTION)
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="PATH.py",
        help="a Python file that registers variants, experiments or profiles, loaded first "
        "(repeatable; also ABLATE_PLUGINS and the entry points of the group ablations.plugins)",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Callable[[argparse.Namespace], Any], text: str) -> Parser:
        p: Parser = sub.add_parser(name, help=text)
        p.set_defaults(func=func)
        return p

    p = command("list", report.cmd_list, "registered variants with params and MACs")
    add_selection(p)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument(
        "--results", type=Path, default=RESULTS / schemas.COMPLEXITY_FILE,
        help="reuse up-to-date counts from this table when it exists (default: %(default)s)",
    )  # fmt: skip

    p = command("complexity", report.cmd_complexity, "measure params and MACs into a results table")
    add_selection(p)
    p.add_argument("--out", type=Path, default=RESULTS / schemas.COMPLEXITY_FILE)
    p.add_argument("--rerun", action="store_true", help="recompute rows that are up to date")

    p = command("golden", report.cmd_golden, "check (or --write) the golden complexity file")
    p.add_argument("--write", action="store_true", help="bring the complexity table up to "
                   "date (counting only what changed), then write the file from it")  # fmt: skip
    p.add_argument("--path", type=Path, default=golden.DEFAULT_PATH)
    p.add_argument(
        "--results", type=Path, default=golden.DEFAULT_RESULTS,
        help=f"the results folder whose {schemas.COMPLEXITY_FILE} the golden file is the "
        "projection of (default: %(default)s)",
    )  # fmt: skip

    p = command("train", train.cmd_train, "train one variant (or recipe) and record its curves")
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
    p.add_argument("--out", type=Path, default=RESULTS / "runs", help="runs folder")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--sync-bn",
        action="store_true",
        help="under torchrun: BN over the global batch (the one-process run, same run key); "
        "without it each rank's BN sees batch/G images and the key records bn_batch",
    )
    add_time_limit(p, "stop at the first checkpoint past it")
    overrides = p.add_argument_group("overrides of the profile")
    for name, spec in TRAIN_OVERRIDES.items():
        overrides.add_argument(
            f"--{name.replace('_', '-')}", dest=name, default=argparse.SUPPRESS, **spec
        )

    p = command("recipes", report.cmd_recipes, "the tutorial recipes: variant, data, budget, claim")
    p.add_argument("-v", "--verbose", action="store_true", help="with each tutorial's setup")

    what = "write a class subset of a dataset as an ImageFolder tree"
    p = command("subset", train.cmd_subset, what)
    p.add_argument("--dataset", default="cifar10", choices=list(DATASETS))
    p.add_argument("--data", help="dataset path (default: $ABLATE_DATA, else download)")
    p.add_argument("--classes", required=True, help="comma-separated class names")
    p.add_argument("--train-per-class", type=POSITIVE, default=100)
    p.add_argument("--test-per-class", type=POSITIVE, default=50)
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.add_argument("--out", type=Path, required=True, help="a folder that does not exist yet")
    add_speed_commands(command)

    what = "evaluate a checkpoint (ours or published) into results/evaluations.csv"
    p = command("evaluate", train.cmd_evaluate, what)
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
    p.add_argument("--results", type=Path, default=RESULTS)

    what = "render reports/ (and README and docs figures) from results/"
    p = command("report", report.cmd_report, what)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--out", type=Path, default=report.DEFAULT_REPORTS)
    p.add_argument(
        "--readme", type=Path, default=report.DEFAULT_README,
        help="the README whose <!-- ablate:NAME --> blocks are regenerated, with those of the "
        "docs/*.md pages beside it (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--check-readme", action="store_true",
        help="only check that the README's and docs pages' blocks match results/ (exit 2 if not)",
    )  # fmt: skip

    for name, func, text in (
        ("run", train.cmd_run, "run the missing tasks of experiments, then render reports/"),
        ("plan", train.cmd_plan, "list the tasks of experiments, done or missing (as commands)"),
        ("status", train.cmd_status, "each training run: missing, pending, running, done, failed"),
    ):
        p = command(name, func, text)
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
        p.add_argument("--results", type=Path, default=RESULTS)
        p.add_argument("--reports", type=Path, metavar="DIR", help="where the report goes "
                       "(default: reports/ and the pages' blocks for the committed profiles "
                       "on results/, RESULTS/report/ for any other run)")  # fmt: skip
        if name == "run":
            add_time_limit(p, "each run stops at its first checkpoint past it, none starts after")
            _add_launch_options(p)
        if name == "plan":
            g = p.add_argument_group("measuring (the rows go to step_speed.csv in --results)")
            g.add_argument("--measure", action="store_true",
                           help="time a few steps of each planned run here, and project the "
                           "set's time (projection.json)")  # fmt: skip
            g.add_argument("--iterations", type=POSITIVE, default=200, help="timed steps")
            g.add_argument("--warmup", type=NON_NEGATIVE, default=30, help="untimed steps first")
            add_time_limit(g, "no measurement starts past it")
        p.set_defaults(func=func)

    p = command("collect", report.cmd_collect, "rebuild runs.csv and curves.csv from results/runs/")
    p.add_argument("--results", type=Path, default=RESULTS)
    what = (
        "merge results made elsewhere (tarballs written by `ablate pack`, a results folder, or "
        "one CSV table) into --results without losing a row"
    )
    p = command("merge", report.cmd_merge, what)
    p.add_argument("sources", nargs="+", type=Path, metavar="SOURCE",
                   help="a results folder, a tarball of results/... or one CSV table, merged "
                   "in the order given")  # fmt: skip
    p.add_argument("--results", type=Path, default=RESULTS)
    what = (
        "tarballs of --results to take elsewhere: tables and run records, then checkpoints and "
        "weights within --max-mb"
    )
    p = command("pack", report.cmd_pack, what)
    p.add_argument("out", type=Path, metavar="OUT", help="the folder the tarballs go to")
    p.add_argument("--results", type=Path, default=RESULTS)
    mb = at_least(0, float)
    p.add_argument("--max-mb", type=mb, metavar="N",
                   help="all tarballs together (default: no limit; tables always go)")  # fmt: skip
    p.add_argument("--part-mb", type=mb, metavar="N",
                   help="each checkpoints-N / weights-N tarball (default: no limit)")  # fmt: skip
    return parser


def _add_launch_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executors (training runs through submitit; see docs/clusters.md)")
    g.add_argument(
        "--executor", choices=list(cluster.EXECUTORS), default="inprocess",
        help="inprocess (default: here, --jobs runs at once, one CUDA stream each), local "
        "(N submitit processes here, one GPU each while there are enough), slurm (a job array)",
    )  # fmt: skip
    g.add_argument(
        "--jobs", type=POSITIVE, default=1,
        help="runs at once (inprocess: in this process, one CUDA stream each, for small nets "
        "on one GPU; local: processes; Slurm: array parallelism)",
    )  # fmt: skip
    g.add_argument("--slurm-partition", dest="partition", metavar="P")
    g.add_argument(
        "--slurm-time",
        dest="time_min",
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
    g.add_argument(
        "--slurm-nodes", dest="nodes", type=POSITIVE, default=1, metavar="N", help="nodes per run"
    )
    g.add_argument("--cpus-per-task", type=POSITIVE, metavar="C",
                   help="Slurm: CPUs per task; with --gpus-per-task G a task is one rank (one "
                   "GPU), so a node gets G x C")  # fmt: skip
    g.add_argument("--slurm-account", dest="account", metavar="A")
    g.add_argument(
        "--max-requeues", type=NON_NEGATIVE, default=5, help="timeouts/preemptions per run"
    )
    g.add_argument("--slurm-option", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="any further sbatch option, e.g. qos=high (repeatable)")  # fmt: skip
