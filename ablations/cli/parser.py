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
    NON_NEGATIVE_FLOAT,
    POSITIVE,
    RESULTS,
    TRAIN_OVERRIDES,
    add_selection,
    add_time_limit,
)
from ablations.cli.speed_commands import add_speed_commands
from ablations.config import EVAL_CROPS, STREAM_DATASETS
from ablations.data import DATASETS
from ablations.measure import golden
from ablations.profiles import PROFILES
from ablations.results import schemas

# The package docstring's first line (ablations/cli/__init__.py), as `ablate --help` shows it.
DESCRIPTION = "`ablate`: plan, train, measure and report the ResNet ablations of He et al. (2016)."
DATA = "dataset path (default: $ABLATE_DATA, else download)"


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
    reuse = "reuse up-to-date counts from this table when it exists (default: %(default)s)"
    p.add_argument("--results", type=Path, default=RESULTS / schemas.COMPLEXITY_FILE, help=reuse)

    p = command("complexity", report.cmd_complexity, "measure params and MACs into a results table")
    add_selection(p)
    p.add_argument("--out", type=Path, default=RESULTS / schemas.COMPLEXITY_FILE)
    p.add_argument("--rerun", action="store_true", help="recompute rows that are up to date")

    p = command("golden", report.cmd_golden, "check (or --write) the golden complexity file")
    write = "update the complexity table (only what changed), then write the file from it"
    p.add_argument("--write", action="store_true", help=write)
    p.add_argument("--path", type=Path, default=golden.DEFAULT_PATH)
    projected = f"the folder whose {schemas.COMPLEXITY_FILE} it projects (default: %(default)s)"
    p.add_argument("--results", type=Path, default=golden.DEFAULT_RESULTS, help=projected)

    p = command("train", train.cmd_train, "train one variant (or recipe) and record its curves")
    p.add_argument("variant", nargs="?", help="a registered variant (or give --recipe)")
    p.add_argument("--recipe", help="a tutorial recipe instead of a variant (`ablate recipes`)")
    p.add_argument("--arm", help="the recipe's arm (default: its first)")
    datasets = [*DATASETS, *STREAM_DATASETS]
    p.add_argument("--dataset", choices=datasets, help="default: the profile's, else cifar10")
    p.add_argument("--data", help=f"{DATA}; imagenet: $ABLATE_DATA_IMAGENET, never downloaded")
    budgets = [*PROFILES, *(b for b in recipes.BUDGETS if b not in PROFILES)]
    budget = "budget (default: paper on a GPU, cpu otherwise; recipes: full, cpu, smoke)"
    p.add_argument("--profile", choices=budgets, help=budget)
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.add_argument("--out", type=Path, default=RESULTS / "runs", help="runs folder")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    global_bn = (
        "under torchrun: BN over the global batch (the one-process run, same run key); without "
        "it each rank's BN sees batch/G images and the key records bn_batch"
    )
    p.add_argument("--sync-bn", action="store_true", help=global_bn)
    add_time_limit(p, "stop at the first checkpoint past it")
    overrides = p.add_argument_group("overrides of the profile")
    for name, spec in TRAIN_OVERRIDES.items():
        overrides.add_argument(
            f"--{name.replace('_', '-')}", dest=name, default=argparse.SUPPRESS, **spec
        )

    p = command("recipes", report.cmd_recipes, "the tutorial recipes: variant, data, budget, claim")
    p.add_argument("-v", "--verbose", action="store_true", help="with each tutorial's setup")

    p = command("subset", train.cmd_subset, "write a class subset of a dataset as an ImageFolder")
    p.add_argument("--dataset", default="cifar10", choices=list(DATASETS))
    p.add_argument("--data", help=DATA)
    p.add_argument("--classes", required=True, help="comma-separated class names")
    p.add_argument("--train-per-class", type=POSITIVE, default=100)
    p.add_argument("--test-per-class", type=POSITIVE, default=50)
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.add_argument("--out", type=Path, required=True, help="a folder that does not exist yet")
    add_speed_commands(command)

    what = "evaluate a checkpoint (ours or published) into results/evaluations.csv"
    p = command("evaluate", train.cmd_evaluate, what)
    p.add_argument("variant", help="our architecture to load the weights into, e.g. resnet20")
    weights = "run:<run_id>, torchvision:<IMAGENET1K_V1|file> (never downloaded) or akamaster .th"
    p.add_argument("--weights", required=True, help=weights)
    datasets = ["cifar10", "imagenet", "fashion-mnist"]
    default = "default: the run's, cifar10 for akamaster, imagenet for torchvision"
    p.add_argument("--dataset", choices=datasets, help=default)
    p.add_argument("--data", help=f"{DATA}; imagenet: its val split, or $ABLATE_DATA_IMAGENET")
    p.add_argument("--limit", type=POSITIVE, help="a fixed random subset of N test images")
    crops = "ImageNet: the centre crop (default), 10 crops (Tables 2-3) or 5 scales (Table 4)"
    p.add_argument("--crops", default="center", choices=list(EVAL_CROPS), help=crops)
    p.add_argument("--batch-size", type=POSITIVE, default=200)
    p.add_argument("--device", default="auto")
    p.add_argument("--results", type=Path, default=RESULTS)

    p = command("report", report.cmd_report, "render reports/ (and README and docs) from results/")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--out", type=Path, default=report.DEFAULT_REPORTS)
    blocks = "the README whose <!-- ablate:NAME --> blocks, and docs/*.md's, are regenerated"
    p.add_argument("--readme", type=Path, default=report.DEFAULT_README, help=blocks)
    check = "only check that those blocks match results/ (exit 2 if not)"
    p.add_argument("--check-readme", action="store_true", help=check)

    names = ", ".join(experiments.EXPERIMENTS)
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
            "--experiments", help=f"comma-separated, from: {names} (default: the profile's)"
        )
        p.add_argument("--seeds", type=POSITIVE, help="runs per config (default: the profile's)")
        p.add_argument("--data", help=f"{DATA}; imagenet-* profiles: $ABLATE_DATA_IMAGENET")
        p.add_argument("--device", default="auto")
        p.add_argument("--results", type=Path, default=RESULTS)
        where = "where the report goes (default: reports/ for committed runs, else RESULTS/report/)"
        p.add_argument("--reports", type=Path, metavar="DIR", help=where)
        if name == "run":
            add_time_limit(p, "each run stops at its first checkpoint past it, none starts after")
            _add_launch_options(p)
        if name == "plan":
            g = p.add_argument_group("measuring (the rows go to step_speed.csv in --results)")
            measure = "time a few steps of each planned run here; project the set's time"
            g.add_argument("--measure", action="store_true", help=measure)
            g.add_argument("--iterations", type=POSITIVE, default=200, help="timed steps")
            g.add_argument("--warmup", type=NON_NEGATIVE, default=30, help="untimed steps first")
            add_time_limit(g, "no measurement starts past it")

    p = command("collect", report.cmd_collect, "rebuild runs.csv and curves.csv from results/runs/")
    p.add_argument("--results", type=Path, default=RESULTS)
    what = "merge results made elsewhere into --results without losing a row"
    p = command("merge", report.cmd_merge, what)
    sources = "a results folder, an `ablate pack` tarball or one CSV table, merged in order"
    p.add_argument("sources", nargs="+", type=Path, metavar="SOURCE", help=sources)
    p.add_argument("--results", type=Path, default=RESULTS)
    what = "tarballs of --results to take elsewhere: tables, records, checkpoints within --max-mb"
    p = command("pack", report.cmd_pack, what)
    p.add_argument("out", type=Path, metavar="OUT", help="the folder the tarballs go to")
    p.add_argument("--results", type=Path, default=RESULTS)
    total = "all tarballs together (default: no limit; tables always go)"
    p.add_argument("--max-mb", type=NON_NEGATIVE_FLOAT, metavar="N", help=total)
    part = "each checkpoints-N / weights-N tarball (default: no limit)"
    p.add_argument("--part-mb", type=NON_NEGATIVE_FLOAT, metavar="N", help=part)
    return parser


