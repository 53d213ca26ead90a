"""`ablate`: thin subcommands over the library (parse -> call -> print).

Errors a user can fix print one line naming the fix and exit 2; an interrupt exits 130 and keeps
everything already saved (runners write each result as it completes).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from ablations import experiments, golden, launch, pipeline, recipes, store
from ablations.config import DECODES, STREAM_DATASETS, TrainConfig, resolve_config
from ablations.data import DATASETS, resolve_source
from ablations.profiles import PROFILES, default_profile
from ablations.registry import REGISTRY, AblationsError, list_variants
from ablations.report import render
from ablations.results import read_table
from ablations.runners import complexity
from ablations.runners.steps import PRECISIONS, STEPS

LIST_COLUMNS = [
    "name", "family", "depth", "block", "residual", "shortcut", "stem", "stride_at", "width",
    "input_size", "num_classes", "params", "macs",
]  # fmt: skip


def select(patterns: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """Registered names matching `patterns` (all if none) minus `exclude`; a pattern that
    matches nothing is an error that suggests the closest names."""
    for pattern in patterns:
        if not list_variants(pattern):
            close = REGISTRY.closest(pattern)
            hint = f"closest: {', '.join(close)}" if close else "see `ablate list`"
            raise AblationsError(f"no registered variant matches {pattern!r}; {hint}")
    names = list_variants(list(patterns) or "*", exclude)
    if not names:
        raise AblationsError("every matching variant is excluded; loosen --exclude")
    return names


def _format_table(df: pd.DataFrame) -> str:
    shown = df[LIST_COLUMNS].copy()
    for column in ("params", "macs"):
        shown[column] = shown[column].map("{:,}".format)
    return f"# {complexity.MACS_CONVENTION}\n{shown.to_string(index=False)}"


def cmd_list(args: argparse.Namespace) -> None:
    names = select(args.patterns, args.exclude)
    stored = read_table(args.results, complexity.SCHEMA) if args.results.exists() else None
    df = complexity.measure(names, stored=stored)
    columns = [*LIST_COLUMNS, "stage_blocks", "in_channels"]
    if args.format == "csv":
        df[columns].to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(json.dumps(df[columns].to_dict("records"), indent=1))
    else:
        print(_format_table(df))


def cmd_complexity(args: argparse.Namespace) -> None:
    names = select(args.patterns, args.exclude)
    table = complexity.update(args.out, names, rerun=args.rerun)
    print(f"{args.out}: {len(table)} rows ({len(names)} selected are up to date)")


def cmd_golden(args: argparse.Namespace) -> None:
    if args.write:
        table = golden.write(args.path)
        print(f"{args.path}: wrote {len(table)} variants")
        return
    problems = golden.check(args.path)
    for line in problems:
        print(line)
    if problems:
        raise AblationsError(
            f"{len(problems)} differences from {args.path}; "
            "if the change is intended, run `ablate golden --write`"
        )
    print(f"{args.path}: every registered variant matches")


DEFAULT_README = Path("README.md")


def cmd_report(args: argparse.Namespace) -> None:
    readme_path: Path = getattr(args, "readme", DEFAULT_README)
    if getattr(args, "check_readme", False):
        _check_readme(readme_path, results=args.results)
        return
    for path in render.render(results=args.results, out=args.out):
        print(path)
    if _update_readme(readme_path, results=args.results):
        print(readme_path)


def _update_readme(path: Path, *, results: Path) -> bool:
    """Regenerate the README's marked figures from `results`, but only from the results/
    folder beside it: a run into another folder never rewrites the project's README."""
    if not path.exists() or results.resolve() != path.resolve().parent / "results":
        return False
    from ablations.report import readme, readme_blocks

    return readme.update(path, readme_blocks.BLOCKS, results=results)


