"""Figures of what the nets cost, as pure functions of tidy tables: params and MACs against
depth (complexity.csv) and images/s against depth and MACs (throughput.csv)."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ablations.registry import axis_names
from ablations.report.tables import memory_format
from ablations.variants import CIFAR_DEPTHS, FAMILY_DEFAULTS, IMAGENET_STAGES

PAPER_DEPTHS = {*CIFAR_DEPTHS, *IMAGENET_STAGES}  # labelled first on a crowded depth axis
FAMILY_TITLES = {"cifar": "CIFAR family (32x32)", "imagenet": "ImageNet family (224x224)"}
METRIC_LABELS = {"params": "parameters", "macs": "MACs per image"}
# Kinds in legend order. Plain nets cost what option A costs: a thick line under A shows both.
LINE_WIDTHS = {"plain": 5.0, "residual A": 1.5, "residual B": 1.5, "residual C": 1.5}
# Axes that may tell two nets of one kind at one depth apart. Depth is the x axis, the family the
# panel, residual and shortcut the kind; stage_blocks follows depth and block.
LINE_AXES = tuple(
    a for a in axis_names()
    if a not in ("name", "depth", "stage_blocks", "family", "residual", "shortcut")
)  # fmt: skip


def net_kind(df: pd.DataFrame) -> pd.Series:
    """ "plain" or "residual A/B/C": the label that separates lines in figures."""
    return ("residual " + df["shortcut"].str.upper()).where(df["residual"].astype(bool), "plain")


def family_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with their family's default stem, stride placement and input: nets of the paper's
    form at any depth (not a k3 ResNet-18 at 32x32 or the 1-channel d2l net)."""
    keep = df["stride_at"] == "3x3"
    for axis in ("stem", "input_size"):
        keep &= df[axis] == df["family"].map({f: d[axis] for f, d in FAMILY_DEFAULTS.items()})
    for axis, default in (("in_channels", 3), ("conv_bias", False), ("projection_bn", True)):
        if axis in df:  # tables written before the axis existed hold only the default
            keep &= df[axis].astype(str) == str(default)  # extra columns are read as text
    return df[keep]


def distinguishing_axes(df: pd.DataFrame) -> list[str]:
    """The axes that take more than one value among the nets of one kind at one depth of one
    family: left out of a line's key, they would average distinct nets into one point."""
    columns = [a for a in LINE_AXES if a in df]
    if df.empty or not columns:
        return []
    spread = df.assign(net=net_kind(df)).groupby(["family", "depth", "net"])[columns].nunique()
    return [a for a in columns if bool((spread[a] > 1).any())]


def line_labels(df: pd.DataFrame) -> pd.Series:
    """Each row's line: its kind and, where its family has nets of that kind at one depth that
    differ in other axes, the values that differ from the family's usual one, e.g.
    "residual A, width=32". The usual nets keep the bare kind, so a legend entry means the same
    line in every panel."""
    labels = net_kind(df)
    for _, rows in df.groupby("family"):
        for axis in distinguishing_axes(rows):
            values = rows[axis].astype(str)
            unusual = rows.index[values != values.mode().iloc[0]]
            labels.loc[unusual] = labels.loc[unusual] + f", {axis}=" + values.loc[unusual]
    return labels


def _sparse_labels(ticks: list[int]) -> list[str]:
    """Tick labels that do not collide on a log axis: the paper's depths first, then any other
    depth far enough from every label already chosen. A wider axis packs its labels tighter, so
    the ratio between neighbours grows with the axis's range."""
    if not ticks:
        return []
    min_ratio = max(1.45, (max(ticks) / min(ticks)) ** 0.1)
    chosen: list[int] = []
    paper = [t for t in ticks if t in PAPER_DEPTHS]
    for tick in [*paper, *(t for t in ticks if t not in PAPER_DEPTHS)]:
        if all(max(tick, c) / min(tick, c) >= min_ratio for c in chosen):
            chosen.append(tick)
    return [str(t) if t in chosen else "" for t in ticks]


