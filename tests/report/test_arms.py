"""A claim's arms: ImageNet's val top-1 metric reads the best crop protocol the runs recorded."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ablations.claims import VAL_TOP1, Lower, Nets
from ablations.report.arms import judged_crops, metric
from ablations.report.claims import judge


def _runs(*, ten_crop: bool) -> pd.DataFrame:
    rows = []
    for variant, error in (("plain34", 0.30), ("plain18", 0.28)):
        for seed in range(3):
            rows.append({"run_id": f"{variant}_s{seed}", "variant": variant, "depth": 18,
                         "seed": seed, "status": "complete", "val_error": error + seed / 1000,
                         "ten_crop_val_error": error - 0.02 if ten_crop else math.nan,
                         "multi_scale_val_error": math.nan})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("ten_crop", "crops", "plain34"),
    [(True, "10-crop", "plain-34 28.0 ± 0.0%"), (False, "centre crop", "plain-34 30.1 ± 0.1%")],
)
def test_val_top1_reads_10_crop_where_recorded_else_the_centre_crop(ten_crop, crops, plain34):
    runs = _runs(ten_crop=ten_crop)
    assert judged_crops(runs) == crops
    assert metric(VAL_TOP1, runs).words == f"val top-1 error ({crops})"
    claim = Lower("plain-34 is worse", lower=Nets(where={"variant": "plain18"}),
                  higher=Nets(where={"variant": "plain34"}), metric=VAL_TOP1)  # fmt: skip
    text = judge(claim, runs).text
    assert text.startswith(f"holds: plain-34 is worse: val top-1 error ({crops}) {plain34} (3 ")
