"""Render reports/ from results/ alone: figures as PNG + SVG and a README.md that opens with the
claims' verdicts. Each section is a function of the results folder that returns Markdown and its
figures; a section whose results do not exist yet says so instead of failing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ablations.references import GMACS, PARAMS, ROUNDED_PARAMS, TORCHVISION
from ablations.report import cost_figures, planning, tables, training
from ablations.report import recipes as recipes_report
from ablations.report import throughput as throughput_report
from ablations.report.evaluations import evaluations_section
from ablations.report.imagenet import imagenet_section, streamed_section
from ablations.report.profile_results import profile_order
from ablations.report.tables import Section, distinct, markdown_table
from ablations.results import schemas
from ablations.results.table import read_table

# Stable file contents: no timestamps or random ids in the images, so unchanged figures do not
# show up in diffs.
SAVE_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
plt.rcParams["svg.hashsalt"] = "resnet-ablations"


def _provenance(df: pd.DataFrame, columns: list[str]) -> str:
    """ "machine X; torch Y; git_commit Z": the distinct values of a table's env columns."""
    return "; ".join(f"{column} {distinct(df[column])}" for column in columns)


def published_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Our counts beside the published ones, for the residual nets that have published values."""
    rows = []
    for row in df[df["name"].isin(PARAMS.keys() | GMACS.keys())].itertuples():
        params, gmacs = PARAMS.get(row.name), GMACS.get(row.name)
        # Exact counts only where a source publishes them (torchvision); the CIFAR nets' exact
        # counts are ours, and the paper and akamaster give them rounded.
        published = (f"{int(params.value):,}" if params and params.source == TORCHVISION
                     else ROUNDED_PARAMS.get(row.name, ""))  # fmt: skip
        rows.append({
            "variant": row.name, "params": f"{row.params:,}",
            "published params": published,
            "GMACs": f"{row.macs / 1e9:.3f}",
            "published GMACs": f"{gmacs[0].value:g}" if gmacs else "",
        })  # fmt: skip
    return pd.DataFrame(rows)


def complexity_section(results: Path) -> Section:
    path = results / schemas.COMPLEXITY_FILE
    df = read_table(path, schemas.COMPLEXITY)
    if df.empty:
        return Section(f"## Complexity\n\nNo results yet: run `ablate complexity` ({path}).\n")
    table = markdown_table(published_comparison(df))
    text = f"""## Complexity

`{path}`: {len(df)} variants, measured by `ablate complexity`
({_provenance(df, ["machine", "fvcore", "torch", "git_commit"])}).
{schemas.MACS_CONVENTION}.

![Params and MACs against depth](complexity.png)

Plain nets have exactly the parameters and MACs of their option-A twins (the thick line under
"residual A"); option B adds a projection at each stage's first block, option C at every block.
Published values: exact parameter counts from torchvision; for the CIFAR nets the rounded counts
the paper's Table 6 and akamaster/pytorch_resnet_cifar10's README give (0.27M, ...: no source we
can cite publishes them exactly, so the exact counts are ours, computed from the architecture and
pinned in tests/golden/complexity.csv); GMACs from torchvision and, for the -v1 rows (stride on
the first 1x1 conv), the paper's Table 1.

{table}
"""
    return Section(text, {"complexity": cost_figures.complexity_figure(df)})


def primary_setting(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of one setting: the most measured, and of equally measured ones the fastest
    (median images/s). One figure shows one setting, never a mix of machines or precisions."""
    columns = ["machine", "precision", "channels_last", "compile", "requested_batch_size"]
    stats = df.groupby(columns)["images_per_s"].agg(["size", "median"])
    top = stats.sort_values(["size", "median"], ascending=False).index[0]
    return df[(df[columns] == pd.Series(top, index=columns)).all(axis=1)]


def throughput_section(results: Path) -> Section:
    path = results / schemas.THROUGHPUT_FILE
    df = read_table(path, schemas.THROUGHPUT)
    if df.empty:
        return Section(f"## Throughput\n\nNo results yet: run `ablate bench` ({path}).\n")
    shown = primary_setting(df)
    first = shown.iloc[0]
    others = len(df) - len(shown)
    setting = (
        f"{first['machine']}, {first['precision']}, "
        f"{tables.memory_format(first['channels_last'])}, "
        f"compile {'on' if first['compile'] else 'off'}, batch {first['requested_batch_size']}"
    )
    groups = shown[shown["status"] == "ok"].groupby(["variant", "mode"], sort=False)
    medians = groups.median(numeric_only=True).assign(batch_size=groups["batch_size"].first())
    summary = medians.reset_index()
    table = markdown_table(pd.DataFrame({
        "variant": summary["variant"], "mode": summary["mode"], "batch": summary["batch_size"],
        "images/s": summary["images_per_s"].map("{:,.1f}".format),
        "step ms (IQR)": [f"{m:.1f} ({q:.1f})"
                          for m, q in zip(summary["step_ms"], summary["step_ms_iqr"], strict=True)],
        "TFLOP/s": summary["tflops"].map("{:.3g}".format),
        "of peak": summary["fraction_of_peak"].map(throughput_report.of_peak),
        "peak MB": summary["peak_mem_mb"].map("{:,.0f}".format),
    }))  # fmt: skip
    failed = shown[shown["status"] != "ok"]
    notes = gpu = ""
    # A setting whose every row failed (out of memory, say) has nothing to plot.
    measured = len(failed) < len(shown)
    figure = "\n![images/s against MACs and depth](throughput.png)\n" if measured else ""
    if len(failed):
        listed = (f"{r.variant} {r.mode} batch {r.batch_size} ({r.status})"
                  for r in failed.itertuples())  # fmt: skip
        notes = f"\n{len(failed)} setting(s) did not run: {', '.join(listed)}.\n"
    if not (shown["device"] == "cuda").any():
        gpu = ("\nMeasured on a CPU: no GPU was at hand for these rows. Fractions of peak are "
               "given only for GPUs in the runner's table of datasheet peaks; on a CPU, peak MB is "
               "the measuring process's peak resident memory, the runtime included.\n")  # fmt: skip
    text = f"""## Throughput

`{path}`, measured by `ablate bench` ({_provenance(shown, ["machine", "torch", "git_commit"])}).
Shown: {setting}; {others} other rows in the file (other settings or machines) are not mixed in.
Step time is the median over timed repeats (IQR in brackets), after warm-up; a training step is
forward + loss + backward + SGD step, counted as 3 forward passes for TFLOP/s.
{gpu}{notes}{figure}
{table}
{throughput_report.extras(results)}"""
    return Section(text, {"throughput": cost_figures.throughput_figure(shown)} if measured else {})


