"""Figures of the training runs as pure functions `(DataFrame, ...) -> Figure`: training curves
(Fig. 6), layer responses (Fig. 7), errors against depth, and test error against cost."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

from ablations.report.tables import paper_name, summarise_runs

# Fig. 6: dashed training curves, bold held-out curves, named by what they are: "test" (evaluated
# during training, as Fig. 6 does) or "validation" (a split held out of the training set).
SPLITS: dict[str, dict[str, Any]] = {
    "train": {"label": "training", "linestyle": "--", "linewidth": 1.0},
    "test": {"label": "test", "linestyle": "-", "linewidth": 2.0},
    "val": {"label": "validation", "linestyle": "-", "linewidth": 2.0},
}
HELD_OUT_WORDS = {"test": "test error (bold)", "val": "validation error (bold, held-out split)"}
# Plain (False) and residual (True) nets in the depth and cost figures.
KIND_STYLES: dict[bool, dict[str, Any]] = {
    False: {"label": "plain", "marker": "s", "color": "tab:red"},
    True: {"label": "residual", "marker": "o", "color": "tab:blue"},
}


def net_colours(variants: Iterable[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per depth, shared by plain and residual twins (resnet56-b gets its own)."""

    def twin(variant: str) -> tuple[int, str]:  # plain56 and resnet56: (56, ""); resnet56-b: "-b"
        match = re.fullmatch(r"(?:resnet|plain)(\d+)(.*)", variant)
        return (int(match.group(1)), match.group(2)) if match else (0, variant)

    keys = sorted({twin(v) for v in variants})
    palette = sns.color_palette("viridis_r" if len(keys) > 6 else "deep", len(keys))
    colour = {key: tuple(rgb) for key, rgb in zip(keys, palette, strict=True)}
    return {v: colour[twin(v)] for v in variants}


def _seed_note(seeds: pd.Series) -> str:
    low, high = int(seeds.min() if len(seeds) else 0), int(seeds.max() if len(seeds) else 0)
    if high <= 1:
        return "one seed per net"
    return f"mean of {low if low == high else f'{low}-{high}'} seeds per net"


def _runs_title(runs: pd.DataFrame) -> str:
    """ "cifar10, profile cpu": what the runs of a figure were trained on."""
    datasets = ", ".join(sorted(set(runs["dataset"]))) or "no runs"
    profiles = ", ".join(sorted(set(runs["profile"])))
    return f"{datasets}, profile {profiles}" if profiles else datasets


def held_out_split(curves: pd.DataFrame) -> pd.Series:
    """Per run_id, the split evaluated during training: "val" where it has one, else "test"."""
    errors = curves[curves["metric"] == "error"]
    has_val = errors.groupby("run_id")["split"].agg(lambda s: "val" in set(s))
    return has_val.map({True: "val", False: "test"}).rename("held_out")


