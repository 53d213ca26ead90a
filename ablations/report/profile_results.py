"""A profile's results, as the training report reads them from results/: its runs on one
dataset, their curves, its layer responses and its replicates (`ProfileResults`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ablations.config import STREAM_DATASETS
from ablations.experiments import EXPERIMENTS
from ablations.profiles import PROFILES
from ablations.report import claims
from ablations.report.nets import members
from ablations.report.recipes import recipe_runs
from ablations.results import schemas

PAPER = "paper"
QUOTED = "cpu"  # the reduced budget whose verdicts the README and the docs pages quote
# The degradation experiment is CIFAR-10's; a profile with runs on several datasets is shown
# on this one (or its most frequent), never averaged across datasets.
PREFERRED_DATASET = "cifar10"


def profile_order(profiles: Iterable[str]) -> list[str]:
    """The paper's protocol first, then the other profiles alphabetically."""
    return sorted(set(profiles), key=lambda p: (p != PAPER, p))


@dataclass(frozen=True)
class ProfileResults:
    """The results of one profile: its runs on one dataset, their curves, its responses."""

    profile: str
    runs: pd.DataFrame  # every status
    curves: pd.DataFrame
    responses: pd.DataFrame
    left_out: pd.DataFrame  # runs of the profile on other datasets
    # results/replicates/<name>/: the same profile's runs made again elsewhere (runs, responses)
    replicates: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)

    @property
    def complete(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "complete"]

    @property
    def dataset(self) -> str:
        """The dataset its runs trained on (one per profile block)."""
        return str(self.runs["dataset"].iloc[0]) if len(self.runs) else ""

    @property
    def reduced(self) -> bool:
        """A budget below the paper's (a profile this version does not know counts as one,
        unless it is `paper`)."""
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
        variants = list(experiment.variants_for(self.profile)) if experiment else []
        runs = members(self.complete, name)
        return runs, [v for v in variants if v not in set(runs["variant"])]

    def replicated(self, experiment: str) -> list[claims.Replicate]:
        """The committed runs of `experiment` and each replicate's (replicates without them
        left out), for claims judged under claims.REPLICATION_RULE."""
        runs, _ = self.experiment(experiment)
        sets = [claims.Replicate("the committed runs", runs, of_runs(self.responses, runs))]
        for name, (replicate, responses) in self.replicates.items():
            mine = members(replicate[replicate["status"] == "complete"], experiment)
            if not mine.empty:
                sets.append(claims.Replicate(f"replicate {name}", mine, of_runs(responses, mine)))
        return sets

    def command(self, experiment: str) -> str:
        return f"`nox -s ablate -- --experiments {experiment} --profile {self.profile}`"


def of_runs(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of `table` (responses, curves) that belong to `runs`."""
    return table[table["run_id"].isin(set(runs["run_id"]))]


def main_dataset(runs: pd.DataFrame) -> str:
    datasets = runs["dataset"].value_counts()
    return PREFERRED_DATASET if PREFERRED_DATASET in datasets else str(datasets.index[0])


def load_replicates(results: Path) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """results/replicates/<name>/, each a results folder of its own (`ablate run --results`):
    its runs and responses, by name."""
    found = {}
    for folder in sorted((results / schemas.REPLICATES_DIR).glob("*")):
        if (folder / schemas.RUNS_FILE).exists():
            runs, _, responses = schemas.load(folder)
            found[folder.name] = (runs, responses)
    return found


def load_profiles(results: Path) -> list[ProfileResults]:
    runs, curves, responses = schemas.load(results)
    replicates = load_replicates(results)
    # Recipe runs have a section of their own; streamed runs (ImageNet, large ImageFolder trees)
    # have no test split, and ImageNet's have their own section.
    streamed = runs["dataset"].isin(STREAM_DATASETS) | (runs["stream"] != "")
    runs = runs[~recipe_runs(runs) & ~streamed]
    loaded = []
    for profile in profile_order(runs["profile"]):
        mine = runs[runs["profile"] == profile]
        dataset = main_dataset(mine)
        shown = mine[mine["dataset"] == dataset]
        left_out = mine[mine["dataset"] != dataset]
        loaded.append(ProfileResults(
            profile=profile, runs=shown, left_out=left_out,
            curves=of_runs(curves, shown),
            responses=responses[(responses["profile"] == profile)
                                & ~responses["run_id"].isin(set(left_out["run_id"]))],
            replicates={name: _same_runs(r, rr, profile=profile, dataset=dataset)
                        for name, (r, rr) in replicates.items()},
        ))  # fmt: skip
    return loaded


def _same_runs(
    runs: pd.DataFrame, responses: pd.DataFrame, *, profile: str, dataset: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A replicate's runs of one profile and dataset (and their responses)."""
    mine = runs[(runs["profile"] == profile) & (runs["dataset"] == dataset) & ~recipe_runs(runs)]
    return mine, of_runs(responses, mine)
