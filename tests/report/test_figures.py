from __future__ import annotations

import pandas as pd

from ablations.measure import complexity
from ablations.report.cost_figures import (
    complexity_figure,
    family_defaults,
    net_kind,
    throughput_figure,
)


def test_complexity_figure_has_a_panel_per_metric_and_family():
    cifar = ["resnet20", "resnet32", "plain20", "plain32", "resnet20-b", "resnet32-b"]
    imagenet = ["resnet18", "resnet34", "plain18", "plain34", "resnet18-k3"]
    df = complexity.measure(cifar + imagenet)
    fig = complexity_figure(df)
    titles = sorted(ax.get_title() for ax in fig.axes if ax.get_title())
    assert titles == sorted(["CIFAR family (32x32)", "ImageNet family (224x224)"] * 2)
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    # resnet18-k3 is not a family default, so it is not drawn.
    assert "resnet18-k3" not in set(family_defaults(df)["name"])
    assert sorted(set(net_kind(df))) == ["plain", "residual A", "residual B"]


def test_complexity_figure_with_one_family():
    df = complexity.measure(["resnet20", "plain20"])
    fig = complexity_figure(df)
    assert len([ax for ax in fig.axes if ax.get_title()]) == 2


def _throughput_rows():
    rows = []
    for variant, family, depth, residual, macs in [
        ("resnet20", "cifar", 20, True, 40e6), ("plain20", "cifar", 20, False, 40e6),
        ("resnet56", "cifar", 56, True, 125e6), ("resnet18", "imagenet", 18, True, 1.8e9),
        ("resnet34", "imagenet", 34, True, 3.6e9),
    ]:  # fmt: skip
        for mode in ("infer", "train"):
            rows.append({"variant": variant, "family": family, "depth": depth, "residual": residual,
                         "mode": mode, "macs": macs, "status": "ok",
                         "images_per_s": 1e11 / macs / (3 if mode == "train" else 1)})  # fmt: skip
    return pd.DataFrame(rows)


def test_throughput_figure_plots_images_per_s_against_macs_and_depth():
    fig = throughput_figure(_throughput_rows())
    axes = [ax for ax in fig.axes if ax.get_xlabel()]
    assert sorted(ax.get_xlabel() for ax in axes) == ["MACs per image"] * 2 + ["depth"] * 2
    assert {ax.get_ylabel() for ax in axes} == {"infer images/s", "train images/s"}
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in axes)


def test_cost_figure_shows_only_the_papers_grid():
    import pandas as pd

    from ablations import get_variant
    from ablations.report.cost_figures import family_defaults

    names = ["resnet20", "resnet14", "resnet18", "resnet18-d2l", "resnet18-k3"]
    df = pd.DataFrame([get_variant(n).axes() for n in names]).astype({"conv_bias": str})
    assert list(family_defaults(df)["name"]) == ["resnet20", "resnet18"]