def _check_readme(path: Path, *, results: Path) -> None:
    from ablations.report import readme, readme_blocks

    if not path.exists():
        raise AblationsError(f"--check-readme: {path} does not exist; give --readme PATH")
    stale = readme.stale_blocks(path, readme_blocks.BLOCKS, results=results)
    if stale:
        raise AblationsError(
            f"{path}: blocks {', '.join(stale)} differ from {results}; run `ablate report`"
        )
    print(f"{path}: every generated block matches {results}")


def _tasks(args: argparse.Namespace) -> tuple[list[pipeline.Task], pipeline.Context]:
    profile = args.profile or default_profile()
    ctx = pipeline.context(results=args.results, data=args.data, device=args.device)
    names = experiments.parse(args.experiments, profile=profile)
    tasks = pipeline.plan(names, profile=profile, seeds=args.seeds, device=ctx.device)
    print(f"[ablate] profile {profile}: {', '.join(names)} on {ctx.device.type}", file=sys.stderr)
    return tasks, ctx


def cmd_run(args: argparse.Namespace) -> int | None:
    tasks, ctx = _tasks(args)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if args.executor != "inprocess":
        return _run_submitted(args, tasks, ctx)
    counts = pipeline.execute(tasks, ctx)
    print(f"[ablate] {counts['ran']} task(s) run, {counts['done']} already done", file=sys.stderr)
    cmd_report(argparse.Namespace(results=args.results, out=args.reports))
    return None


def _launch_options(args: argparse.Namespace) -> launch.LaunchOptions:
    return launch.LaunchOptions(
        executor=args.executor, jobs=args.jobs, partition=args.slurm_partition,
        time_min=args.slurm_time, gpus_per_task=args.gpus_per_task, nodes=args.slurm_nodes,
        cpus_per_task=args.cpus_per_task, account=args.slurm_account,
        max_requeues=args.max_requeues, extra=tuple(args.slurm_option),
    )  # fmt: skip


def _run_submitted(
    args: argparse.Namespace, tasks: list[pipeline.Task], ctx: pipeline.Context
) -> int:
    counts = pipeline.execute_submitted(tasks, ctx, options=_launch_options(args))
    print(
        f"[ablate] {counts['submitted']} run(s) submitted, {counts['busy']} already queued or "
        f"running, {counts['done']} done; {counts['unfinished']} unfinished",
        file=sys.stderr,
    )
    if counts["unfinished"]:
        print("[ablate] `ablate status` shows each run; `ablate run` again resubmits failed ones "
              "(they resume) and, once all are done, runs the rest and renders reports",
              file=sys.stderr)  # fmt: skip
        return 1 if args.executor == "local" else 0
    cmd_report(argparse.Namespace(results=args.results, out=args.reports))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    tasks, ctx = _tasks(args)
    table = pipeline.launch_status(tasks, ctx)
    print(table.drop(columns="task").to_string(index=False) if len(table) else "no training runs")
    counts = table["state"].value_counts() if len(table) else pd.Series(dtype=int)
    print("\n" + ", ".join(f"{counts.get(s, 0)} {s}" for s in launch.STATES))
    return 1 if counts.get("failed", 0) else 0


def cmd_plan(args: argparse.Namespace) -> None:
    tasks, ctx = _tasks(args)
    table = pipeline.status_table(tasks, ctx)
    print(table.drop(columns="command").to_string(index=False))
    missing = [c for c in table["command"] if c]
    if missing:
        print(f"\n# {len(missing)} missing training run(s); on any machine, then `ablate collect`:")
        print("\n".join(missing))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ablations.runners.evaluate import evaluate_checkpoint

    row = evaluate_checkpoint(
        args.variant, weights=args.weights, dataset=args.dataset, data=args.data,
        results=args.results, device=args.device, batch_size=args.batch_size, limit=args.limit,
    ).iloc[0]  # fmt: skip
    top5 = "" if row["top5_error"] != row["top5_error"] else f", top-5 {row['top5_error']:.2%}"
    print(
        f"{row['variant']} from {row['weights']} ({row['weights_format']}, {row['preprocessing']})"
        f" on {row['dataset']} {row['split']} ({row['images']} images of {row['data_source']}): "
        f"top-1 error {row['top1_error']:.2%}{top5}, loss {row['loss']:.4f} -> "
        f"{args.results / 'evaluations.csv'}"
    )


