"""`ablate loader-speed` (ablations.measure.loader_speed) on the CPU: a row per setting, and a
clock that starts and stops at the end of a round of the workers' batches, so that it never
counts batches decoded before it started."""

from __future__ import annotations

import pytest
import torch
from tiny_imagenet import members, write_tree

from ablations.measure import loader_speed as measure
from ablations.measure.loader_speed import MIN_ROUNDS, loader_speed, whole_rounds

# torchvision 0.29's deprecation of its decoders (see ablations.imagenet.streaming).
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("imagenet"), members())


@pytest.mark.parametrize("workers", [0, 1, 2, 3, 16, 32, 57, 64])
@pytest.mark.parametrize("ahead", [0, 1])
@pytest.mark.parametrize(("warmup", "batches"), [(0, 1), (5, 50), (6, 64), (100, 7)])
def test_warm_up_and_timing_end_as_rounds_end(workers, ahead, warmup, batches):
    untimed, timed = whole_rounds(warmup=warmup, batches=batches, workers=workers, ahead=ahead)
    per_round = max(1, workers)
    assert (untimed + ahead) % per_round == 0 and timed % per_round == 0  # the clock's edges
    assert warmup <= untimed < warmup + per_round  # no more than asked, rounded up
    assert timed >= batches and timed >= MIN_ROUNDS * per_round
    assert timed < max(batches, MIN_ROUNDS * per_round) + per_round


def test_rounds_of_32_workers():
    # On CUDA 5 warm-up calls read 6 batches (one ahead), and 50 timed ones would end within
    # the second round, the rest of the first counted though decoded before the clock started.
    assert whole_rounds(warmup=5, batches=50, workers=32, ahead=1) == (31, 96)
    assert whole_rounds(warmup=5, batches=50, workers=1, ahead=0) == (5, 50)  # as asked
    assert whole_rounds(warmup=5, batches=50, workers=16, ahead=0) == (16, 64)


def test_rows_count_the_batches_timed(tree, monkeypatch):
    """The timed window is handed to `timed` in whole rounds, and the row's images are those."""
    calls: list[tuple[int, int]] = []

    def clock(step, *, device, steps, warmup):
        calls.append((warmup, steps))
        return 2.0

    monkeypatch.setattr(measure, "timed", clock)
    rows = loader_speed(tree, paths=("cpu-decode",), workers=(3,), batch_sizes=(4,), batches=10,
                        warmup=4, device=CPU)  # fmt: skip
    assert calls == [(6, 12)]  # no workers start: the clock never steps the stream here
    assert rows[0]["images"] == 48 and rows[0]["images_per_s"] == 24.0


def test_loader_speed_rows(tree):
    rows = loader_speed(tree, paths=("cpu-decode", "gpu-decode"), workers=(0,), batch_sizes=(4,),
                        batches=2, device=CPU)  # fmt: skip
    assert [r["path"] for r in rows] == ["cpu-decode", "gpu-decode"]
    for r in rows:
        assert r["workers"] == 0 and r["batch"] == 4 and r["images"] == 4 * MIN_ROUNDS
        assert r["images_per_s"] > 0 and r["device"] == "cpu" and r["machine"]
