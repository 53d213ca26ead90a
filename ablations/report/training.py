"""The training report: one block per profile in runs.csv, `paper` first.

A profile's block is a list of sections (PROFILE_SECTIONS), each a function of the profile's
results (`ProfileResults`) returning Markdown and figures; a section whose runs are missing
says how to produce them. Figure files are suffixed by the profile (`degradation_cpu.png`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ablations.config import STREAM_DATASETS
from ablations.experiments import EXPERIMENTS
from ablations.profiles import PAPER_CHOICES, PROFILES
from ablations.report import claims, figures, tables
from ablations.report.recipes import recipe_runs
from ablations.report.tables import Section, markdown_table
from ablations.results import schemas

PAPER = "paper"
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


def members(runs: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The runs that recorded `experiment` among the experiments they were planned for."""
    planned = runs["experiments"].astype(str).str.split(",")
    return runs[planned.map(lambda names: experiment in names).astype(bool)]  # bool when empty


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


def bullets(lines: Iterable[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def heading_section(p: ProfileResults) -> Section:
    """The profile's heading; a reduced budget says first that only its trends compare."""
    profile = PROFILES.get(p.profile)
    description = profile.description if profile else "not a profile of this version"
    if p.reduced:
        first = (f"**Profile `{p.profile}` is a reduced budget: its numbers are not comparable "
                 f"to the paper's; only the trends are.** "
                 f"{description[:1].upper()}{description[1:]}.")  # fmt: skip
    else:
        choices = "\n".join(f"- {topic}: {choice}" for topic, choice in PAPER_CHOICES)
        first = (f"Profile `{p.profile}`: {description}.\n\nWhere the paper is silent, this "
                 f"suite chose:\n\n{choices}")  # fmt: skip
    return Section(f"## Training: profile `{p.profile}`\n\n{first}\n")


def runs_section(p: ProfileResults) -> Section:
    """What was run: counts, seeds, machines, device, precision, data, commits, and any mix."""
    facts = tables.run_facts(p.runs)
    if len(p.left_out):
        facts.append(
            f"**{len(p.left_out)} runs on other datasets "
            f"({', '.join(sorted(set(p.left_out['dataset'])))}) are left out of this profile's "
            f"sections, which show {p.runs['dataset'].iloc[0]} only.**"
        )
    return Section(f"### What was run\n\n{bullets(facts)}\n")


def _held_out_words(p: ProfileResults, runs: pd.DataFrame) -> str:
    """What the bold curves and the error columns are, from the runs' own curves."""
    splits = set(figures.held_out_split(of_runs(p.curves, runs)))
    words = []
    if "test" in splits:
        words.append(
            "test error: the 10k test images, evaluated during training as in the paper's "
            "Fig. 6 (the bold curves), with no validation split held out"
        )
    if "val" in splits:
        words.append(
            "validation error: the images held out of the training set, evaluated during "
            "training (the bold curves: validation, not Fig. 6's test curves); test error: the "
            "10k test images, evaluated once, at the end"
        )
    text = "; ".join(words)
    return f"{text[:1].upper()}{text[1:]}." if words else ""


def degradation_section(p: ProfileResults) -> Section:
    """The paper's Fig. 6 and Table 6: claims, curves, errors against depth, the tables."""
    runs, missing = p.experiment("degradation")
    title = "### Degradation (Fig. 6, Table 6)"
    if runs.empty:
        return Section(f"{title}\n\nNo complete runs of the degradation experiment: "
                       f"{p.command('degradation')}.\n")  # fmt: skip
    not_run = f" Not run yet: {', '.join(missing)}." if missing else ""
    text = f"""{title}

Nets: {", ".join(figures.paper_name(v) for v in dict.fromkeys(runs["variant"]))}.{not_run}
The paper's claims, judged from the complete runs on the final training error (the running
error over the last evaluation interval; Fig. 7's claim on the layer responses).
Rule: {claims.RULE}.{replication_words(p)}

![Training and held-out error against iterations]({p.name("degradation")}.png)

![Final errors against depth]({p.name("depth")}.png)

{_held_out_words(p, runs)}

{markdown_table(tables.degradation_table(runs))}

{_table6_words(p, runs)}
"""
    return Section(text, {
        p.name("degradation"): figures.degradation_figure(runs, p.curves),
        p.name("depth"): figures.depth_figure(runs),
    })  # fmt: skip


def replication_words(p: ProfileResults) -> str:
    """The verdict lines under the replication rule and, with replicates, their table."""
    sets = p.replicated("degradation")
    lines = bullets(claims.replicated_verdicts(sets))
    if len(sets) == 1:
        return f"\n\n{lines}"
    return (f" Replication: {claims.REPLICATION_RULE}.\n\n{lines}\n\n"
            f"{markdown_table(claims.replication_table(sets))}")  # fmt: skip


def _table6_words(p: ProfileResults, runs: pd.DataFrame) -> str:
    """Table 6 beside the paper and public reproductions, under a full-budget profile only."""
    if p.reduced:
        return ("The paper's numbers (Table 6) and public reproductions are not comparable at "
                "this budget, so they are not shown.")  # fmt: skip
    data = tables.distinct(tables.data_label(runs))
    notes = bullets(tables.reproduction_notes())
    return f"""#### Table 6 side by side

Test error (%) of the residual nets: the paper's Table 6 and a public reproduction, as each
source gives it, beside ours (best of our N seeds, and mean ± std over them). Ours come from
{data}; the published numbers from the original images. A JPEG copy of CIFAR-10 is a real shift
(lossy, 4:2:0 chroma), so a difference there is partly the data: measured, never tuned away.

{markdown_table(tables.table6(runs))}

{notes}
"""


def _ablation_section(p: ProfileResults, *, experiment: str, title: str, axis: str) -> Section:
    """A table of an ablation experiment's runs (by membership); only a line when it has not
    been run."""
    runs, missing = p.experiment(experiment)
    if runs.empty:
        return Section(f"### {title}\n\nNot run under this profile: {p.command(experiment)}.\n")
    not_run = f"\n\nNot run yet: {', '.join(missing)}." if missing else ""
    text = (f"### {title}\n\n{EXPERIMENTS[experiment].description}.{not_run}\n\n"
            f"{markdown_table(tables.ablation_table(runs, axis=axis))}\n")  # fmt: skip
    return Section(text)


def shortcuts_section(p: ProfileResults) -> Section:
    return _ablation_section(p, experiment="shortcuts", title="Shortcut options", axis="shortcut")


def stems_section(p: ProfileResults) -> Section:
    return _ablation_section(p, experiment="stems", title="Stems", axis="stem")


def tradeoff_section(p: ProfileResults) -> Section:
    """Test error against MACs and measured images/s over all the profile's complete runs."""
    title = "### Cost and accuracy"
    runs = p.complete
    if runs.empty:
        return Section(f"{title}\n\nNo complete runs.\n")
    gaps = "".join(
        f" {n} of {runs['variant'].nunique()} variants have no recorded {what} (runs recorded "
        "before it was stored) and are missing from that panel."
        for what, n in (
            (name, runs.loc[runs[column] <= 0, "variant"].nunique())
            for name, column in (("MACs", "macs"), ("images/s", "images_per_s"))
        )
        if n
    )
    machines = runs["machine"].nunique()
    speed = (
        f" **The runs come from {machines} machines, so their images/s do not compare.**"
        if machines > 1
        else ""
    )
    text = f"""{title}

Final test error against MACs per image (fvcore, at the training input size) and against the
training images/s measured during each run on its machine (median over evaluation intervals),
one point per variant, mean over seeds.{gaps}{speed}

![Test error against MACs and images/s]({p.name("tradeoff")}.png)
"""
    return Section(text, {p.name("tradeoff"): figures.tradeoff_figure(runs)})


def responses_section(p: ProfileResults) -> Section:
    """The paper's Fig. 7 from responses.csv, or how to produce it."""
    title = "### Layer responses (Fig. 7)"
    if p.responses.empty:
        command = f"ablate run --experiments responses --profile {p.profile}"
        return Section(f"{title}\n\nNo layer responses under this profile yet: `{command}`.\n")
    nets = ", ".join(figures.paper_name(v) for v in dict.fromkeys(p.responses["variant"]))
    text = f"""{title}

The std of each 3x3 layer's response (after BN, before the ReLU and the addition) on
{_response_images(p.responses)}, for {nets}: by layer index, and sorted in descending order.
The paper finds residual responses generally smaller than plain ones, and smaller in deeper
nets.

![Std of layer responses]({p.name("responses")}.png)
"""
    return Section(text, {p.name("responses"): figures.responses_figure(p.responses)})


def _response_images(responses: pd.DataFrame) -> str:
    """What the responses were measured on, from the rows' `images` (0: not recorded)."""
    counts = sorted({int(n) for n in responses["images"] if n > 0})
    if not counts:
        return "the test set"
    return f"{' or '.join(f'{n:,}' for n in counts)} test images"


PROFILE_SECTIONS: list[Callable[[ProfileResults], Section]] = [
    heading_section,
    runs_section,
    degradation_section,
    shortcuts_section,
    stems_section,
    tradeoff_section,
    responses_section,
]


def training_section(results: Path) -> Section:
    """Every profile's block, in profile order; nothing when there are no runs (the overview
    says how to produce them)."""
    return tables.join(
        tables.join(make(p) for make in PROFILE_SECTIONS) for p in load_profiles(results)
    )