def cmd_collect(args: argparse.Namespace) -> None:
    runs = store.collect(args.results)
    print(
        f"{args.results / store.RUNS_FILE}: {len(runs)} runs from {args.results / store.RUNS_DIR}"
    )


def _train_summary(summary: dict[str, Any]) -> str:
    if summary["status"] == "stopped":
        return (
            f"stopped by --stop-after at iteration {summary['iterations']:,} of "
            f"{summary['planned_iterations']:,}, checkpointed; rerun the same command to resume"
        )
    if summary["status"] == "diverged":
        return f"diverged at iteration {summary['diverged_at']} (recorded; lower --lr?)"
    evaluated = (
        f"val {summary['val_error']:.2%}, " if "val_error" in summary
        else f"best-on-test {summary['best_test_error']:.2%} (selects on the test set), "
    )  # fmt: skip
    budget = f" [{summary['profile']} budget]" if summary.get("recipe") else ""
    final = (f"final test {summary['test_error']:.2%}" if "test_error" in summary
             else _val_errors(summary))  # fmt: skip
    return (
        f"complete{budget}: train error {summary['train_error']:.2%}, {evaluated}"
        f"{final}; {summary['train_s']:.0f} s training, "
        f"{summary['images_per_s']:,.0f} images/s"
    )


def _val_errors(summary: dict[str, Any]) -> str:
    """ImageNet's final errors: top-1 / top-5 on val, centre crop and 10-crop where run."""
    parts = []
    for label, prefix in (("centre", ""), ("10-crop", "ten_crop_")):
        if f"{prefix}val_error" in summary:
            parts.append(f"{label} {summary[f'{prefix}val_error']:.2%} / "
                         f"{summary[f'{prefix}val_top5_error']:.2%}")  # fmt: skip
    return "final val top-1 / top-5: " + ", ".join(parts)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_train(args: argparse.Namespace) -> int:
    from ablations import distributed
    from ablations.runners import train  # imports the data stack only when training

    overrides = {k: getattr(args, k) for k in TRAIN_OVERRIDES if hasattr(args, k)}
    # Under torchrun: join the group; each rank trains on its own GPU (or the CPU, with gloo).
    device = distributed.setup(args.device) or args.device
    deadline = None if args.stop_after is None else time.monotonic() + 60 * args.stop_after
    try:
        config = distributed.for_world(_train_config(args, overrides), sync_bn=args.sync_bn)
        # SIGTERM (a scheduler, `kill`) stops like Ctrl-C: the last checkpoint stays.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        data = args.data
        if data is None and config.data_id == recipes.DEMO_DATA_ID:  # as `ablate plan` prints
            data = recipes.demo_data(cifar=None, budget=config.profile)
        record = train.train(config, out=args.out, data=data, device=device, deadline=deadline)
    finally:
        distributed.teardown()
    if distributed.launched_world() == 1 or int(os.environ.get("RANK", "0")) == 0:
        print(f"{record.run_dir}: {_train_summary(record.summary)}")
    return 1 if record.status == "diverged" else 0