def _error_curves(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Error (%) by variant, split and iteration: mean, low, high over seeds; a held-out split
    only where it was evaluated during training (more than one point)."""
    errors = curves[(curves["metric"] == "error") & curves["split"].isin(list(SPLITS))]
    joined = errors.merge(runs[["run_id", "variant"]], on="run_id")
    points = joined.groupby(["run_id", "split"])["iteration"].transform("nunique")
    joined = joined[(joined["split"] == "train") | (points > 1)]
    stats = joined.groupby(["variant", "split", "iteration"], as_index=False)["value"].agg(
        value="mean", low="min", high="max", seeds="count"
    )
    return stats.assign(**{c: stats[c] * 100 for c in ("value", "low", "high")})


def curves_figure(
    runs: pd.DataFrame, curves: pd.DataFrame, *, kinds: Sequence[bool] = ()
) -> Figure:
    """Training and held-out error (%) of the complete `runs` against iterations, one panel per
    kind (False plain, True residual; by default those present): a line per net, twins in one
    colour, the mean over seeds with a min-max band, and a final test error without a curve as a
    point."""
    nets = summarise_runs(runs)
    mean = _error_curves(runs, curves)
    colours = net_colours(nets["variant"])
    splits = [s for s in SPLITS if s == "train" or s in set(mean["split"])]
    # A point for the final test error, where the runs have one (ImageNet runs have no test split).
    final_test = "test" not in splits and bool(runs["test_error"].notna().any())
    band = bool((mean["seeds"] > 1).any())
    # What the line styles, the band and the marker mean, after the nets' colours.
    keys: list[Any] = [Line2D([], [], color="0.3", **SPLITS[s]) for s in splits]
    if band:
        keys.append(Patch(color="0.3", alpha=0.2, label="min-max over seeds"))
    if final_test:
        keys.append(Line2D([], [], color="0.3", marker="o", linestyle="", label="test (final)"))
    kinds = tuple(kinds) or tuple(sorted(set(nets["residual"]))) or (True,)
    fig = Figure(figsize=(5.5 * len(kinds), 4.2), layout="constrained")
    axes = fig.subplots(1, len(kinds), sharex=True, sharey=True, squeeze=False)[0]
    for ax, residual in zip(axes, kinds, strict=True):
        shown = nets[nets["residual"] == residual]
        ax.set_title("residual nets" if residual else "plain nets", fontsize=10)
        if shown.empty:
            ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
            continue
        for net in shown.itertuples():
            colour = colours[net.variant]
            for split in splits:
                line = mean[(mean["variant"] == net.variant) & (mean["split"] == split)]
                ax.plot(line["iteration"], line["value"], color=colour, **SPLITS[split])
                spread = line[line["seeds"] > 1]
                if len(spread):
                    ax.fill_between(spread["iteration"], spread["low"], spread["high"],
                                    color=colour, alpha=0.15, linewidth=0)  # fmt: skip
            if final_test:  # the test set evaluated once, at the end: a point, not a curve
                ax.plot([net.last_iteration], [net.test_error_mean * 100], marker="o",
                        color=colour, markersize=6, linestyle="")  # fmt: skip
        names = [Line2D([], [], color=colours[row.variant], label=paper_name(row.variant))
                 for row in shown.sort_values("depth").itertuples()]  # fmt: skip
        handles = names + keys
        # Below the panel: an error near chance (90%) would run under a legend inside it.
        below: dict[str, Any] = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.14)}
        ax.legend(handles=handles, ncol=min(len(handles), 4), fontsize=8, frameon=False, **below)
    # Room for every error after the first 5% of the iterations: the first evaluations near
    # chance would squeeze a long run's end, where the nets differ.
    late = mean[mean["iteration"] >= 0.05 * mean["iteration"].max()]["value"]
    top = min(100.0, max([*late, *(nets["test_error_mean"] * 100), 1.0]) * 1.08)
    for ax in axes:
        ax.set(xlabel="iterations", ylim=(0, top))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("error (%)")
    held = " and ".join(HELD_OUT_WORDS[s] for s in splits[1:]) or "no held-out curve"
    end = ", final test error (point)" if final_test else ""
    spread_note = "; band: min-max over seeds" if band else ""
    fig.suptitle(f"{_runs_title(runs)}: training error (dashed), {held}{end}; "
                 f"{_seed_note(nets['seeds'])}{spread_note}", fontsize=10)  # fmt: skip
    return fig


def depth_figure(runs: pd.DataFrame) -> Figure:
    """Final training and test error (%) against depth, plain vs residual, bars min to max."""
    nets = summarise_runs(runs).sort_values("depth")
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, column, label in zip(axes, ("train_error", "test_error"),
                                 ("final training error (%)", "test error (%)"),
                                 strict=True):  # fmt: skip
        for residual, line in nets.groupby("residual"):
            mean = line[f"{column}_mean"] * 100
            ax.plot(line["depth"], mean, linestyle="-" if residual else "--",
                    **KIND_STYLES[residual])  # fmt: skip
            spread = line["seeds"] > 1
            below = (mean - line[f"{column}_min"] * 100)[spread]
            above = (line[f"{column}_max"] * 100 - mean)[spread]
            ax.errorbar(line["depth"][spread], mean[spread], yerr=[below, above], fmt="none",
                        capsize=4, color=KIND_STYLES[residual]["color"])  # fmt: skip
        ax.set(xlabel="depth (weighted layers)", ylabel=label)
        ax.set_xticks(sorted(nets["depth"].unique()))
        ax.grid(True, alpha=0.3)
    axes[0].legend(frameon=False)
    fig.suptitle(f"{_runs_title(runs)}: final errors against depth "
                 f"({_seed_note(nets['seeds'])}; bars: min-max over seeds)",
                 fontsize=10)  # fmt: skip
    return fig


def tradeoff_figure(runs: pd.DataFrame) -> Figure:
    """Final test error (%) against MACs per image and measured training images/s."""
    nets = summarise_runs(runs)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    panels = {"macs": "MACs per image (training input size)",
              "images_per_s": "training images/s (measured)"}  # fmt: skip
    for ax, (column, label) in zip(axes, panels.items(), strict=True):
        ax.set_xlabel(label)
        ax.grid(True, which="both", alpha=0.3)
        shown = nets[nets[column] > 0]  # zero: runs recorded before costs were stored
        if shown.empty:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            continue
        for residual, points in shown.groupby("residual"):
            errors = points["test_error_mean"] * 100
            ax.scatter(points[column], errors, s=40, zorder=3, **KIND_STYLES[residual])
            for net, x, y in zip(points["variant"], points[column], errors, strict=True):
                ax.annotate(net, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        ax.margins(x=0.15)  # room for the labels right of the last point
        # Labels at 1, 2 and 5 of each decade: a span of less than a decade still reads.
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.xaxis.set_minor_formatter(NullFormatter())
    axes[0].set_ylabel("test error (%)")
    drawn = [ax for ax in axes if ax.collections]
    if drawn:
        drawn[0].legend(frameon=False)
    machines = runs["machine"].nunique()
    where = f"{machines} machines" if machines > 1 else next(iter(set(runs["machine"])), "")
    fig.suptitle(f"{_runs_title(runs)}: test error against cost ({_seed_note(nets['seeds'])}; "
                 f"images/s measured during training on {where})", fontsize=10)  # fmt: skip
    return fig


def responses_figure(responses: pd.DataFrame) -> Figure:
    """Fig. 7: the std of each layer's response by layer index (top) and sorted (bottom), a line
    per net (plain dashed), the mean over runs with a min-max band (each run sorted first)."""
    keys = ["variant", "residual", "depth", "layer"]
    stats = {"std": ("std", "mean"), "low": ("std", "min"), "high": ("std", "max"),
              "runs": ("std", "count")}  # fmt: skip
    by_layer = responses.groupby(keys, as_index=False).agg(**stats)
    ranked = responses.assign(
        rank=responses.groupby("run_id")["std"].rank(ascending=False, method="first")
    )
    by_rank = ranked.groupby(["variant", "rank"], as_index=False).agg(**stats)
    colours = net_colours(by_layer["variant"].unique())
    fig = Figure(figsize=(9, 7), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    nets = by_layer[["variant", "residual", "depth"]].drop_duplicates()
    for net in nets.sort_values(["residual", "depth"]).itertuples():
        style = dict(color=colours[net.variant], linestyle="-" if net.residual else "--",
                     label=paper_name(net.variant), linewidth=1.3)  # fmt: skip
        for ax, table, x in ((top, by_layer, "layer"), (bottom, by_rank, "rank")):
            line = table[table["variant"] == net.variant].sort_values(x)
            ax.plot(line[x], line["std"], **style)
            if (line["runs"] > 1).any():
                ax.fill_between(line[x], line["low"], line["high"], color=colours[net.variant],
                                alpha=0.15, linewidth=0)  # fmt: skip
    top.set(xlabel="layer index (original)", ylabel="std")
    bottom.set(xlabel="layer index (sorted by magnitude)", ylabel="std")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    top.legend(fontsize=8, frameon=False, ncol=2)
    profiles = ", ".join(sorted(set(responses["profile"])))
    runs = responses.groupby("variant")["run_id"].nunique()
    count = (f"{runs.min()} run{'s' if runs.min() > 1 else ''} per net" if runs.min() == runs.max()
             else f"{runs.min()}-{runs.max()} runs per net")  # fmt: skip
    spread = "; band: min-max over runs" if runs.max() > 1 else ""
    fig.suptitle(f"Std of layer responses (each 3x3 conv after BN, before ReLU/addition), "
                 f"profile {profiles}; {count}{spread}", fontsize=10)  # fmt: skip
    return fig
