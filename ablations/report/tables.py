"""The building blocks of the report's Markdown: sections, tables and fact lines, as plain
values (DataFrames, strings), no I/O.

Errors are stored as fractions (0..1) and shown in percent with one decimal; a value over
several seeds is "mean ± std" (std with ddof 1), a single seed's value is shown alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from ablations.references import TEST_ERROR
from ablations.report.figures import paper_name, summarise_runs


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


def _errors(nets: pd.DataFrame, columns: tuple[str, ...]) -> dict[str, list[str]]:
    return {
        ERROR_HEADERS[c]: [
            percent(m, s, seeds=n)
            for m, s, n in zip(nets[f"{c}_mean"], nets[f"{c}_std"], nets["seeds"], strict=True)
        ]
        for c in columns
    }


def short_source(source: str) -> str:
    """A column header for a cited source: its text before the first parenthesis."""
    return source.split(" (")[0]


def degradation_table(runs: pd.DataFrame, *, references: bool) -> pd.DataFrame:
    """Net, depth, final training / validation / test error and seeds per net (plain nets
    first, by depth); with `references`, a test-error column per published source, blank where
    the source has no number for that net."""
    nets = summarise_runs(runs).sort_values(["residual", "depth"], kind="stable")
    table = pd.DataFrame({
        "net": nets["variant"].map(paper_name), "depth": nets["depth"],
        **_errors(nets, ("train_error", "val_error", "test_error")), "seeds": nets["seeds"],
    })  # fmt: skip
    if references:
        for source, errors in TEST_ERROR.items():
            table[f"{short_source(source)}"] = [
                f"{errors[v]:.2f}%" if v in errors else "" for v in nets["variant"]
            ]
    return table.reset_index(drop=True)


def ablation_table(runs: pd.DataFrame, *, axis: str) -> pd.DataFrame:
    """Variant, the ablated axis (shortcut or stem), params, MACs per image, final training
    error, test error and seeds, one row per variant (mean over seeds)."""
    nets = summarise_runs(runs)
    return pd.DataFrame({
        "variant": nets["variant"], axis: nets[axis],
        "params": nets["params"].map(lambda p: f"{p:,.0f}" if p > 0 else "n/a"),
        "MACs": nets["macs"].map(lambda m: f"{m / 1e6:,.1f} M" if m > 0 else "n/a"),
        **_errors(nets, ("train_error", "test_error")), "seeds": nets["seeds"],
    })  # fmt: skip


def _counted(values: pd.Series) -> str:
    """ "a (3 runs), b (1 run)": distinct values with their run counts, most frequent first."""
    counts = values.value_counts()
    return ", ".join(f"{value} ({n} run{'s' if n > 1 else ''})" for value, n in counts.items())


def _distinct(values: pd.Series) -> str:
    return ", ".join(map(str, sorted(set(values.astype(str))))) or "n/a"


def data_label(runs: pd.DataFrame) -> pd.Series:
    """ "cifar10 from PATH (format, sha256 1234abcd5678)" per run: what a data source is."""
    return (
        runs["dataset"] + " from " + runs["data_source"] + " (" + runs["data_format"]
        + ", sha256 " + runs["data_checksum"].str[:12] + ")"
    )  # fmt: skip


def _seeds(runs: pd.DataFrame) -> str:
    per_variant = runs.groupby("variant")["seed"].nunique()
    low, high = per_variant.min(), per_variant.max()
    count = str(low) if low == high else f"{low}-{high}"
    seeds = runs["seed"].nunique()
    return f"{count} (seed{'s' if seeds > 1 else ''} {_distinct(runs['seed'])})"


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
    """One bold line per column of MIXES with more than one value among the runs."""
    columns = runs.assign(
        data=data_label(runs),
        budget=runs["iterations"].map("{:,} iterations".format)
        + " at "
        + runs["input_size"].map("{0}x{0}".format),
    )
    notes = []
    for column, plural in MIXES.items():
        if columns[column].nunique() > 1:
            notes.append(
                f"**runs from {columns[column].nunique()} {plural}: "
                f"{_counted(columns[column])}; figures mix them.**"
            )
    return notes


def run_facts(runs: pd.DataFrame) -> list[str]:
    """What was run, one bullet each: counts, seeds, machine, device, precision, budget, data,
    commits, then the mixes and the diverged runs."""
    diverged = runs[runs["status"] == "diverged"]
    complete = (runs["status"] == "complete").sum()
    variants = list(dict.fromkeys(runs["variant"]))
    facts = [
        f"{len(runs)} runs ({complete} complete, {len(diverged)} diverged) of {len(variants)} "
        f"variants: {', '.join(variants)}",
        f"seeds per variant: {_seeds(runs)}",
        f"machine: {_distinct(runs['machine'])}; device: {_distinct(runs['device'])}; "
        f"precision: {_distinct(runs['precision'])}; torch {_distinct(runs['torch'])}",
        f"budget: {_distinct(runs['iterations'].map('{:,}'.format))} iterations at "
        f"{_distinct(runs['input_size'].map('{0}x{0}'.format))} input",
        f"data: {_distinct(data_label(runs))}",
        f"git commit: {_distinct(runs['git_commit'])}",
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