def _train_config(args: argparse.Namespace, overrides: dict[str, Any]) -> TrainConfig:
    """`ablate train VARIANT` (a profile) or `ablate train --recipe NAME` (a budget)."""
    if (args.variant is None) == (args.recipe is None):
        raise AblationsError("give a variant or --recipe NAME (`ablate recipes` lists them)")
    if args.recipe is None and (args.profile == "full" or args.arm is not None):
        raise AblationsError("--profile full and --arm apply to recipes; add --recipe NAME")
    dataset = args.dataset if args.recipe is None else recipes.get_recipe(args.recipe).dataset
    if dataset == "imagefolder" and "data_id" not in overrides:
        overrides["data_id"] = _folder_name(args.data)
    if args.recipe is None:
        return resolve_config(
            args.variant, profile=args.profile, dataset=dataset, seed=args.seed,
            device=args.device, **overrides,
        )  # fmt: skip
    return recipes.resolve_recipe(
        args.recipe, profile=args.profile, seed=args.seed, arm=args.arm, device=args.device,
        **overrides,
    )  # fmt: skip


def _folder_name(data: str | None) -> str:
    """An ImageFolder run's default data_id: the name of the folder it trains on."""
    source = resolve_source("imagefolder", data)
    if source is None:
        raise AblationsError(
            "ImageFolder data needs --data DIR (offline, build one with `ablate subset`)"
        )
    return source.name


def cmd_recipes(args: argparse.Namespace) -> None:
    rows = [{
        "recipe": r.name, "variant": r.variant, "dataset": r.dataset,
        "arms": ",".join(a for a in r.arms if a) or "-",
        "full budget": f"{r.settings['epochs']} epochs, batch {r.settings['batch_size']}",
        "claimed": "-" if r.claimed_accuracy is None else f"{r.claimed_accuracy:.2f}%",
    } for r in recipes.RECIPES.values()]  # fmt: skip
    print(pd.DataFrame(rows).to_string(index=False))
    print(
        "\nbudgets (--profile): " + "; ".join(f"{k}: {v}" for k, v in recipes.BUDGET_WORDS.items())
    )
    if args.verbose:
        for r in recipes.RECIPES.values():
            print(f"\n{r.name}: {r.tutorial}.")
            if r.choices:
                print(f"  choices where the tutorial is silent: {r.choices}")


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


def cmd_train_speed(args: argparse.Namespace) -> None:
    from ablations.data import load_dataset
    from ablations.runners import speed

    names = select(args.patterns or list(SPEED_DEFAULT), args.exclude)
    overrides: dict[str, Any] = {"input_size": args.input_size, "batch_size": args.batch_size}
    if args.compile:
        overrides["compile"] = True
    configs = [resolve_config(n, profile=args.profile, device=args.device, **overrides)
               for n in names]  # fmt: skip
    out = args.out / speed.SPEED_FILE if args.out.is_dir() else args.out
    dataset = load_dataset("cifar10", data=args.data)
    table = speed.compare(
        configs, dataset, device=args.device, iterations=args.iterations, warmup=args.warmup,
        workers=args.workers, out=out,
    )  # fmt: skip
    shown = table[["variant", "loop", "precision", "channels_last", "compile", "workers",
                   "tf32_cudnn", "images_per_s", "speedup"]]  # fmt: skip
    print(f"# {table['machine'].iloc[0]}, batch {args.batch_size}, {args.iterations} timed steps")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    print(f"appended to {out}")


SPEED_DEFAULT = ("resnet20", "resnet56", "resnet110")


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


BOTH = {"off": (False,), "on": (True,), "both": (False, True)}


def cmd_bench(args: argparse.Namespace) -> None:
    from ablations.runners import throughput

    names = select(args.patterns, args.exclude)
    settings = throughput.grid(
        names, device=args.device,
        modes=throughput.MODES if args.mode == "both" else (args.mode,),
        precisions=args.precision, channels_last=BOTH.get(args.channels_last),
        compile=BOTH[args.compile], batch_sizes=args.batch_size, input_size=args.input_size,
        warmup=args.warmup, repeats=args.repeats, steps=args.steps, runs=args.runs,
    )  # fmt: skip
    name = throughput.REFERENCE_FILE if args.reference else throughput.THROUGHPUT_FILE
    out = throughput.output_path(args.out, name) if args.out else Path("results") / name
    table = throughput.run(settings, out=out, reference=args.reference)
    print(throughput.format_table(table))
    if args.runs > 1:
        spreads = throughput.spread(table)
        for reference, part in spreads.groupby("reference"):
            print(f"run-to-run spread of images/s over {args.runs} runs ({reference}): median "
                  f"{part['spread'].median():.1%}, worst {part['spread'].max():.1%}")  # fmt: skip
    print(f"appended to {out}")


