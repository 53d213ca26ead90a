"""`ablate run`: plan the tasks of the chosen experiments, run the missing ones, record them.

Stages, one way: plan (experiments x profile x seeds -> tasks) -> run (each task writes its own
record: a run directory, or rows of a results table) -> record (runs.csv / curves.csv /
responses.csv) -> report. Every task knows whether it is done, so an interrupted `ablate run`
resumes where it stopped (a half-trained run from its checkpoint) and a second invocation with
nothing missing only re-renders. `plan` prints the missing training runs as `ablate train`
commands, so they can be dispatched to other machines and collected back (`ablate collect`).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ablations import env, recipes, store, versions
from ablations.config import STREAM_DATASETS, TrainConfig, resolve_config, resolve_device
from ablations.experiments import EXPERIMENTS
from ablations.io import read_json
from ablations.profiles import dataset_of, get_profile
from ablations.progress import progress
from ablations.registry import AblationsError, get_variant, list_variants
from ablations.results import read_table, upsert
from ablations.runners import complexity, records, throughput

ORDER = {"complexity": 0, "train": 1, "responses": 2, "throughput": 3}


@dataclass(frozen=True)
class Task:
    """One unit of work: a training run, or one table brought up to date."""

    kind: str  # "complexity" | "train" | "responses" | "throughput"
    label: str
    experiments: tuple[str, ...]
    config: TrainConfig | None = None  # train
    configs: tuple[TrainConfig, ...] = ()  # responses: the runs to measure
    settings: tuple[throughput.Setting, ...] = field(default=())  # throughput


@dataclass(frozen=True)
class Context:
    results: Path
    data: str | Path | None
    device: torch.device

    @property
    def runs_dir(self) -> Path:
        return self.results / store.RUNS_DIR


# --- planning -------------------------------------------------------------------------------


def plan(
    names: list[str], *, profile: str, seeds: int | None = None, device: torch.device
) -> list[Task]:
    """The tasks of `names` under `profile`; a training run shared by two experiments (resnet56
    is in both degradation and shortcuts) is one task."""
    n_seeds = seeds or get_profile(profile).seeds
    train: dict[str, Task] = {}
    tasks: list[Task] = []
    for name in names:
        exp = EXPERIMENTS[name]
        if exp.kind in ("train", "recipes"):
            configs = (
                _configs(exp.variants_for(profile), profile, n_seeds, device)
                if exp.kind == "train"
                # Recipes are judged against a claimed accuracy, not by the seed rule: one seed
                # unless --seeds asks for more (the profile's seeds are for its verdicts).
                else _recipe_configs(profile, seeds or 1, device)
            )
            for config in configs:
                known = train.get(config.run_id)
                owners = (*known.experiments, name) if known else (name,)
                train[config.run_id] = Task("train", _describe(config), owners, config=config)
        elif exp.kind == "responses":
            configs = _configs(exp.variants_for(profile), profile, n_seeds, device)
            tasks.append(Task("responses", f"layer responses of {len(configs)} runs", (name,),
                              configs=tuple(configs)))  # fmt: skip
        elif exp.kind == "throughput":
            variants = exp.variants_for(profile)
            settings = tuple(throughput.grid(list(variants), device=device))
            label = f"throughput of {len(variants)} variants on {device.type}"
            tasks.append(Task("throughput", label, (name,), settings=settings))
        else:
            tasks.append(Task("complexity", "params and MACs of every variant", (name,)))
    tasks += train.values()
    return sorted(tasks, key=lambda t: ORDER[t.kind])  # stable: experiment order within a kind


def _configs(
    variants: tuple[str, ...], profile: str, seeds: int, device: torch.device
) -> list[TrainConfig]:
    return [resolve_config(v, profile=profile, seed=s, device=device)
            for v in variants for s in range(seeds)]  # fmt: skip


def _recipe_configs(profile: str, seeds: int, device: torch.device) -> list[TrainConfig]:
    """Every recipe's runs under the profile's budget; the fine-tuning recipe runs offline as a
    demo, from this profile's CIFAR-10 resnet18 run (trained first) on a 4-class subset."""
    budget = recipes.budget_for(profile)
    configs: list[TrainConfig] = []
    for recipe in recipes.RECIPES.values():
        for config in recipes.recipe_configs(
            recipe.name, profile=budget, seeds=seeds, device=device.type
        ):
            if recipe.needs_checkpoint:
                source = resolve_config(
                    recipe.variant, profile=profile, seed=config.seed, device=device
                )
                configs.append(source)
                config = replace(
                    config, init_from=f"run:{source.run_id}", data_id=recipes.DEMO_DATA_ID
                )
            configs.append(config)
    return configs


