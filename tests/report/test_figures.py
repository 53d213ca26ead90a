from __future__ import annotations

import pandas as pd

from ablations.measure import complexity
from ablations.report.cost_figures import (
    complexity_figure,
    distinguishing_axes,
    family_defaults,
    line_labels,
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


def test_cost_figure_shows_nets_of_the_papers_form_at_any_depth():
    import pandas as pd

    from ablations import get_variant
    from ablations.report.cost_figures import family_defaults

    names = ["resnet20", "resnet14", "resnet18", "resnet18-d2l", "resnet18-k3"]
    df = pd.DataFrame([get_variant(n).axes() for n in names]).astype({"conv_bias": str})
    assert list(family_defaults(df)["name"]) == ["resnet20", "resnet14", "resnet18"]


def _cost_rows(variants):
    """Complexity rows of `variants` with made-up counts, distinct per net."""
    return pd.DataFrame(
        [{**v.axes(), "params": 1000 * (i + 1), "macs": 10_000 * (i + 1)}
         for i, v in enumerate(variants)]
    )  # fmt: skip


def _points(fig, title, ylabel):
    """(depth, count) of every line drawn in one panel."""
    [ax] = [a for a in fig.axes if a.get_title() == title and a.get_ylabel() == ylabel]
    return sorted((x, y) for line in ax.get_lines() for x, y in zip(*line.get_data(), strict=True))


def test_a_wider_net_is_its_own_line_never_averaged_with_the_default_width():
    from ablations import derive, get_variant

    nets = [get_variant("resnet20"), get_variant("resnet56"),
            derive("resnet56", name="resnet56-double", width=32)]  # fmt: skip
    df = _cost_rows(nets)
    # The usual width keeps the bare kind, so its legend entry matches the other panels'.
    assert list(line_labels(df)) == ["residual A"] * 2 + ["residual A, width=32"]
    fig = complexity_figure(df)
    # Each net is a point of its own: 2,000 and 3,000 params at depth 56, no 2,500 between.
    assert _points(fig, "CIFAR family (32x32)", "parameters") == [(20, 1000), (56, 2000),
                                                                  (56, 3000)]  # fmt: skip
    labels = {t.get_text() for legend in fig.legends for t in legend.get_texts()}
    assert {"residual A", "residual A, width=32"} <= labels


def test_lines_name_only_the_axes_that_tell_nets_apart():
    from ablations import get_variant

    df = _cost_rows([get_variant(n) for n in ("resnet20", "plain20", "resnet56", "resnet18",
                                              "resnet50")])  # fmt: skip
    # ImageNet's block changes with depth, never at one depth: the lines stay the paper's.
    assert distinguishing_axes(df) == []
    assert sorted(set(line_labels(df))) == ["plain", "residual A", "residual B"]