def _comma_separated(convert: Callable[[str], Any], what: str) -> Callable[[str], tuple[Any, ...]]:
    """An argparse type: "a,b,c" -> (convert(a), convert(b), convert(c))."""

    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(convert(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what}, got {text!r}"
            ) from None

    return parse


_floats = _comma_separated(float, "numbers")
_milestones = _comma_separated(int, "iterations (or epochs, with --epochs)")


# `ablate train` options that override the profile; absent ones stay out of the namespace.
TRAIN_OVERRIDES: dict[str, dict[str, Any]] = {
    "iterations": {"type": int},
    "batch_size": {"type": int},
    "lr": {"type": float},
    "lr_milestones": {"type": _milestones, "metavar": "A,B,..."},
    "lr_gamma": {"type": float},
    "momentum": {"type": float},
    "weight_decay": {"type": float},
    "precision": {"choices": list(PRECISIONS)},
    "channels_last": {"action": argparse.BooleanOptionalAction},
    "compile": {"action": argparse.BooleanOptionalAction},
    "eval_every": {"type": int},
    "input_size": {"type": int},
    "train_size": {"type": int},
    "val_size": {"type": int},
    "augment": {"action": argparse.BooleanOptionalAction},
    "normalize": {"choices": ["pixel-mean", "channel", "fixed"]},
    "mean": {"type": _floats, "metavar": "M1,M2,M3", "help": "for --normalize fixed"},
    "std": {"type": _floats, "metavar": "S1,S2,S3", "help": "for --normalize fixed"},
    "optimizer": {"choices": ["sgd", "adam"]},
    "epochs": {"type": int, "help": "count the budget in epochs (milestones then in epochs)"},
    "init_from": {
        "metavar": "CKPT",
        "help": "state_dict file, run:<run_id> or "
        "torchvision:IMAGENET1K_V1; the final layer is new",
    },
    "freeze": {"choices": ["none", "backbone"], "help": "backbone: train the final layer only"},
    "resize": {"type": int, "help": "shorter image side, at decode time (ImageFolder data)"},
    "crop": {"type": int, "help": "centre crop after --resize, at decode time"},
    "data_id": {"help": "a name for --data when it has no canonical identity (ImageFolder)"},
    "storage": {"choices": ["device", "host"], "help": "host: stream batches through a DataLoader"},
    "workers": {"type": int, "help": "DataLoader workers (with --storage host, or streamed)"},
    "stream": {"help": "streamed data's protocol: imagenet-paper or imagenet-torchvision"},
    "classes": {"type": int, "help": "streamed data: a class subset of this many classes"},
    "train_per_class": {"type": int, "help": "streamed data: training images per class"},
    "val_per_class": {"type": int, "help": "streamed data: val images per class"},
    "decode": {"choices": list(DECODES), "help": "streamed data: gpu decodes JPEGs by nvJPEG"},
    "step": {
        "choices": list(STEPS),
        "help": "graph: replay the training step as one CUDA graph; auto (default): graph on a "
        "GPU, eager elsewhere",
    },
}