def _describe(config: TrainConfig) -> str:
    if config.recipe is not None:
        arm = f" ({config.arm})" if config.arm else ""
        return f"recipe {config.recipe}{arm} seed {config.seed} ({config.profile} budget)"
    return f"{config.variant} seed {config.seed} ({config.profile})"


def data_for(config: TrainConfig, ctx: Context) -> str | Path | None:
    """Where a run's data is: --data is the profile's dataset's (CIFAR-10, or ImageNet for the
    imagenet profiles); Fashion-MNIST comes from its variable (or the download); the
    fine-tuning demo's ImageFolder is written from CIFAR-10 once."""
    if config.dataset in ("cifar10", *STREAM_DATASETS):
        return ctx.data
    if config.data_id == recipes.DEMO_DATA_ID:
        return recipes.demo_data(cifar=ctx.data, budget=config.profile)
    return None


def train_command(config: TrainConfig, *, results: Path) -> str:
    """The `ablate train` command that reproduces `config` exactly (for dispatching)."""
    if config.recipe is not None:
        defaults = recipes.resolve_recipe(
            config.recipe, profile=config.profile, seed=config.seed, arm=config.arm,
            device=config.device,
        )  # fmt: skip
        what = ["--recipe", config.recipe] + (["--arm", config.arm] if config.arm else [])
    else:
        defaults = resolve_config(
            config.variant, profile=config.profile, seed=config.seed, device=config.device
        )
        what = [config.variant]
    # The device is always spelled out: "auto" would resolve to the machine the command runs on,
    # and the device is part of the run's key.
    args = ["ablate", "train", *what, "--profile", config.profile, "--seed", str(config.seed),
            "--device", config.device, "--out", str(results / store.RUNS_DIR)]  # fmt: skip
    for key, value in config.to_json().items():
        if key in ("variant", "profile", "seed", "dataset", "recipe", "arm", "device"):
            continue
        # Precision is always spelled out: a profile's "auto" resolves per machine.
        if value == getattr(defaults, key) and key != "precision":
            continue
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{key.replace('_', '-')}")
        else:
            args += [
                flag,
                ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value),
            ]
    if config.dataset != dataset_of(config.profile) and config.recipe is None:
        args += ["--dataset", config.dataset]
    return shlex.join(args)


# --- what is done ---------------------------------------------------------------------------


def is_done(task: Task, ctx: Context) -> bool:
    if task.kind == "train":
        assert task.config is not None
        directory = ctx.runs_dir / task.config.run_id
        return (directory / "summary.json").exists() and records.stale_label(directory) is None
    if task.kind == "responses":
        measured = _measured(ctx)
        return all(c.run_id in measured for c in _finished(task.configs, ctx))
    if task.kind == "throughput":
        return not _unmeasured(task.settings, ctx)
    stored = read_table(ctx.results / complexity.COMPLEXITY_FILE, complexity.SCHEMA)
    variants = [get_variant(n) for n in list_variants()]
    return len(complexity.reusable(variants, stored)) == len(variants)


