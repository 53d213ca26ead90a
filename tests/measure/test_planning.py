"""ablations.measure.planning: the projection of a planned set from measured step times, the
number of runs at once chosen from a measurement, and the lines `ablate plan --measure` prints."""

from __future__ import annotations

import pandas as pd
import pytest

from ablations.config import resolve_config
from ablations.measure import planning
from ablations.results import schemas

MACHINE = "NVIDIA H100 80GB HBM3"


def _speed(variant: str, ms_per_step: float, created_at: str = "2026-12-06") -> dict:
    config = resolve_config(variant, profile="paper", device="cpu")
    return {"variant": variant, "step": "graph", "batch_size": config.batch_size,
            "precision": config.precision, "channels_last": config.channels_last,
            "ms_per_step": ms_per_step, "eval_s": 1.0, "created_at": created_at}  # fmt: skip


def test_the_projection_counts_only_the_runs_measured():
    configs = [resolve_config(v, profile="paper", device="cpu", seed=s)
               for v in ("resnet20", "resnet56") for s in (0, 1)]  # fmt: skip
    rows = pd.DataFrame([_speed("resnet20", 3.0, "2026-12-01"), _speed("resnet20", 2.0)])
    projection = planning.project(rows, configs, {c.run_id: 391 for c in configs})
    # 64k steps of 2 ms (the newer row); 128 evaluations (every 500 steps) and the final test
    # pass (counted twice) of 1 s each; both seeds of resnet20, neither of resnet56.
    each = pytest.approx(64_000 * 2e-3 + 130 * 1.0)
    assert projection["graph_seconds"] == {configs[0].run_id: each, configs[1].run_id: each}
    assert projection["graph_unmeasured"] == ["resnet56"] and projection["runs"] == 4
    assert projection["graph_total_minutes"] == pytest.approx(2 * (128 + 130) / 60)


def test_a_run_without_its_epoch_length_is_not_projected():
    config = resolve_config("resnet20", profile="paper", device="cpu")
    projection = planning.project(pd.DataFrame([_speed("resnet20", 2.0)]), [config], {})
    assert projection["graph_seconds"] == {} and projection["graph_unmeasured"] == ["resnet20"]


def _at_once(rates: dict[int, float], machine: str = MACHINE) -> pd.DataFrame:
    rows = [{"method": "streams", "jobs": k, "images_per_s": v, "machine": machine,
             "created_at": "2026-12-06"} for k, v in rates.items()]  # fmt: skip
    rows.append({**rows[0], "method": "processes", "jobs": 8, "images_per_s": 1e9})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        ({1: 100.0, 2: 180.0, 4: 250.0, 8: 240.0}, (4, 2.5)),  # the best streams K
        ({1: 100.0, 2: 105.0, 4: 108.0}, (1, 1.0)),  # under 10% better: one at a time
        ({2: 180.0, 4: 250.0}, (1, 1.0)),  # no run alone to compare with
    ],
)
def test_runs_at_once_are_chosen_from_the_measurement(rates, expected):
    assert planning.best_runs_at_once(_at_once(rates), MACHINE) == expected


def test_another_machines_measurement_chooses_nothing():
    table = _at_once({1: 100.0, 4: 250.0}, machine="another GPU")
    assert planning.best_runs_at_once(table, MACHINE) == (1, 1.0)
    assert planning.best_runs_at_once(schemas.RUNS_AT_ONCE.empty(), MACHINE) == (1, 1.0)


def test_the_printed_projection_says_what_is_left_and_what_was_not_measured():
    projection = {"runs": 3, "graph_seconds": {"a": 1800.0, "b": 5400.0},
                  "graph_total_minutes": 120.0, "graph_unmeasured": ["resnet110"],
                  "runs_at_once": 4, "combined_speedup": 2.0}  # fmt: skip
    assert planning.describe(projection, missing={"b"}) == [
        "graph step: 2.0 h for 2 run(s) one at a time, 1.0 h 4 at once; 1.5 h of it still to "
        "train; not measured: resnet110"
    ]
    assert planning.describe({"runs": 1}, missing=set()) == ["nothing measured yet"]
    assert [planning.span(s) for s in (42, 90, 7200)] == ["42 s", "1.5 min", "2.0 h"]
