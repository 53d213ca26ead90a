"""The building blocks of the report's Markdown: sections, the nets of a runs table (the paper's
spelling, one row per variant over its seeds, an experiment's runs), tables, fact lines and
provenance warnings; no I/O. Errors are fractions, shown in percent: "mean ± std" (ddof 1)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from ablations.references import REPRODUCTIONS, Reproduction
from ablations.registry import axis_names, get_variant
from ablations.versions import TRAINER_VERSION

DIRTY = "+dirty"  # a commit with uncommitted changes, as ablations.results.provenance marks it

ERROR_COLUMNS = ["train_error", "val_error", "test_error"]
PAPER_PREFIXES = {"preresnet": "PreResNet", "resnet": "ResNet", "plain": "plain"}


def axis_columns(runs: pd.DataFrame) -> list[str]:
    """The registry's axes that the runs table records (the name is its `variant` column)."""
    return [axis for axis in axis_names() if axis != "name" and axis in runs.columns]


def members(runs: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The runs that recorded `experiment` among the experiments they were planned for."""
    planned = runs["experiments"].astype(str).str.split(",")
    return runs[planned.map(lambda names: experiment in names).astype(bool)]  # bool when empty


def paper_name(variant: str) -> str:
    """The papers' spelling of a net: plain56 -> plain-56, resnet56 -> ResNet-56, preresnet56 ->
    PreResNet-56 (a suffix that sets an axis is kept: resnet56-b -> ResNet-56-b)."""
    match = re.fullmatch(r"(preresnet|resnet|plain)(\d+)(.*)", variant)
    return f"{PAPER_PREFIXES[match[1]]}-{match[2]}{match[3]}" if match else variant


def summarise_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant, in run order: every axis the runs record, the seed count, the last
    iteration, the mean cost (params, MACs, images/s) and the mean, std (ddof 1), min and max
    over seeds of each final error (`train_error_mean`, ...)."""
    groups = runs.groupby("variant", sort=False)
    errors = groups[ERROR_COLUMNS].agg(["mean", "std", "min", "max"])
    errors.columns = ["_".join(pair) for pair in errors.columns]
    first = groups[axis_columns(runs)].first()
    cost = groups[["params", "macs", "images_per_s"]].mean()
    seeds = groups["seed"].nunique().rename("seeds")
    last = groups["iterations_done"].max().rename("last_iteration")
    return pd.concat([first, seeds, last, cost, errors], axis=1).reset_index()


@dataclass
class Section:
    """Markdown and the figures it refers to, by file name without extension."""

    markdown: str
    figures: dict[str, Figure] = field(default_factory=dict)


def join(sections: Iterable[Section], *, sep: str = "\n") -> Section:
    """One section of several: Markdown in order (empty parts left out), all their figures."""
    parts = list(sections)
    return Section(
        sep.join(s.markdown for s in parts if s.markdown),
        {name: fig for s in parts for name, fig in s.figures.items()},
    )


ERROR_HEADERS = {
    "train_error": "final training error",
    "val_error": "validation error",
    "test_error": "test error",
}


def percent(mean: float, std: float, *, seeds: int) -> str:
    """ "55.5%" for one seed, "55.5 ± 0.3%" for several."""
    if mean != mean:
        return ""
    if seeds < 2 or std != std:
        return f"{mean * 100:.1f}%"
    return f"{mean * 100:.1f} ± {std * 100:.1f}%"


def _errors(nets: pd.DataFrame) -> dict[str, object]:
    """A nets table's final errors (validation where a run held one out), the best test error of
    the seeds, and the seeds per net."""
    held_out = nets["val_error_mean"].notna().any()
    columns = [c for c in ERROR_HEADERS if c != "val_error" or held_out]
    shown: dict[str, object] = {
        ERROR_HEADERS[c]: [
            percent(m, s, seeds=n)
            for m, s, n in zip(nets[f"{c}_mean"], nets[f"{c}_std"], nets["seeds"], strict=True)
        ]
        for c in columns
    }
    best = zip(nets["test_error_min"], nets["seeds"], strict=True)
    shown["best test error"] = [f"{b * 100:.2f}% (of {n})" if n > 1 else "" for b, n in best]
    shown["seeds"] = nets["seeds"]
    return shown


def short_source(source: str) -> str:
    """A column header for a cited source: "He et al. 2016, Table 6", "akamaster/..."."""
    if source.startswith("He et al."):
        return "He et al. 2016" + (", Table 6" if "Table 6" in source else "")
    return source.split(" (")[0].removeprefix("github.com/").removesuffix(" README")


def degradation_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Net, depth and the error columns (`_errors`), plain nets first, by depth."""
    nets = summarise_runs(runs).sort_values(["residual", "depth"], kind="stable")
    table = pd.DataFrame({"net": nets["variant"].map(paper_name), "depth": nets["depth"],
                          **_errors(nets)})  # fmt: skip
    return table.reset_index(drop=True)


def _published(ref: Reproduction, variant: str) -> str:
    if variant not in ref.test_error:
        return ""
    if variant not in ref.spread:
        return f"{ref.test_error[variant]:.2f}%"
    mean, std, n = ref.spread[variant]
    return f"{ref.test_error[variant]:.2f}% (best of {n}; {mean:.2f} ± {std:.2f}%)"


def table6(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 6 side by side: the test error (%) each source gives for each residual net we ran
    or a source reports, then ours as best of N and as mean ± std over seeds."""
    nets = summarise_runs(runs[runs["residual"]]).set_index("variant")
    names = {v for ref in REPRODUCTIONS for v in ref.test_error} | set(nets.index)
    rows = []
    for variant in sorted(names, key=lambda v: (get_variant(v).depth, v)):
        row = {"net": paper_name(variant)}
        row |= {short_source(ref.source): _published(ref, variant) for ref in REPRODUCTIONS}
        row["ours: best of N"] = row["ours: mean ± std"] = ""
        if variant in nets.index:
            net, n = nets.loc[variant], int(nets.loc[variant, "seeds"])
            mean, std = net["test_error_mean"] * 100, net["test_error_std"] * 100
            row["ours: best of N"] = f"{net['test_error_min'] * 100:.2f}% (N={n})"
            row["ours: mean ± std"] = (
                f"{mean:.2f} ± {std:.2f}%" if n > 1 else f"{mean:.2f}% (1 seed)"
            )
        rows.append(row)
    return pd.DataFrame(rows)


def reproduction_notes() -> list[str]:
    """One line per published source: what it is, its protocol and its data."""
    return [f"{short_source(r.source)}: {r.protocol}; data: {r.data}" for r in REPRODUCTIONS]


def nets_table(runs: pd.DataFrame, *, order: Sequence[str] = ()) -> pd.DataFrame:
    """One row per net: the axes on which the nets differ, params, MACs per image and the error
    columns (`_errors`), in `order`, then the runs' order."""
    rank = {variant: i for i, variant in enumerate(order)}
    nets = summarise_runs(runs).sort_values(
        "variant", key=lambda v: v.map(lambda name: rank.get(name, len(rank))), kind="stable"
    )
    differ = [axis for axis in axis_columns(runs) if nets[axis].nunique() > 1]
    table = pd.DataFrame({
        "net": nets["variant"].map(paper_name), **{axis: nets[axis] for axis in differ},
        "params": nets["params"].map(lambda p: f"{p:,.0f}" if p > 0 else "n/a"),
        "MACs": nets["macs"].map(lambda m: f"{m / 1e6:,.1f} M" if m > 0 else "n/a"),
        **_errors(nets),
    })  # fmt: skip
    return table.reset_index(drop=True)


def distinct(values: pd.Series) -> str:
    """ "a, b": the distinct values, sorted as text; "n/a" for none."""
    return ", ".join(sorted(set(values.astype(str)))) or "n/a"


def memory_format(channels_last: bool) -> str:
    return "channels_last" if channels_last else "NCHW"


def data_label(runs: pd.DataFrame) -> pd.Series:
    """ "cifar10 from PATH (format, sha256 1234abcd5678)" per run: what a data source is."""
    return (
        runs["dataset"] + " from " + runs["data_source"] + " (" + runs["data_format"]
        + ", sha256 " + runs["data_checksum"].str[:12] + ")"
    )  # fmt: skip


# Columns whose mix within one profile the reader must be told about: what a run measured
# depends on them, so figures that average over them mix different things.
MIXES = {
    "machine": "machines",
    "data": "data sources",
    "device": "devices",
    "precision": "precisions",
    "budget": "budgets",
}


def mix_notes(runs: pd.DataFrame) -> list[str]:
    """A bold line per column of MIXES with several values: each with its runs, most first."""
    columns = runs.assign(
        data=data_label(runs),
        budget=runs["iterations"].map("{:,} iterations".format)
        + " at "
        + runs["input_size"].map("{0}x{0}".format),
    )
    notes = []
    for column, plural in MIXES.items():
        counts = columns[column].value_counts()
        if len(counts) > 1:
            listed = ", ".join(f"{value} ({n} run{'s' * (n > 1)})" for value, n in counts.items())
            notes.append(f"**runs from {len(counts)} {plural}: {listed}; figures mix them.**")
    return notes


def run_facts(runs: pd.DataFrame) -> list[str]:
    """What was run, one bullet each: counts, seeds, machine, device, precision, budget, data,
    commits, then the mixes and the diverged runs."""
    diverged = runs[runs["status"] == "diverged"]
    complete = (runs["status"] == "complete").sum()
    variants = list(dict.fromkeys(runs["variant"]))
    per_variant = runs.groupby("variant")["seed"].nunique()
    low, high = per_variant.min(), per_variant.max()
    seeds = "s" if runs["seed"].nunique() > 1 else ""
    facts = [
        f"{len(runs)} runs ({complete} complete, {len(diverged)} diverged) of {len(variants)} "
        f"variants: {', '.join(variants)}",
        f"seeds per variant: {low if low == high else f'{low}-{high}'} "
        f"(seed{seeds} {distinct(runs['seed'])})",
        f"machine: {distinct(runs['machine'])}; device: {distinct(runs['device'])}; "
        f"precision: {distinct(runs['precision'])}; torch {distinct(runs['torch'])}",
        f"budget: {distinct(runs['iterations'].map('{:,}'.format))} iterations at "
        f"{distinct(runs['input_size'].map('{0}x{0}'.format))} input",
        f"data: {distinct(data_label(runs))}",
        f"git commit: {distinct(runs['git_commit'])}",
        *mix_notes(runs),
    ]
    if len(diverged):
        which = ", ".join(
            f"{r.variant} seed {r.seed} at iteration {r.diverged_at:,}"
            for r in diverged.itertuples()
        )
        facts.append(f"diverged (left out of the tables, figures and claims): {which}")
    return facts


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of `df`, values as they print."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def bullets(lines: Iterable[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def provenance_notes(tables: dict[str, pd.DataFrame], *, runs: pd.DataFrame) -> str:
    """Bold notes, one per paragraph: rows of the tables ({"training runs": runs, ...}) produced
    from uncommitted code, and runs of an older trainer; "" when everything is clean and current."""
    notes = []
    for what, df in tables.items():
        dirty = df[df["git_commit"].astype(str).str.endswith(DIRTY)]
        if len(dirty):
            notes.append(
                f"**{len(dirty)} of {len(df)} {what} were produced from a dirty tree "
                f"(commit {distinct(dirty['git_commit'])}): uncommitted code; "
                "regenerate them from a clean commit.**"
            )
    stale = runs[runs["trainer_version"] != TRAINER_VERSION]
    if len(stale):
        versions = stale["trainer_version"].astype(int).astype(str)
        labels = sorted(set(stale["run_id"] + " (trainer v" + versions + ")"))
        notes.append(
            f"**{len(stale)} run(s) are stale, made by an older trainer than "
            f"v{TRAINER_VERSION}; `ablate run` trains them again: "
            f"{', '.join(labels)}.**"
        )
    return "\n\n".join(notes)