def state(task: Task, ctx: Context) -> str:
    """ "done", "missing", or for a training run of an older trainer "stale (trainer vN, now
    vM)" (rerunning it moves the old run aside, see ablations.runners.records.set_aside)."""
    if task.kind == "train" and task.config is not None:
        stale = records.stale_label(ctx.runs_dir / task.config.run_id)
        if stale is not None:
            return stale
    return "done" if is_done(task, ctx) else "missing"


def _measured(ctx: Context) -> set[str]:
    """Runs whose layer responses were measured on weights of the current trainer (a stale
    run's rows describe the weights it had before it was trained again)."""
    table = store.load(ctx.results)[2]
    return set(table.loc[table["trainer_version"] == versions.TRAINER_VERSION, "run_id"])


def _finished(configs: tuple[TrainConfig, ...], ctx: Context) -> list[TrainConfig]:
    """The configs whose runs finished complete (diverged runs have no final model) with the
    current trainer."""
    done = []
    for c in configs:
        summary = ctx.runs_dir / c.run_id / "summary.json"
        if (summary.exists() and read_json(summary)["status"] == "complete"
                and records.stale_label(summary.parent) is None):  # fmt: skip
            done.append(c)
    return done


def _unmeasured(settings: tuple[throughput.Setting, ...], ctx: Context) -> list[throughput.Setting]:
    """Settings with no row for this machine yet."""
    table = read_table(ctx.results / throughput.THROUGHPUT_FILE, throughput.SCHEMA)
    mine = table[table["machine"] == env.device_name(ctx.device)]
    have = {throughput.setting_key(row) for row in mine.to_dict("records")}
    return [s for s in settings if throughput.setting_key(asdict(s)) not in have]


# --- running --------------------------------------------------------------------------------


def run_task(task: Task, ctx: Context) -> None:
    RUNNERS[task.kind](task, ctx)


def _run_train(task: Task, ctx: Context) -> None:
    from ablations.runners import train

    assert task.config is not None
    record = train.train(
        task.config, out=ctx.runs_dir, data=data_for(task.config, ctx), device=ctx.device
    )
    _record_run(record.run_dir, task, ctx)


def _record_run(run_dir: Path, task: Task, ctx: Context) -> None:
    store.mark_experiments(run_dir, task.experiments)
    store.record(run_dir, ctx.results)


def _train_together(
    tasks: list[Task], ctx: Context, *, jobs: int, say: Callable[[str], None]
) -> None:  # fmt: skip
    """The training tasks, `jobs` runs at once in this process (ablations.runners.together);
    each is recorded as it ends, as one after another would be."""
    from ablations.runners import together

    by_run = {t.config.run_id: t for t in tasks if t.config is not None}

    def ended(record: records.RunRecord) -> None:
        say(f"[ablate] {record.config.run_id}: {record.status}")
        _record_run(record.run_dir, by_run[record.config.run_id], ctx)

    say(f"[ablate] training {len(by_run)} run(s), {jobs} at once in this process")
    together.train_together(
        [t.config for t in tasks if t.config is not None], jobs=jobs, out=ctx.runs_dir,
        data=lambda config: data_for(config, ctx), device=ctx.device, on_record=ended,
    )  # fmt: skip


def _run_responses(task: Task, ctx: Context) -> None:
    from ablations.runners import responses

    measured = _measured(ctx)
    todo = [c for c in _finished(task.configs, ctx) if c.run_id not in measured]
    for config in progress(todo, desc="responses", label=lambda c: c.run_id):
        rows = responses.responses_for_run(  # one decoded copy per process (load_dataset's)
            ctx.runs_dir / config.run_id, data=ctx.data, device=ctx.device,
            images=get_profile(config.profile).response_images,
        )  # fmt: skip
        upsert(ctx.results / store.RESPONSES_FILE, rows, store.RESPONSES)


def _run_throughput(task: Task, ctx: Context) -> None:
    throughput.run(_unmeasured(task.settings, ctx), out=ctx.results / throughput.THROUGHPUT_FILE)


