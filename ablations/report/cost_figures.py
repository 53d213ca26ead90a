"""Figures of what the nets cost, as pure functions of tidy tables: params and MACs against
depth (complexity.csv) and images/s against depth (throughput.csv). The training runs' figures
are in figures.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ablations.variants import CIFAR_DEPTHS, FAMILY_DEFAULTS, IMAGENET_STAGES

PAPER_DEPTHS = {"cifar": CIFAR_DEPTHS, "imagenet": tuple(IMAGENET_STAGES)}

FAMILY_TITLES = {"cifar": "CIFAR family (32x32)", "imagenet": "ImageNet family (224x224)"}
METRIC_LABELS = {"params": "parameters", "macs": "MACs per image"}
KIND_ORDER = ["plain", "residual A", "residual B", "residual C"]
# Plain nets cost exactly what option A costs; a thick line under A keeps both visible.
LINE_WIDTHS = {"plain": 5.0, "residual A": 1.5, "residual B": 1.5, "residual C": 1.5}


def net_kind(df: pd.DataFrame) -> pd.Series:
    """ "plain" or "residual A/B/C": the label that separates lines in figures."""
    return pd.Series(
        np.where(df["residual"], "residual " + df["shortcut"].str.upper(), "plain"), index=df.index
    )


def family_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with their family's default stem, stride placement and input: the paper's own nets
    at the paper's depths (not a tutorial's resnet14 or 1-channel d2l net)."""
    keep = pd.Series(False, index=df.index)
    for family, defaults in FAMILY_DEFAULTS.items():
        keep |= (
            (df["family"] == family) & (df["stem"] == defaults["stem"])
            & (df["input_size"] == defaults["input_size"]) & df["depth"].isin(PAPER_DEPTHS[family])
        )  # fmt: skip
    for axis, default in (("in_channels", 3), ("conv_bias", False), ("projection_bn", True)):
        if axis in df:  # tables written before the axis existed hold only the default
            keep &= df[axis].astype(str) == str(default)  # extra columns are read as text
    return df[keep & (df["stride_at"] == "3x3")]


def _sparse_labels(ticks: list[int], *, min_ratio: float = 1.45) -> list[str]:
    """Tick labels that do not collide on a log axis: skip a tick too close to the last label."""
    labels, last = [], 0.0
    for tick in ticks:
        show = not last or tick / last >= min_ratio
        labels.append(str(tick) if show else "")
        last = tick if show else last
    return labels


def complexity_figure(df: pd.DataFrame) -> Figure:
    """Params and MACs against depth, plain vs residual (shortcut A/B/C), one column per family."""
    data = family_defaults(df).assign(net=net_kind)
    long = data.melt(
        id_vars=["family", "depth", "net"], value_vars=["params", "macs"], var_name="metric",
        value_name="count",
    )  # fmt: skip
    grid = sns.relplot(
        data=long, x="depth", y="count", hue="net", style="net", row="metric", col="family",
        kind="line", markers=True, dashes=True, height=3.2, aspect=1.25, alpha=0.8,
        hue_order=KIND_ORDER, size="net", sizes=LINE_WIDTHS, size_order=KIND_ORDER,
        row_order=list(METRIC_LABELS),
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
    """images/s against MACs and against depth, plain vs residual, one row per mode; `df` holds
    one setting (device, precision, memory format, compile, batch policy) of the throughput
    table, and repeated runs are summarised by their median."""
    ok = df[df["status"] == "ok"]
    data = (
        ok.groupby(["variant", "family", "depth", "residual", "mode", "macs"], as_index=False)[
            "images_per_s"
        ]
        .median()
        .assign(
            net=lambda d: np.where(d["residual"], "residual", "plain"),
            family=lambda d: d["family"].map(FAMILY_TITLES),
        )
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
    memory = "channels_last" if first.get("channels_last") else "NCHW"
    fig.suptitle(f"{first.get('machine', '')}: {first.get('precision', '')}, {memory}, "
                 f"batch {first.get('requested_batch_size', '')}", fontsize=10)  # fmt: skip
    return fig
