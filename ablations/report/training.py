"""The training report: a block per profile in runs.csv, `paper` first. Every training experiment
the profile ran gets a section of one shape: its nets, the verdicts on its claims, their curves
and a table. Figure files are suffixed by the profile (`degradation_cpu.png`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations import stats
from ablations.experiments import EXPERIMENTS, Experiment
from ablations.protocol import PAPER_CHOICES
from ablations.report import claims, figures, profile_results, tables
from ablations.report.profile_results import ProfileResults, load_profiles, of_runs, profile_heading
from ablations.report.tables import Section, bullets, distinct, markdown_table

# The report opens with these profiles' verdicts: the paper's protocol, and the budget the
# README quotes. At most four lines, so the summary with its methodology line fits in five.
SUMMARY_PROFILES = (profile_results.PAPER, profile_results.QUOTED)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def heading_section(p: ProfileResults) -> Section:
    """The profile's heading (a reduced budget says first that only its trends compare), and
    what was run: counts, seeds, machines, device, precision, data, commits, and any mix."""
    first = profile_heading(p.profile, reduced=p.reduced, choices=PAPER_CHOICES)
    facts = tables.run_facts(p.runs)
    if len(p.left_out):
        facts.append(
            f"**{len(p.left_out)} runs on other datasets "
            f"({', '.join(sorted(set(p.left_out['dataset'])))}) are left out of this profile's "
            f"sections, which show {p.dataset} only.**"
        )
    return Section(
        f"## Training: profile `{p.profile}`\n\n{first}\n\n### What was run\n\n{bullets(facts)}\n"
    )


def experiments_run(p: ProfileResults) -> list[Experiment]:
    """The training experiments of the profile's dataset with complete runs under the profile."""
    trains = [e for e in EXPERIMENTS.values() if e.kind == "train" and e.dataset == p.dataset]
    return [e for e in trains if not p.experiment(e.name)[0].empty]


def experiment_section(p: ProfileResults, experiment: Experiment) -> Section:
    """What it is, its nets, the verdicts on its claims, their curves and a table."""
    runs, missing = p.experiment(experiment.name)
    table = tables.nets_table(runs, order=experiment.variants_for(p.profile))
    not_run = f" Not run yet: {', '.join(missing)}." if missing else ""
    rule = ""
    if experiment.claims:
        rule = (
            "\n\nThe claims it tests, each judged from its complete runs on the metric its line "
            "names (the final training error is the running error over the last evaluation "
            f"interval).\nRule: {claims.RULE}.{replication_words(p, experiment)}"
        )
    figure = p.name(experiment.name)
    text = f"""### {experiment.heading}

{_sentence(experiment.description)}.

Nets: {", ".join(table["net"])}.{not_run}{rule}

![Training and held-out error against iterations]({figure}.png)

{markdown_table(table)}
"""
    section = Section(text, {figure: figures.curves_figure(runs, p.curves)})
    if experiment.name == "degradation":
        return tables.join([section, degradation_extras(p, runs)])
    return section


def replication_words(p: ProfileResults, experiment: Experiment) -> str:
    """The verdict lines under the replication rule and, with replicates, their table."""
    sets = p.replicated(experiment.name)
    lines = bullets(claim.text for claim in claims.replicated(experiment, sets))
    if len(sets) == 1:
        return f"\n\n{lines}"
    table = markdown_table(claims.replication_table(experiment, sets))
    return f" Replication: {claims.REPLICATION_RULE}.\n\n{lines}\n\n{table}"


def degradation_extras(p: ProfileResults, runs: pd.DataFrame) -> Section:
    """Errors against depth, what the held-out curves are, and Table 6 beside the paper's
    (under a full-budget profile only)."""
    splits = set(figures.held_out_split(of_runs(p.curves, runs)))
    held_out = []
    if "test" in splits:
        held_out.append(
            "test error: the 10k test images, evaluated during training as in the paper's "
            "Fig. 6 (the bold curves), with no validation split held out"
        )
    if "val" in splits:
        held_out.append(
            "validation error: the images held out of the training set, evaluated during "
            "training (the bold curves: validation, not Fig. 6's test curves); test error: the "
            "10k test images, evaluated once, at the end"
        )
    words = f"{_sentence('; '.join(held_out))}." if held_out else ""
    if p.reduced:
        table6 = (
            "The paper's numbers (Table 6) and public reproductions are not comparable at "
            "this budget, so they are not shown."
        )
    else:
        data = distinct(tables.data_label(runs))
        table6 = f"""#### Table 6 side by side

Test error (%) of the residual nets: the paper's Table 6 and a public reproduction, as each
source gives it, beside ours (best of our N seeds, and mean ± std over them). Ours come from
{data}; the published numbers from the original images. A JPEG copy of CIFAR-10 is a real shift
(lossy, 4:2:0 chroma), so a difference there is partly the data: measured, never tuned away.

{markdown_table(tables.table6(runs))}

{bullets(tables.reproduction_notes())}"""
    text = f"![Final errors against depth]({p.name('depth')}.png)\n\n{words}\n\n{table6}\n"
    return Section(text, {p.name("depth"): figures.depth_figure(runs)})