def _run_complexity(task: Task, ctx: Context) -> None:
    complexity.update(ctx.results / complexity.COMPLEXITY_FILE, list_variants())


RUNNERS: dict[str, Callable[[Task, Context], None]] = {
    "train": _run_train, "responses": _run_responses, "throughput": _run_throughput,
    "complexity": _run_complexity,
}  # fmt: skip


def mark_done(task: Task, ctx: Context) -> None:
    """A finished run that this plan also needs (trained by a dispatched `ablate train`, or by
    another experiment) is marked as a member and its runs.csv row brought up to date."""
    if task.kind != "train" or task.config is None:
        return
    run_dir = ctx.runs_dir / task.config.run_id
    if store.mark_experiments(run_dir, task.experiments):
        store.record(run_dir, ctx.results)


def record_unrecorded(ctx: Context) -> int:
    """Finished run directories missing from runs.csv (a run finished by `ablate train`, or
    copied from another machine) are added; returns how many."""
    runs = read_table(ctx.results / store.RUNS_FILE, store.RUNS)
    fresh = [d for d in store.finished_runs(ctx.runs_dir) if d.name not in set(runs["run_id"])]
    for directory in fresh:
        store.record(directory, ctx.results)
    return len(fresh)


def execute(
    tasks: list[Task], ctx: Context, *, log: Callable[[str], None] | None = None, jobs: int = 1
) -> dict[str, int]:
    """Run every task that is not done, in order, logging one line per task. With `jobs` > 1
    the missing training runs go first, that many at once (one CUDA stream each on a GPU)."""
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    counts = {"done": 0, "ran": 0}
    trained: set[int] = set()  # id() of the tasks trained together
    if jobs > 1:
        missing = [t for t in tasks if t.kind == "train" and not is_done(t, ctx)]
        _train_together(missing, ctx, jobs=jobs, say=say)
        counts["ran"], trained = len(missing), {id(t) for t in missing}
    for i, task in enumerate(tasks, start=1):
        prefix = f"[ablate] {i}/{len(tasks)} {'/'.join(task.experiments)}: {task.label}"
        if id(task) in trained:  # trained above
            continue
        if is_done(task, ctx):
            counts["done"] += 1
            say(f"{prefix}: done")
            mark_done(task, ctx)
            continue
        say(f"{prefix}: running")
        run_task(task, ctx)
        counts["ran"] += 1
    counts["recorded"] = record_unrecorded(ctx)
    return counts


def status_table(tasks: list[Task], ctx: Context) -> pd.DataFrame:
    """One row per task: kind, experiments, label, done, state (done, missing or stale ...),
    and the command for a missing or stale run."""
    rows: list[dict[str, Any]] = []
    for task in tasks:
        now = state(task, ctx)
        done = now == "done"
        command = ""
        if task.kind == "train" and not done and task.config is not None:
            command = train_command(task.config, results=ctx.results)
        rows.append({"kind": task.kind, "experiments": ",".join(task.experiments),
                     "task": task.label, "done": done, "state": now,
                     "command": command})  # fmt: skip
    return pd.DataFrame(rows)


def context(
    *, results: Path, data: str | Path | None, device: str | torch.device | None
) -> Context:
    # Checked up front: a run with nothing missing never reads the data, and a typo in --data
    # should not pass silently there only to fail in a later run.
    if data is not None and not Path(data).expanduser().exists():
        raise AblationsError(
            f"--data {data} does not exist; point it at CIFAR-10 (a cifar-10-batches-py folder, "
            "its .tar.gz, or an ImageFolder tree or .tar.gz) or leave it out to use $ABLATE_DATA "
            "(imagenet profiles: an ImageNet copy, or $ABLATE_DATA_IMAGENET)"
        )
    return Context(results=results, data=data, device=resolve_device(device))