def _add_launch_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executors (training runs through submitit; see docs/clusters.md)")
    where = "inprocess (default: here), local (submitit processes here) or slurm (a job array)"
    g.add_argument("--executor", choices=list(cluster.EXECUTORS), default="inprocess", help=where)
    jobs = "runs at once (inprocess: one CUDA stream each; local: processes; slurm: array tasks)"
    g.add_argument("--jobs", type=POSITIVE, default=1, help=jobs)
    g.add_argument("--slurm-partition", dest="partition", metavar="P")
    minutes = "minutes per job; longer runs are requeued and resume (default 240)"
    g.add_argument(
        "--slurm-time", dest="time_min", type=POSITIVE, default=240, metavar="MIN", help=minutes
    )
    gpus = "Slurm: G > 1 trains each run across G GPUs (DDP, synchronised BN)"
    g.add_argument("--gpus-per-task", type=POSITIVE, default=1, metavar="G", help=gpus)
    g.add_argument(
        "--slurm-nodes", dest="nodes", type=POSITIVE, default=1, metavar="N", help="nodes per run"
    )
    cpus = "Slurm: CPUs per task; a task is one rank (one GPU), so a node gets G x C"
    g.add_argument("--cpus-per-task", type=POSITIVE, metavar="C", help=cpus)
    g.add_argument("--slurm-account", dest="account", metavar="A")
    g.add_argument(
        "--max-requeues", type=NON_NEGATIVE, default=5, help="timeouts/preemptions per run"
    )
    extra = "any further sbatch option, e.g. qos=high (repeatable)"
    g.add_argument(
        "--slurm-option", dest="extra", action="append", default=[], metavar="KEY=VALUE", help=extra
    )
