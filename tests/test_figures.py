from __future__ import annotations

from ablations.report.figures import complexity_figure, family_defaults, net_kind
from ablations.runners import complexity


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
