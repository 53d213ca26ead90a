"""Recipes: every recipe trains at the smoke budget; fine-tuning changes the head only; the
report judges claims only at the recipe's own budget."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from ablations import recipes
from ablations.cli import main
from ablations.cli.options import TRAIN_OVERRIDES
from ablations.cli.parser import build_parser
from ablations.cli.train_commands import train_config
from ablations.data import load_dataset, write_subset
from ablations.models import create_model
from ablations.recipes import RECIPES, resolve_recipe
from ablations.registry import AblationsError
from ablations.report.recipes import recipe_table, verdict
from ablations.results.schemas import RUNS
from ablations.tasks import plan, train_command
from ablations.train.evaluation import evaluate_metrics
from ablations.train.run import train
from ablations.versions import TRAINER_VERSION
from ablations.weights import finetune

ARMS = [(r.name, arm) for r in RECIPES.values() for arm in r.arms]
FROM_SCRATCH = [(name, arm) for name, arm in ARMS if not RECIPES[name].needs_checkpoint]


@pytest.mark.parametrize(("name", "arm"), ARMS)
@pytest.mark.parametrize("budget", list(recipes.BUDGETS))
def test_every_recipe_resolves_under_every_budget(name, arm, budget):
    config = resolve_recipe(name, profile=budget, arm=arm)
    recipe = RECIPES[name]
    assert (config.recipe, config.variant, config.dataset) == (name, recipe.variant, recipe.dataset)
    assert config.profile == budget and f"_{budget}_" in config.run_id  # a shrunk run says so
    if budget == "full":  # the recipe's own protocol, untouched
        for key, value in {**recipe.settings, **recipe.arms[arm]}.items():
            assert getattr(config, key) == value, key
    else:
        assert config.epochs is not None and config.epochs <= recipe.settings["epochs"]


def test_arms_and_budgets_give_distinct_runs():
    ids = {resolve_recipe(n, profile=b, arm=a).run_id for n, a in ARMS for b in recipes.BUDGETS}
    assert len(ids) == len(ARMS) * len(recipes.BUDGETS)


def test_unknown_recipe_arm_or_budget_is_refused():
    with pytest.raises(AblationsError, match="choose from"):
        resolve_recipe("cifar-resnet18")
    with pytest.raises(AblationsError, match="arms tutorial, crop-flip"):
        resolve_recipe("cifar-resnet18-sgd", arm="nope")
    with pytest.raises(AblationsError, match="--profile full"):
        resolve_recipe("cifar-resnet18-adam", profile="paper")


def test_epoch_budgets_become_iterations():
    config = resolve_recipe("cifar-resnet14-steplr", profile="full")
    iterations, milestones, every = config.schedule(steps_per_epoch=390)
    assert iterations == 200 * 390 and milestones == (50 * 390, 100 * 390, 150 * 390)
    assert every == 390  # evaluated once per epoch, as the tutorials do


@pytest.fixture
def data_for(tiny_cifar, tiny_fashion):
    return {"cifar10": tiny_cifar, "fashion-mnist": tiny_fashion}


@pytest.mark.parametrize(("name", "arm"), FROM_SCRATCH)
def test_recipe_trains_at_the_smoke_budget(tmp_path, data_for, name, arm):
    config = resolve_recipe(name, profile="smoke", arm=arm)
    record = train(config, out=tmp_path, data=data_for[config.dataset], device="cpu",
                   show_progress=False)  # fmt: skip
    s = record.summary
    assert s["status"] == "complete" and s["recipe"] == name and s["profile"] == "smoke"
    assert s["iterations"] == s["steps_per_epoch"] == 64 // config.batch_size
    # Tutorials' records: a checkpoint and the best-so-far (on test, and named so).
    assert (record.run_dir / "model.pt").exists() and (record.run_dir / "best.pt").exists()
    assert 0 <= s["best_test_error"] <= 1 and "val_error" not in s
    curves = record.curves
    tested = curves[(curves["split"] == "test") & (curves["metric"] == "error")]
    assert tested["iteration"].is_unique  # the last evaluation is not repeated as "final"


@pytest.fixture
def four_class_folder(tmp_path, tiny_cifar):
    return write_subset(
        load_dataset("cifar10", data=tiny_cifar), out=tmp_path / "four",
        classes=recipes.DEMO_CLASSES, train_per_class=8, test_per_class=4,
    )  # fmt: skip


def test_finetuning_changes_the_head_and_nothing_else(tmp_path, four_class_folder):
    torch.manual_seed(123)
    source = create_model("resnet18", num_classes=10).state_dict()
    for key, tensor in source.items():  # non-trivial BN statistics, to see them kept
        if key.endswith("running_mean"):
            tensor.uniform_(-0.1, 0.1)
        elif key.endswith("running_var"):
            tensor.uniform_(0.5, 1.5)
    torch.save(source, tmp_path / "source.pt")
    config = resolve_recipe(
        "finetune-resnet18-frozen", profile="smoke", init_from=str(tmp_path / "source.pt"),
        data_id="four", resize=40, crop=32,  # small images keep the test fast
    )  # fmt: skip
    record = train(config, out=tmp_path / "runs", data=four_class_folder, device="cpu",
                   show_progress=False)  # fmt: skip
    tuned = torch.load(record.run_dir / "model.pt", weights_only=True)
    backbone = [k for k in tuned if not k.startswith("fc.")]
    assert backbone and all(torch.equal(tuned[k], source[k]) for k in backbone)
    torch.manual_seed(config.seed)  # the head as build_model initialised it
    initial_head = create_model("resnet18", num_classes=4).fc
    assert tuned["fc.weight"].shape == (4, 512)
    assert not torch.equal(tuned["fc.weight"], initial_head.weight)
    assert not torch.equal(tuned["fc.bias"], initial_head.bias)
    assert record.summary["trainable_params"] == 512 * 4 + 4
    assert record.summary["init_sha256"] and record.summary["init_from"] == "source.pt"  # no path


def test_evaluation_never_changes_the_model():
    model = create_model("resnet20").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))]
    evaluate_metrics(model, iter(batches), precision="fp32")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training  # and leaves the mode as it found it


def test_a_frozen_backbone_stays_in_eval_mode():
    model = create_model("resnet18")
    finetune.train_mode(model, freeze="backbone")
    assert model.fc.training and not model.layer1.training and not model.bn1.training


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    torch.save(create_model("resnet20").state_dict(), tmp_path / "other.pt")
    with pytest.raises(AblationsError, match="does not fit resnet18"):
        finetune.load_backbone(create_model("resnet18"), str(tmp_path / "other.pt"),
                               runs_dir=tmp_path)  # fmt: skip


def test_pipeline_demo_trains_its_checkpoint_first():
    tasks = plan(["recipes"], profile="smoke", device=torch.device("cpu"))
    ids = [t.config.run_id for t in tasks]
    tune = next(t.config for t in tasks if t.config.recipe == "finetune-resnet18-frozen")
    assert tune.init_from.startswith("run:") and tune.data_id == recipes.DEMO_DATA_ID
    source = tune.init_from.removeprefix("run:")
    assert ids.index(source) < ids.index(tune.run_id)
    assert len(tasks) == len(ARMS) + 1


def test_plan_commands_reproduce_recipe_configs():
    for task in plan(["recipes"], profile="cpu", device=torch.device("cpu")):
        command = train_command(task.config, results=Path("results"))
        args = build_parser().parse_args(shlex.split(command)[1:])
        fixed = ("variant", "seed", "profile", "dataset", "recipe", "arm")
        overrides = {k: getattr(args, k) for k in TRAIN_OVERRIDES if hasattr(args, k)}
        assert not set(overrides) & set(fixed)
        assert train_config(args) == task.config, command


def test_cli_lists_recipes_and_refuses_bad_input(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in RECIPES) and "85.33%" in out
    assert main(["train", "--recipe", "nope"]) == 2
    assert "choose from" in capsys.readouterr().err
    assert main(["train", "resnet20", "--recipe", "cifar-resnet18-adam"]) == 2
    assert "give a variant or --recipe" in capsys.readouterr().err
    assert main(["train", "--recipe", "finetune-resnet18-frozen", "--profile", "smoke"]) == 2
    assert "needs --data DIR" in capsys.readouterr().err


def _row(**values):
    blank = {"str": "", "int": 0, "float": float("nan"), "bool": True}
    row = {column: blank[kind] for column, kind in RUNS.columns.items()}
    row |= {"status": "complete", "seed": 0, "epochs": 10, "train_images": 50_000,
            "params": 11_173_962, "trainable_params": 11_173_962, "macs": 555_422_720,
            "train_s": 100.0, "machine": "m", "arm": ""}  # fmt: skip
    row |= values
    return row | {"run_id": f"{row['recipe']}_{row['profile']}_s{row['seed']}"}


def test_report_judges_claims_only_at_the_recipes_own_budget():
    runs = pd.DataFrame([
        _row(recipe="cifar-resnet18-adam", profile="full", test_error=0.14, best_test_error=0.13),
        _row(recipe="cifar-resnet18-adam", profile="full", test_error=0.16, best_test_error=0.15,
             seed=1),
        _row(recipe="cifar-resnet14-steplr", profile="full", test_error=0.10,
             best_test_error=0.09),
        _row(recipe="cifar-resnet18-adam", profile="cpu", test_error=0.6, best_test_error=0.6),
    ])  # fmt: skip
    table = recipe_table(RUNS.validate(runs)).set_index("budget run")
    full = table.loc["full: 10 epochs x 50,000 images"]
    adam = full[full["recipe"] == "cifar-resnet18-adam"].iloc[0]
    assert adam["test accuracy (final)"] == "85.0 ± 1.4%"
    assert adam["verdict"] == "reproduced (-0.33 points)"
    steplr = full[full["recipe"] == "cifar-resnet14-steplr"].iloc[0]
    assert steplr["verdict"] == "**not reproduced (-4.72 points)**"
    assert table.loc["cpu: 10 epochs x 50,000 images", "verdict"] == "not comparable (cpu budget)"
    assert verdict(90.0, None, budget="full") == "no claim to check"


def test_resumed_run_must_use_the_same_data(tmp_path, tiny_cifar, four_class_folder):
    config = replace(
        resolve_recipe("cifar-resnet14-steplr", profile="smoke"), dataset="imagefolder",
        data_id="x", normalize="pixel-mean", mean=(), std=(),
    )  # fmt: skip
    directory = tmp_path / config.run_id
    directory.mkdir()
    start = {"data": {"checksum": "0000"}, "trainer_version": TRAINER_VERSION}  # not stale
    (directory / "env.json").write_text(json.dumps([start]))
    with pytest.raises(AblationsError, match="started on other data"):
        train(config, out=tmp_path, data=four_class_folder, device="cpu", show_progress=False)


def test_every_recipe_runs_end_to_end_at_the_smoke_budget(tmp_path, tiny_cifar, tiny_fashion,
                                                          monkeypatch):  # fmt: skip
    """`ablate run --experiments recipes --profile smoke`: the four from-scratch recipes, and
    the offline fine-tuning demo at its real 500/224 preprocessing, recorded and reported."""
    monkeypatch.setenv("ABLATE_DATA_FASHION_MNIST", str(tiny_fashion))
    results, reports = tmp_path / "results", tmp_path / "reports"
    argv = ["run", "--experiments", "recipes", "--profile", "smoke", "--data", str(tiny_cifar),
            "--results", str(results), "--reports", str(reports), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    runs = pd.read_csv(results / "runs.csv")
    assert set(runs["recipe"].dropna()) == set(RECIPES)
    tuned = runs[runs["recipe"] == "finetune-resnet18-frozen"].iloc[0]
    assert tuned["input_size"] == 224 and tuned["trainable_params"] == 512 * 4 + 4
    assert "## Recipes" in (reports / "README.md").read_text()


def test_evaluation_keeps_a_frozen_backbone_in_eval_mode():
    model = create_model("resnet18")
    finetune.train_mode(model, freeze="backbone")
    evaluate_metrics(
        model, iter([(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))]), precision="fp32"
    )
    assert model.fc.training and not model.layer1.training and not model.bn1.training
