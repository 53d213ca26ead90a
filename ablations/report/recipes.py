"""The recipes section: each tutorial recipe's final test accuracy beside its claim, judged
only at the recipe's own budget. The best-on-test accuracy the tutorials print is shown too,
labelled: choosing the best epoch on the test set selects on it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations.experiments import RECIPES_EXPERIMENT
from ablations.recipes import BUDGET_WORDS, RECIPES
from ablations.report.tables import Section, distinct, markdown_table, percent
from ablations.results import schemas
from ablations.results.table import read_table

BUDGET_ORDER = ("full", "cpu", "smoke")
# Within this many points of the claim counts as reproduced (seed-to-seed spread of a CIFAR-10
# ResNet is a few tenths of a point; one point leaves room for the protocol's unstated details).
TOLERANCE = 1.0


def verdict(measured: float, claimed: float | None, *, budget: str) -> str:
    """What the measured accuracy (%) says about the claim (%)."""
    if claimed is None:
        return "no claim to check"
    if budget != "full":
        return f"not comparable ({budget} budget)"
    gap = measured - claimed
    if gap >= -TOLERANCE:
        return f"reproduced ({gap:+.2f} points)"
    return f"**not reproduced ({gap:+.2f} points)**"


def _order(budget: str, recipe: str, arm: str) -> tuple[int, int, int]:
    """Budgets as BUDGET_ORDER, recipes and arms as declared; unknown ones last."""
    known = list(RECIPES)
    arms = list(RECIPES[recipe].arms) if recipe in RECIPES else []
    return (
        BUDGET_ORDER.index(budget) if budget in BUDGET_ORDER else len(BUDGET_ORDER),
        known.index(recipe) if recipe in known else len(known),
        arms.index(arm) if arm in arms else len(arms),
    )


def recipe_runs(runs: pd.DataFrame) -> pd.Series:
    """Which rows of runs.csv are the recipes': a recipe's own runs (`recipe` set), and runs
    planned for the recipes experiment alone (the fine-tuning demo's source net, an ordinary
    profile run). A run also planned for an experiment (the stems' resnet18) stays in it."""
    planned = runs["experiments"].astype(str).str.split(",")
    only_recipes = planned.map(lambda names: set(names) == {RECIPES_EXPERIMENT})
    return (runs["recipe"] != "") | only_recipes.astype(bool)


def recipe_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per recipe arm and budget, complete runs only, seeds pooled."""
    rows = []
    done = runs[(runs["recipe"] != "") & (runs["status"] == "complete")]
    for (budget, recipe, arm), group in done.groupby(["profile", "recipe", "arm"], sort=False):
        accuracy = 100 * (1 - group["test_error"])
        best = 100 * (1 - group["best_test_error"])
        claimed = RECIPES[recipe].claimed_accuracy if recipe in RECIPES else None
        n, first = len(group), group.iloc[0]
        epochs = f"{first['epochs']} epoch{'s' if first['epochs'] != 1 else ''}"
        params, trained = int(first["params"]), int(first["trainable_params"])
        rows.append({
            "recipe": recipe + (f" ({arm})" if arm else ""), "_order": _order(budget, recipe, arm),
            "budget run": f"{budget}: {epochs} x {first['train_images']:,} images",
            "test accuracy (final)": percent(accuracy.mean() / 100, accuracy.std() / 100, seeds=n),
            "best-on-test (selects on test)": percent(best.mean() / 100, best.std() / 100, seeds=n),
            "claimed": "-" if claimed is None else f"{claimed:.2f}%",
            "verdict": verdict(accuracy.mean(), claimed, budget=budget),
            "params": f"{params / 1e6:.2f}M"
            + (f" ({trained:,} trained)" if trained != params else ""),
            "GMACs": f"{first['macs'] / 1e9:.3f}",
            "training time": f"{group['train_s'].mean():,.0f} s",
            "machine": distinct(group["machine"]),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values("_order", kind="stable").drop(columns="_order")


def recipes_section(results: Path) -> Section:
    runs = read_table(results / schemas.RUNS_FILE, schemas.RUNS)
    if runs.empty:  # the overview says how to produce runs
        return Section("")
    table = recipe_table(runs)
    if table.empty:
        return Section(
            "## Recipes\n\nNo recipe runs yet: `nox -s ablate -- --experiments recipes` (or "
            "`ablate train --recipe NAME`; `ablate recipes` lists them).\n"
        )
    budgets = [b for b in BUDGET_ORDER if b in set(runs.loc[runs["recipe"] != "", "profile"])]
    words = "\n".join(f"- `{b}`: {BUDGET_WORDS[b]}" for b in budgets)
    reduced = [b for b in budgets if b != "full"]
    warning = (
        f"**Runs at the {', '.join(reduced)} budget are not the tutorials' protocol: their "
        "accuracies are not comparable to the claims.**\n\n"
        if reduced
        else ""
    )
    text = f"""## Recipes

{warning}The classic ResNet tutorials' setups (`ablate recipes -v` lists each one's protocol and
the choices made where it is silent), trained by the same runner as every other run. Test
accuracy is the final one on the test set; "best-on-test" is the best after any epoch, as the
tutorials print it, which selects on the test set. A claim counts as reproduced within
{TOLERANCE:g} point, and is judged only at the tutorial's own budget. Params and GMACs (fvcore,
at the training input size) are the network's; training time excludes evaluation.

Budgets:
{words}

{markdown_table(table)}
"""
    return Section(text)
