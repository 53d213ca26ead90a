"""The training report: one block per profile in runs.csv, `paper` first.

A profile's block is a list of sections (PROFILE_SECTIONS), each a function of the profile's
results (`ProfileResults`, profile_results.py) returning Markdown and figures. Every training
experiment the profile ran gets a section of the same shape: its nets, the verdicts on the
claims it declares, their curves and a table; an experiment may add more (EXTRAS). Figure files
are suffixed by the profile (`degradation_cpu.png`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from ablations import stats
from ablations.experiments import EXPERIMENTS, Experiment
from ablations.profiles import PROFILES
from ablations.protocol import PAPER_CHOICES
from ablations.report import claims, figures, tables
from ablations.report.nets import paper_name
from ablations.report.profile_results import (
    PAPER,
    QUOTED,
    ProfileResults,
    load_profiles,
    of_runs,
)
from ablations.report.tables import Section, markdown_table


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


def claims_words(p: ProfileResults, experiment: Experiment) -> str:
    """The rule and one verdict line per claim the experiment declares; nothing without."""
    if not experiment.claims:
        return ""
    return ("\n\nThe claims it tests, each judged from its complete runs on the metric its line "
            "names (the final training error is the running error over the last evaluation "
            f"interval).\nRule: {claims.RULE}.{replication_words(p, experiment)}")  # fmt: skip


def experiment_section(p: ProfileResults, experiment: Experiment) -> Section:
    """A training experiment's runs: what it is, its nets, the verdicts on its claims, their
    curves and a table; then its add-on (EXTRAS), if it has one."""
    runs, missing = p.experiment(experiment.name)
    table = tables.nets_table(runs, order=experiment.variants_for(p.profile))
    not_run = f" Not run yet: {', '.join(missing)}." if missing else ""
    what = experiment.description
    figure = p.name(experiment.name)
    text = f"""### {experiment.heading}

{what[:1].upper()}{what[1:]}.

Nets: {", ".join(table["net"])}.{not_run}{claims_words(p, experiment)}

![Training and held-out error against iterations]({figure}.png)

{markdown_table(table)}
"""
    section = Section(text, {figure: figures.curves_figure(runs, p.curves)})
    extra = EXTRAS.get(experiment.name)
    return tables.join([section, extra(p, runs)]) if extra else section


def experiments_run(p: ProfileResults) -> list[Experiment]:
    """The training experiments of the profile's dataset that have complete runs under the
    profile, in EXPERIMENTS order."""
    return [e for e in EXPERIMENTS.values()
            if e.kind == "train" and e.dataset == p.dataset
            and not p.experiment(e.name)[0].empty]  # fmt: skip


def experiment_sections(p: ProfileResults) -> Section:
    """A section per experiment run (`experiments_run`); an experiment not run has none."""
    return tables.join(experiment_section(p, e) for e in experiments_run(p))


def replication_words(p: ProfileResults, experiment: Experiment) -> str:
    """The verdict lines under the replication rule and, with replicates, their table."""
    sets = p.replicated(experiment.name)
    lines = bullets(claims.replicated_verdicts(experiment, sets))
    if len(sets) == 1:
        return f"\n\n{lines}"
    return (f" Replication: {claims.REPLICATION_RULE}.\n\n{lines}\n\n"
            f"{markdown_table(claims.replication_table(experiment, sets))}")  # fmt: skip


def degradation_extras(p: ProfileResults, runs: pd.DataFrame) -> Section:
    """The degradation experiment's add-on: errors against depth, what the held-out curves
    are, and Table 6 beside the paper's."""
    text = f"""![Final errors against depth]({p.name("depth")}.png)

{_held_out_words(p, runs)}

{_table6_words(p, runs).rstrip()}
"""
    return Section(text, {p.name("depth"): figures.depth_figure(runs)})


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
    nets = ", ".join(paper_name(v) for v in dict.fromkeys(p.responses["variant"]))
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


# Sections an experiment adds after its generic one, by experiment name.
EXTRAS: dict[str, Callable[[ProfileResults, pd.DataFrame], Section]] = {
    "degradation": degradation_extras,
}

PROFILE_SECTIONS: list[Callable[[ProfileResults], Section]] = [
    heading_section,
    runs_section,
    experiment_sections,
    tradeoff_section,
    responses_section,
]


# The report opens with these profiles' verdicts: the paper's protocol, and the budget the
# README quotes. At most four lines, so the summary with its methodology line fits in five.
SUMMARY_PROFILES = (PAPER, QUOTED)
MAX_SUMMARY_LINES = 4
OUTCOMES = (stats.HOLDS, stats.FAILS, stats.NOT_RESOLVED, stats.NOT_CHECKED)


def summary(results: Path) -> list[str]:
    """The report's first lines: for the paper's protocol and the quoted budget (those with
    complete runs; else the first profiles that have them), the budget and its claims'
    statements by outcome."""
    profiles = [p for p in load_profiles(results) if not p.complete.empty]
    shown = [p for p in profiles if p.profile in SUMMARY_PROFILES] or profiles
    return [summary_line(p) for p in shown[:MAX_SUMMARY_LINES]]


def summary_line(p: ProfileResults) -> str:
    """One profile: its budget, then each outcome's claims (under the replication rule)."""
    found: dict[str, list[str]] = {}
    for experiment in experiments_run(p):
        for claim in claims.replicated(experiment, p.replicated(experiment.name)):
            found.setdefault(claim.outcome, []).append(claim.statement)
    groups = [f"**{claims.WORDS[o][:1].upper()}{claims.WORDS[o][1:]}:** {'; '.join(found[o])}."
              for o in OUTCOMES if o in found]  # fmt: skip
    return f"- {budget_words(p)}. {' '.join(groups) or 'No claims judged.'}"


def budget_words(p: ProfileResults) -> str:
    """ "Profile `cpu`: 5 seeds per net, 200 iterations, a reduced budget (trends only)"."""
    runs = p.complete
    seeds = sorted(set(runs.groupby("variant")["seed"].nunique()))
    per_net = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    iterations = ", ".join(f"{int(n):,}" for n in sorted(set(runs["iterations"])))
    reduced = ", a reduced budget (trends only)" if p.reduced else ""
    return f"Profile `{p.profile}`: {per_net} seeds per net, {iterations} iterations{reduced}"


def training_section(results: Path) -> Section:
    """Every profile's block, in profile order; nothing when there are no runs (the overview
    says how to produce them)."""
    return tables.join(
        tables.join(make(p) for make in PROFILE_SECTIONS) for p in load_profiles(results)
    )
