"""The classic ResNet tutorials' setups as named recipes: variant + dataset + training protocol.

A recipe is data: its `TrainConfig` fields at the tutorial's own budget, the accuracy the tutorial
claims, and what we chose where it is silent. The `cpu` and `smoke` budgets shrink it and say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ablations.config import TrainConfig, device_type, resolve_precision
from ablations.registry import AblationsError, get_variant

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Tutorials train on the whole training set and evaluate on the test set after every epoch.
TUTORIAL = {"val_size": 0, "eval_split": "test", "weight_decay": 0.0, "lr_milestones": ()}

BUDGETS: dict[str, Mapping[str, Any]] = {
    "full": {},
    "cpu": {"epochs": 1, "train_size": 5_000, "test_size": 1_000},
    "smoke": {"epochs": 1, "train_size": 64, "test_size": 32, "eval_batch_size": 32},
}
SMOKE_MAX_BATCH = 16
BUDGET_WORDS = {
    "full": "the recipe's own budget",
    "cpu": "a CPU budget: 1 epoch on 5,000 training images, 1,000 test images; NOT the "
    "tutorial's budget, so not comparable to its claim",
    "smoke": "seconds, for tests: 1 epoch on 64 images",
}
# The offline fine-tuning demo: a CIFAR-10-trained resnet18 on a 4-class subset of CIFAR-10.
DEMO_DATA_ID = "cifar10-4class-demo"
DEMO_CLASSES = ("airplane", "automobile", "bird", "cat")
DEMO_PER_CLASS = {"full": (500, 100), "cpu": (100, 50), "smoke": (8, 4)}  # (train, test)


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    tutorial: str  # the setup, in the tutorial's words
    variant: str
    dataset: str
    settings: Mapping[str, Any]  # TrainConfig fields at the tutorial's own budget
    claimed_accuracy: float | None  # test accuracy (%) the tutorial reports; None: no claim
    choices: str = ""  # what the tutorial leaves open and we chose
    # Runs of the recipe that differ in a setting (e.g. with and without augmentation).
    arms: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: {"": {}})
    needs_checkpoint: bool = False  # fine-tuning: init_from must name a checkpoint

    def __post_init__(self) -> None:
        get_variant(self.variant)
        names = {f.name for f in fields(TrainConfig)}
        for where in (self.settings, *self.arms.values()):
            unknown = set(where) - names
            if unknown:
                raise AblationsError(f"recipe {self.name}: unknown setting {sorted(unknown)[0]}")


# Protocol pieces the tutorials share; a recipe's settings are `dict(piece, **its own)`.
ADAM = {**TUTORIAL, "optimizer": "adam", "lr": 1e-3}
SGD = dict(TUTORIAL, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, batch_size=128)


def fixed(mean: tuple[float, ...], std: tuple[float, ...]) -> dict[str, Any]:
    """Normalisation by constants, as tutorials write it."""
    return {"normalize": "fixed", "mean": mean, "std": std}


CIFAR_NORM = fixed(CIFAR_MEAN, CIFAR_STD)

TUTORIALS = (
    Recipe(
        name="cifar-resnet18-adam",
        tutorial="CIFAR-style ResNet-18 (3x3 stem, no maxpool, 64-128-256-512, 4x4 average "
        "pool), Adam lr 1e-3, batch 128, 10 epochs, random crop (pad 4) + flip, "
        "normalised with CIFAR's channel mean/std",
        variant="resnet18-k3",
        dataset="cifar10",
        settings=dict(ADAM, batch_size=128, epochs=10, augment=True, **CIFAR_NORM),
        claimed_accuracy=85.33,
    ),
    Recipe(
        name="fashion-resnet18-d2l",
        tutorial="d2l.ai's textbook ResNet-18 for 1-channel input (7x7/2 stem + maxpool, "
        "biased convs, 1x1 projection without BN where the shape changes) on "
        "Fashion-MNIST resized to 96x96, batch 512, Adam lr 1e-3, 5 epochs",
        variant="resnet18-d2l",
        dataset="fashion-mnist",
        settings=dict(
            ADAM, batch_size=512, epochs=5, input_size=96, augment=False, **fixed((0.0,), (1.0,))
        ),
        claimed_accuracy=None,
        choices="no normalisation beyond /255 (d2l's ToTensor); He-normal conv init (the "
        "suite's) where d2l uses Xavier-uniform",
    ),
    Recipe(
        name="cifar-resnet18-sgd",
        tutorial="CIFAR-style ResNet-18, SGD lr 0.1 momentum 0.9 weight decay 5e-4, batch "
        "128, 135 epochs, normalised with mean/std 0.5; as a second run, with crop + flip",
        variant="resnet18-k3",
        dataset="cifar10",
        settings=dict(SGD, epochs=135, **fixed((0.5,) * 3, (0.5,) * 3)),
        arms={"tutorial": {"augment": False}, "crop-flip": {"augment": True}},
        claimed_accuracy=95.17,
        choices="the tutorial states no learning-rate schedule: lr 0.1 throughout",
    ),
    Recipe(
        name="cifar-resnet14-steplr",
        tutorial="CIFAR ResNet with [2, 2, 2] basic blocks (16/32/64 channels), SGD lr 0.1 "
        "momentum 0.9 weight decay 5e-4, StepLR, 200 epochs, crop + flip",
        variant="resnet14",
        dataset="cifar10",
        settings=dict(
            SGD, epochs=200, lr_milestones=(50, 100, 150), lr_gamma=0.1, augment=True, **CIFAR_NORM
        ),
        claimed_accuracy=94.72,
        choices="StepLR's step is not stated: every 50 epochs, gamma 0.1; batch 128; CIFAR's "
        "channel mean/std; option-A (zero-padding) shortcuts, the paper's CIFAR choice",
    ),
    Recipe(
        name="finetune-resnet18-frozen",
        tutorial="transfer learning on an ImageFolder dataset: a ResNet-18 checkpoint, "
        "backbone frozen, a new final linear layer for the dataset's classes trained alone "
        "with Adam lr 1e-3, batch 15, images resized to 500 and centre-cropped to 224",
        variant="resnet18",
        dataset="imagefolder",
        settings=dict(
            ADAM,
            batch_size=15,
            epochs=10,
            resize=500,
            crop=224,
            augment=False,
            **fixed(IMAGENET_MEAN, IMAGENET_STD),
            freeze="backbone",
            init_from="torchvision:IMAGENET1K_V1",
            eval_batch_size=50,
        ),
        claimed_accuracy=None,
        needs_checkpoint=True,
        choices="10 epochs (not stated); the frozen backbone stays in eval mode (its "
        "BatchNorm statistics are not updated either); offline, the checkpoint is this "
        "suite's resnet18 trained on CIFAR-10 and the data a 4-class CIFAR-10 subset",
    ),
)
RECIPES: dict[str, Recipe] = {r.name: r for r in TUTORIALS}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise AblationsError(f"unknown recipe {name!r}; choose from: {', '.join(RECIPES)}")
    return RECIPES[name]


def execution(recipe: Recipe, device: str) -> dict[str, Any]:
    """How a recipe runs on `device`: bf16 autocast and channels_last on a GPU, as the paper
    profile (the tutorials ran their GPU's defaults); fp32 NCHW on a CPU. A recipe whose point is
    fp32 numerics says `precision="fp32"` in its settings."""
    precision = resolve_precision(str(recipe.settings.get("precision", "auto")), device)
    return {"precision": precision, "channels_last": device == "cuda", "device": device}


def resolve_recipe(
    name: str, *, profile: str | None = None, seed: int = 0, arm: str | None = None,
    device: str | None = None, **overrides: Any,
) -> TrainConfig:  # fmt: skip
    """The config of one arm (the first by default) of recipe `name` under a budget, for the
    kind of `device` (default: this machine's): how it runs there (`execution`) <- the recipe's
    settings <- the arm's <- the budget's shrink <- explicit overrides."""
    recipe = get_recipe(name)
    budget = profile or ("full" if device_type(None) == "cuda" else "cpu")
    if budget not in BUDGETS:
        raise AblationsError(
            f"recipes run under the budgets {', '.join(BUDGETS)}, not {budget!r}; "
            "use --profile full for the tutorial's own"
        )
    arm_name = next(iter(recipe.arms)) if arm is None else arm
    if arm_name not in recipe.arms:
        raise AblationsError(f"recipe {name} has arms {', '.join(recipe.arms)}, not {arm_name!r}")
    settings = {
        **recipe.settings, **execution(recipe, device_type(device)), **recipe.arms[arm_name],
        **BUDGETS[budget],
    }  # fmt: skip
    if budget == "smoke":
        settings["batch_size"] = min(settings["batch_size"], SMOKE_MAX_BATCH)
    settings.update(overrides)
    return TrainConfig(
        variant=recipe.variant, dataset=recipe.dataset, profile=budget, seed=seed, recipe=name,
        arm=arm_name or None, **settings,
    )  # fmt: skip


def recipe_configs(
    name: str, *, profile: str, seeds: int = 1, device: str | None = None
) -> list[TrainConfig]:
    """Every arm x seed of recipe `name` under a budget, for the kind of `device`."""
    return [
        resolve_recipe(name, profile=profile, seed=s, arm=a, device=device)
        for a in get_recipe(name).arms
        for s in range(seeds)
    ]


def budget_for(profile: str) -> str:
    """The recipe budget an experiment profile runs them at (paper -> the tutorials' own)."""
    return "full" if profile == "paper" else profile


def demo_data(*, cifar: str | Path | None, budget: str) -> Path:
    """The offline fine-tuning demo's ImageFolder: DEMO_CLASSES of CIFAR-10, written once into
    the data cache (a deterministic draw, so every machine builds the same tree)."""
    from ablations.data import default_cache_dir, make_subset

    train, test = DEMO_PER_CLASS[budget]
    out = default_cache_dir() / "subsets" / f"{DEMO_DATA_ID}-{train}-{test}"
    if not out.exists():
        make_subset(
            "cifar10", data=cifar, out=out, classes=DEMO_CLASSES, train_per_class=train,
            test_per_class=test, seed=0,
        )  # fmt: skip
    return out