def overview_section(results: Path) -> Section:
    """The profiles present in runs.csv, or the one line that says how to produce runs."""
    path = results / schemas.RUNS_FILE
    every_run = read_table(path, schemas.RUNS)
    of_recipes = recipes_report.recipe_runs(every_run)
    recipe_runs = int(of_recipes.sum())
    runs = every_run[~of_recipes]
    if runs.empty and recipe_runs:
        return Section(
            f"{recipe_runs} recipe runs in `{path}` (see Recipes); no experiment runs.\n"
        )
    if runs.empty:
        return Section(f"No training runs yet (`{path}`): `nox -s ablate` trains the default "
                       "experiments and records them there.\n")  # fmt: skip
    rows = [
        {"profile": f"`{name}`", "runs": len(group),
         "machines": f"{group['machine'].nunique()}: {distinct(group['machine'])}"}
        for name, group in ((n, runs[runs["profile"] == n])
                            for n in profile_order(runs["profile"]))
    ]  # fmt: skip
    text = (
        f"Training runs in `{path}`, by profile (`paper` is the paper's protocol, `paper-val` "
        "the same on the 45k/5k split; the others are reduced budgets whose numbers show trends "
        "only):\n\n"
        f"{markdown_table(pd.DataFrame(rows))}\n"
    )
    if recipe_runs:
        text += f"\nAnd {recipe_runs} runs of the tutorial recipes, in their own section.\n"
    committed = {  # every results table that records a commit
        "training runs": every_run,
        "layer responses": read_table(results / schemas.RESPONSES_FILE, schemas.RESPONSES),
        "evaluations": read_table(results / schemas.EVALUATIONS_FILE, schemas.EVALUATIONS),
        "throughput rows": read_table(results / schemas.THROUGHPUT_FILE, schemas.THROUGHPUT),
        "complexity rows": read_table(results / schemas.COMPLEXITY_FILE, schemas.COMPLEXITY),
    }
    notes = tables.provenance_notes(committed, runs=runs)
    return Section(text + (f"\n{notes}\n" if notes else ""))


SECTIONS: list[Callable[[Path], Section]] = [
    overview_section,
    training.training_section,
    imagenet_section,
    streamed_section,
    recipes_report.recipes_section,
    evaluations_section,
    complexity_section,
    planning.planning_section,
    throughput_section,
]


def render(*, results: Path = Path("results"), out: Path = Path("reports")) -> list[Path]:
    """Write every section's figures and reports/README.md; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    sections = [make(results) for make in SECTIONS]
    written = []
    for section in sections:
        for name, fig in section.figures.items():
            for fmt, metadata in SAVE_METADATA.items():
                target = out / f"{name}.{fmt}"
                fig.savefig(target, dpi=120, bbox_inches="tight", metadata=metadata)
                written.append(target)
            plt.close(fig)
    readme = out / "README.md"
    header = (
        f"# resnet-ablations: reports\n\n{summary(results, out=out)}\n\n"
        "Generated by `ablate report` from `results/` alone; do not edit by hand.\n\n"
    )
    readme.write_text(header + "\n".join(s.markdown for s in sections if s.markdown))
    return [*written, readme]


METHODOLOGY = Path("docs") / "methodology.md"


def summary(results: Path, *, out: Path) -> str:
    """The report's answer first: each summarised profile's verdicts (training.summary), then
    the page that says how a verdict is reached, linked from `out`."""
    lines = training.summary(results) or ["No claims are judged yet: no complete training runs."]
    page = next((folder / METHODOLOGY for folder in out.resolve().parents
                 if (folder / METHODOLOGY).exists()), None)  # fmt: skip
    how = "How each verdict is reached, and what a budget can show"
    if page is None:  # a report outside the project: no page to link
        return "\n".join(lines) + f"\n\n{how}: the project's {METHODOLOGY.as_posix()}."
    link = Path(os.path.relpath(page, out.resolve())).as_posix()
    return "\n".join(lines) + f"\n\n{how}: [Methodology]({link})."