def complexity_figure(df: pd.DataFrame) -> Figure:
    """Params and MACs against depth, a column per family, a line per distinct net (never a
    mean over several)."""
    data = family_defaults(df)
    data = data.assign(kind=net_kind(data), net=line_labels(data))  # `net` titles the legend
    long = data.melt(
        id_vars=["family", "depth", "net"], value_vars=["params", "macs"],
        var_name="metric", value_name="count",
    )  # fmt: skip
    kind_of = dict(zip(data["net"], data["kind"], strict=True))
    # Lines grouped by kind (plain, then residual A, B, C), then alphabetically.
    lines = sorted(kind_of, key=lambda net: (list(LINE_WIDTHS).index(kind_of[net]), net))
    widths = {net: LINE_WIDTHS[kind] for net, kind in kind_of.items()}
    grid = sns.relplot(
        data=long, x="depth", y="count", hue="net", style="net", row="metric", col="family",
        kind="line", markers=True, dashes=True, height=3.2, aspect=1.25, alpha=0.8,
        hue_order=lines, style_order=lines, size="net", sizes=widths, size_order=lines,
        errorbar=None, row_order=list(METRIC_LABELS),
        col_order=[f for f in FAMILY_TITLES if f in set(long["family"])],
        facet_kws={"sharex": False, "sharey": False},
    )  # fmt: skip
    grid.set(xscale="log", yscale="log")
    for (metric, family), ax in grid.axes_dict.items():
        depths = sorted(long.loc[long["family"] == family, "depth"].unique())
        ax.set_xticks(depths, labels=_sparse_labels(depths), minor=False)
        ax.set_xticks([], minor=True)
        ax.set_title(f"{FAMILY_TITLES[family]}", fontsize=10)
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.grid(True, which="major", alpha=0.3)
    grid.figure.suptitle(
        "Cost against depth, family default stem (MACs: fvcore, conv + linear layers)", y=1.02
    )
    return grid.figure


def throughput_figure(df: pd.DataFrame) -> Figure:
    """images/s against MACs and depth, a row per mode, of one setting of the throughput table
    (device, precision, memory format, compile, batch policy); the median of repeated runs."""
    ok = df[df["status"] == "ok"]
    keys = ["variant", "family", "depth", "residual", "mode", "macs"]
    data = ok.groupby(keys, as_index=False)["images_per_s"].median()
    data = data.assign(
        net=data["residual"].map({True: "residual", False: "plain"}),
        family=data["family"].map(FAMILY_TITLES),
    )
    modes = [m for m in ("infer", "train") if m in set(data["mode"])]
    families = [t for t in FAMILY_TITLES.values() if t in set(data["family"])]
    depths = sorted(data["depth"].unique())
    fig = Figure(figsize=(10, 3.6 * len(modes)), layout="constrained")
    axes = fig.subplots(len(modes), 2, squeeze=False)
    for i, (row, mode) in enumerate(zip(axes, modes, strict=True)):
        subset = data[data["mode"] == mode]
        for ax, x, label in ((row[0], "macs", "MACs per image"), (row[1], "depth", "depth")):
            sns.lineplot(
                data=subset.sort_values(x), x=x, y="images_per_s", hue="family", style="net",
                hue_order=families, style_order=["plain", "residual"], markers=True,
                dashes=True, ax=ax, legend=i == 0 and ax is row[1],
            )  # fmt: skip
            ax.set(xscale="log", yscale="log", xlabel=label, ylabel=f"{mode} images/s")
            ax.grid(True, which="major", alpha=0.3)
        row[1].set_xticks(depths, labels=_sparse_labels(depths), minor=False)
        row[1].set_xticks([], minor=True)
    if len(axes[0][1].get_lines()):
        sns.move_legend(axes[0][1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    first = df.iloc[0]
    fig.suptitle(f"{first.get('machine', '')}: {first.get('precision', '')}, "
                 f"{memory_format(bool(first.get('channels_last')))}, "
                 f"batch {first.get('requested_batch_size', '')}", fontsize=10)  # fmt: skip
    return fig
