"""The claims an experiment tests, as data: a `Lower` or `GapGrows` contrast between two
selections of its nets (`Nets`) on a metric. ablations.report.claims judges them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from ablations.registry import AblationsError

Depth = Literal["min", "max"]
# A run's mean over its 3x3 layers of the responses table's std (the paper's Fig. 7). Every other
# metric is a numeric column of the runs table; errors are shown in percent.
RESPONSE_STD = "response_std"
# ImageNet's val top-1 error under the best crop protocol its runs recorded: 10-crop (the
# paper's Tables 2-3), multi-scale, else the centre crop.
VAL_TOP1 = "val_top1_error"
DEFAULT_METRIC = "train_error"  # Fig. 6's curves: the degradation is an optimisation effect


@dataclass(frozen=True)
class Nets:
    """The complete runs with the `where` values (residual, shortcut, variant, ...), narrowed to
    their shallowest (`depth="min"`) or deepest (`"max"`) depth; `label` names the side."""

    where: Mapping[str, str | int | bool] = field(default_factory=dict)
    depth: Depth | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.depth not in (None, "min", "max"):
            raise AblationsError(f"Nets depth must be 'min', 'max' or None; got {self.depth!r}")

    def at(self, depth: Depth) -> Nets:
        return replace(self, depth=depth)

    @property
    def name(self) -> str:
        """The label, or the selection spelled out ("shortcut b, stem k3")."""
        return self.label or ", ".join(f"{k} {v}" for k, v in self.where.items()) or "all"


@dataclass(frozen=True)
class Contrast:
    """A claim: its statement, and its two sides compared on `metric`."""

    statement: str
    lower: Nets
    higher: Nets
    metric: str = DEFAULT_METRIC


class Lower(Contrast):
    """`lower` has a lower `metric` than `higher`. One net per side: Welch's test of the two.
    Several: the nets are paired by depth and the mean of the paired differences is judged."""


class GapGrows(Contrast):
    """The gap `higher` minus `lower` in `metric` is larger at the deepest depth where both
    sides have a net than at the shallowest: a difference of differences."""