def _add_launch_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executors (training runs through submitit; see README: On a cluster)")
    g.add_argument(
        "--executor", choices=list(launch.EXECUTORS), default="inprocess",
        help="inprocess (default: one run after another here), local (N submitit processes "
        "here, one GPU each while there are enough), slurm (a job array)",
    )  # fmt: skip
    g.add_argument("--jobs", type=int, default=1, help="runs at once (Slurm: array parallelism)")
    g.add_argument("--slurm-partition", metavar="P")
    g.add_argument(
        "--slurm-time",
        type=int,
        default=240,
        metavar="MIN",
        help="minutes per job; longer runs are requeued and resume (default 240)",
    )
    g.add_argument(
        "--gpus-per-task",
        type=int,
        default=1,
        metavar="G",
        help="Slurm: G > 1 trains each run across G GPUs (DDP, synchronised BN)",
    )
    g.add_argument("--slurm-nodes", type=int, default=1, metavar="N", help="nodes per run")
    g.add_argument("--cpus-per-task", type=int, metavar="C")
    g.add_argument("--slurm-account", metavar="A")
    g.add_argument("--max-requeues", type=int, default=5, help="timeouts/preemptions per run")
    g.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any further sbatch option, e.g. qos=high (repeatable)")  # fmt: skip


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patterns", nargs="*", metavar="GLOB", help="variant names or globs")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="drop matches (repeatable)"
    )


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line that point at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ablate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    # Listed for --help; `main` hands its arguments to ablations.data.loader_speed.
    sub.add_parser("loader-speed", help="images/s of the streaming (ImageNet) loader alone")
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/runs"), help="runs folder")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--sync-bn",
        action="store_true",
        help="under torchrun: BN over the global batch (the one-process run, same run key); "
        "without it each rank's BN sees batch/G images and the key records bn_batch",
    )
    p.add_argument(
        "--stop-after", type=float, metavar="MIN",
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
    p.add_argument("--train-per-class", type=int, default=100)
    p.add_argument("--test-per-class", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="a folder that does not exist yet")
    p.set_defaults(func=cmd_subset)

    p = sub.add_parser(
        "train-speed", help="images/s of this suite's training loop vs the conventional one"
    )
    _add_selection(p)
    p.add_argument("--profile", choices=list(PROFILES), help="precision and memory format")
    p.add_argument("--data", help="CIFAR-10 path (default: $ABLATE_DATA, else download)")
    p.add_argument("--device", default="auto")
    p.add_argument("--iterations", type=int, default=50, help="timed steps per loop")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument(
        "--workers", type=int, help="conventional DataLoader workers (default: one per core)"
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--input-size", type=int, default=None, help="default: native 32x32")
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
        "--batch-size", nargs="+", type=_batch_size,
        help="one or more sizes, or 'max' (GPU: the largest that fits); "
        "default 128 CIFAR / 256 ImageNet on a GPU, 32 / 8 on a CPU",
    )  # fmt: skip
    p.add_argument("--input-size", type=int, help="default: each variant's own")
    p.add_argument("--device", default="auto")
    p.add_argument("--warmup", type=int, help="untimed steps (default: GPU 10, CPU 5 / 2)")
    p.add_argument("--repeats", type=int, help="timed repeats (default: CIFAR / ImageNet: "
                   "GPU 7 / 5, CPU 7 / 5)")  # fmt: skip
    p.add_argument("--steps", type=int, help="steps per repeat (default: CIFAR / ImageNet: "
                   "GPU 20 / 10, CPU 10 / 3)")  # fmt: skip
    p.add_argument("--runs", type=int, default=1, help="repeat the whole measurement N times")
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
    p.add_argument("--limit", type=int, help="a fixed random subset of N test images")
    p.add_argument("--batch-size", type=int, default=200)
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
        p.add_argument("--seeds", type=int, help="runs per config (default: the profile's)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        if words[:1] == ["loader-speed"]:  # its options are the module's own parser's
            from ablations.data import loader_speed

            return loader_speed.main(words[1:])
        args = build_parser().parse_args(words)
        code = args.func(args)
    except AblationsError as err:
        print(f"ablate: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ablate: interrupted; finished results are saved, rerun to resume", file=sys.stderr)
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
