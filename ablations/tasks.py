"""What `ablate run` plans (experiments x profile x seeds -> tasks), the context it runs them
in, where a run's data is, and the `ablate train` command that reproduces a run elsewhere."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ablations import recipes
from ablations.config import STREAM_DATASETS, TrainConfig, resolve_config, resolve_device
from ablations.experiments import EXPERIMENTS
from ablations.measure import throughput
from ablations.profiles import dataset_of, get_profile
from ablations.registry import AblationsError
from ablations.results import schemas

ORDER = {"complexity": 0, "train": 1, "responses": 2, "throughput": 3}
# The fields train_command always gives (the dataset where it is not the profile's).
SPELLED_OUT = ("variant", "profile", "seed", "dataset", "recipe", "arm", "device")


@dataclass(frozen=True)
class Task:
    """One unit of work: a training run, or one table brought up to date."""

    kind: str  # "complexity" | "train" | "responses" | "throughput"
    label: str
    experiments: tuple[str, ...]
    config: TrainConfig | None = None  # train
    configs: tuple[TrainConfig, ...] = ()  # responses: the runs to measure
    settings: tuple[throughput.Setting, ...] = ()  # throughput


@dataclass(frozen=True)
class Context:
    results: Path
    data: str | Path | None
    device: torch.device
    # A time.monotonic() instant: each run stops at its first checkpoint past it, and no task
    # starts after it (`ablate run --time-limit`).
    deadline: float | None = None

    @property
    def runs_dir(self) -> Path:
        return self.results / schemas.RUNS_DIR


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
        runs = recipes.recipe_configs(recipe.name, profile=budget, seeds=seeds, device=device.type)
        for config in runs:
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
        what = ["--recipe", config.recipe] + (["--arm", config.arm] if config.arm else [])
        defaults = recipes.resolve_recipe(
            config.recipe, profile=config.profile, seed=config.seed, arm=config.arm,
            device=config.device,
        )  # fmt: skip
    else:
        what = [config.variant]
        defaults = resolve_config(
            config.variant, profile=config.profile, seed=config.seed, device=config.device
        )
    # The device is always spelled out: "auto" would resolve to the machine the command runs on,
    # and the device is part of the run's key. So is precision: a profile's "auto" resolves per
    # machine.
    args = ["ablate", "train", *what, "--profile", config.profile, "--seed", str(config.seed),
            "--device", config.device, "--out", str(results / schemas.RUNS_DIR)]  # fmt: skip
    for key, value in config.to_json().items():
        if key in SPELLED_OUT or (value == getattr(defaults, key) and key != "precision"):
            continue
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, list | tuple):
            args += [flag, ",".join(map(str, value))]
        else:
            args += [flag, str(value)]
    if config.dataset != dataset_of(config.profile) and config.recipe is None:
        args += ["--dataset", config.dataset]
    return shlex.join(args)


def context(
    *, results: Path, data: str | Path | None, device: str | torch.device | None,
    deadline: float | None = None,
) -> Context:  # fmt: skip
    # Checked up front: a run with nothing missing never reads the data, and a typo in --data
    # should not pass silently there only to fail in a later run.
    if data is not None and not Path(data).expanduser().exists():
        raise AblationsError(
            f"--data {data} does not exist; point it at CIFAR-10 (a cifar-10-batches-py folder, "
            "its .tar.gz, or an ImageFolder tree or .tar.gz) or leave it out to use $ABLATE_DATA "
            "(imagenet profiles: an ImageNet copy, or $ABLATE_DATA_IMAGENET)"
        )
    return Context(results=results, data=data, device=resolve_device(device), deadline=deadline)
