"""A profile's results, as the training report reads them from results/: its runs on one
dataset, their curves, its layer responses and its replicates (`ProfileResults`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ablations.config import STREAM_DATASETS
from ablations.experiments import EXPERIMENTS
from ablations.profiles import PROFILES
from ablations.report import claims
from ablations.report.recipes import recipe_runs
from ablations.report.tables import members
from ablations.results import schemas

PAPER = "paper"
QUOTED = "cpu"  # the reduced budget whose verdicts the README and the docs pages quote
# The degradation experiment is CIFAR-10's; a profile with runs on several datasets is shown
# on this one (or its most frequent), never averaged across datasets.
PREFERRED_DATASET = "cifar10"


def profile_heading(profile: str, *, reduced: bool, choices: Iterable[tuple[str, str]]) -> str:
    """A profile's opening words: a reduced budget says first that only its trends compare; a
    full one lists the `choices` (topic, choice) made where the paper is silent."""
    known = PROFILES.get(profile)
    description = known.description if known else "not a profile of this version"
    if reduced:
        return (
            f"**Profile `{profile}` is a reduced budget: its numbers are not comparable to the "
            f"paper's; only the trends are.** {description[:1].upper()}{description[1:]}."
        )
    listed = "\n".join(f"- {topic}: {choice}" for topic, choice in choices)
    where = f"\n\nWhere the paper is silent, this suite chose:\n\n{listed}" if listed else ""
    return f"Profile `{profile}`: {description}.{where}"


def profile_order(profiles: Iterable[str]) -> list[str]:
    """The paper's protocol first, then the other profiles alphabetically."""
    return sorted(set(profiles), key=lambda p: (p != PAPER, p))


def of_runs(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of `table` (responses, curves) that belong to `runs`."""
    return table[table["run_id"].isin(set(runs["run_id"]))]


@dataclass(frozen=True)
class ProfileResults:
    """The results of one profile: its runs on one dataset, their curves, its responses."""

    profile: str
    dataset: str
    runs: pd.DataFrame  # every status, on `dataset`
    curves: pd.DataFrame
    responses: pd.DataFrame
    left_out: pd.DataFrame  # runs of the profile on other datasets
    # results/replicates/<name>/: the same runs made again elsewhere, (runs, responses) by name
    replicates: dict[str, tuple[pd.DataFrame, pd.DataFrame]]

    @property
    def complete(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "complete"]

    @property
    def reduced(self) -> bool:
        """A budget below the paper's (so is a profile this version does not know, but `paper`)."""
        known = PROFILES.get(self.profile)
        return known.reduced if known is not None else self.profile != PAPER

    def name(self, figure: str) -> str:
        """A figure's file name (no extension) for this profile."""
        return f"{figure}_{re.sub(r'[^A-Za-z0-9_.-]', '_', self.profile)}"

    def experiment(self, name: str) -> tuple[pd.DataFrame, list[str]]:
        """(complete runs planned for the experiment under this profile, its variants not run).
        Membership is what each run recorded (runs.csv's `experiments`), never a guess from
        variant names: the fine-tuning demo's resnet18 is no run of the stems experiment."""
        experiment = EXPERIMENTS.get(name)
        variants = experiment.variants_for(self.profile) if experiment else ()
        runs = members(self.complete, name)
        return runs, [v for v in variants if v not in set(runs["variant"])]

    def replicated(self, experiment: str) -> list[claims.Replicate]:
        """The committed runs of `experiment`, then each replicate's that has some."""
        runs, _ = self.experiment(experiment)
        sets = [claims.Replicate("the committed runs", runs, of_runs(self.responses, runs))]
        for name, (replicate, responses) in self.replicates.items():
            same = (replicate["profile"] == self.profile) & (replicate["dataset"] == self.dataset)
            mine = members(replicate[same & (replicate["status"] == "complete")], experiment)
            mine = mine[~recipe_runs(mine)]
            if not mine.empty:
                sets.append(claims.Replicate(f"replicate {name}", mine, of_runs(responses, mine)))
        return sets


def load_profiles(results: Path) -> list[ProfileResults]:
    """Each profile's results in `results`, in `profile_order`."""
    runs, curves, responses = schemas.load(results)
    replicates = {}
    for folder in sorted((results / schemas.REPLICATES_DIR).glob("*")):
        if (folder / schemas.RUNS_FILE).exists():  # a results folder of its own
            replicate, _, replicate_responses = schemas.load(folder)
            replicates[folder.name] = (replicate, replicate_responses)
    # Recipe runs have a section of their own; streamed runs (ImageNet, large ImageFolder trees)
    # have no test split, and ImageNet's have their own section.
    streamed = runs["dataset"].isin(STREAM_DATASETS) | (runs["stream"] != "")
    runs = runs[~recipe_runs(runs) & ~streamed]
    loaded = []
    for profile in profile_order(runs["profile"]):
        mine = runs[runs["profile"] == profile]
        counts = mine["dataset"].value_counts()
        dataset = PREFERRED_DATASET if PREFERRED_DATASET in counts else str(counts.index[0])
        shown, left_out = mine[mine["dataset"] == dataset], mine[mine["dataset"] != dataset]
        left = responses["run_id"].isin(set(left_out["run_id"]))
        measured = responses[(responses["profile"] == profile) & ~left]
        curves_shown = of_runs(curves, shown)
        loaded.append(
            ProfileResults(profile, dataset, shown, curves_shown, measured, left_out, replicates)
        )
    return loaded