def tradeoff_section(p: ProfileResults) -> Section:
    """Test error against MACs and measured images/s over all the profile's complete runs."""
    title = "### Cost and accuracy"
    runs = p.complete
    if runs.empty:
        return Section(f"{title}\n\nNo complete runs.\n")
    gaps = ""
    for what, column in (("MACs", "macs"), ("images/s", "images_per_s")):
        if n := runs.loc[runs[column] <= 0, "variant"].nunique():
            gaps += (
                f" {n} of {runs['variant'].nunique()} variants have no recorded {what} (runs "
                "recorded before it was stored) and are missing from that panel."
            )
    if (machines := runs["machine"].nunique()) > 1:
        gaps += f" **The runs come from {machines} machines, so their images/s do not compare.**"
    text = f"""{title}

Final test error against MACs per image (fvcore, at the training input size) and against the
training images/s measured during each run on its machine (median over evaluation intervals),
one point per variant, mean over seeds.{gaps}

![Test error against MACs and images/s]({p.name("tradeoff")}.png)
"""
    return Section(text, {p.name("tradeoff"): figures.tradeoff_figure(runs)})


def responses_section(p: ProfileResults) -> Section:
    """The paper's Fig. 7 from responses.csv, or how to produce it."""
    title = "### Layer responses (Fig. 7)"
    if p.responses.empty:
        command = f"ablate run --experiments responses --profile {p.profile}"
        return Section(f"{title}\n\nNo layer responses under this profile yet: `{command}`.\n")
    nets = ", ".join(tables.paper_name(v) for v in dict.fromkeys(p.responses["variant"]))
    # What they were measured on, from the rows' `images` (0: not recorded).
    counts = sorted({int(n) for n in p.responses["images"] if n > 0})
    images = f"{' or '.join(f'{n:,}' for n in counts)} test images" if counts else "the test set"
    text = f"""{title}

The std of each 3x3 layer's response (after BN, before the ReLU and the addition) on
{images}, for {nets}: by layer index, and sorted in descending order.
The paper finds residual responses generally smaller than plain ones, and smaller in deeper
nets.

![Std of layer responses]({p.name("responses")}.png)
"""
    return Section(text, {p.name("responses"): figures.responses_figure(p.responses)})


def summary(results: Path) -> list[str]:
    """The report's first lines: for the paper's protocol and the quoted budget (else the first
    profiles with complete runs), the budget and its claims' statements by replicated outcome."""
    profiles = [p for p in load_profiles(results) if not p.complete.empty]
    lines = []
    for p in ([p for p in profiles if p.profile in SUMMARY_PROFILES] or profiles)[:4]:
        found: dict[str, list[str]] = {outcome: [] for outcome in stats.OUTCOMES}
        for experiment in experiments_run(p):
            for claim in claims.replicated(experiment, p.replicated(experiment.name)):
                found[claim.outcome].append(claim.statement)
        groups = " ".join(
            f"**{_sentence(outcome)}:** {'; '.join(statements)}."
            for outcome, statements in found.items()
            if statements
        )
        seeds = sorted(set(p.complete.groupby("variant")["seed"].nunique()))
        per_net = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
        iterations = ", ".join(f"{int(n):,}" for n in sorted(set(p.complete["iterations"])))
        budget = f"{per_net} seeds per net, {iterations} iterations"
        reduced = ", a reduced budget (trends only)" if p.reduced else ""
        lines.append(f"- Profile `{p.profile}`: {budget}{reduced}. {groups or 'No claims judged.'}")
    return lines


def training_section(results: Path) -> Section:
    """Every profile's block, in profile order; nothing without runs."""
    blocks = []
    for p in load_profiles(results):
        experiments = [experiment_section(p, e) for e in experiments_run(p)]
        blocks += [heading_section(p), *experiments, tradeoff_section(p), responses_section(p)]
    return tables.join(blocks)
