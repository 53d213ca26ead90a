"""TRAINER_VERSION guarded: a change to training that changes what a run produces, made without
bumping the version, would let stored runs count as done though the code now trains them
otherwise. Two pinned short runs are trained here and their loss curves compared with
tests/golden/trainer.json, written at the current TRAINER_VERSION.

After a deliberate change: bump TRAINER_VERSION in ablations/versions.py, then rewrite the
golden file with `ABLATE_WRITE_GOLDEN=1 pytest tests/test_versions.py` and commit both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from ablations import versions
from ablations.config import TrainConfig
from ablations.train.run import train

GOLDEN = Path(__file__).parent / "golden" / "trainer.json"
REWRITE = "ABLATE_WRITE_GOLDEN=1 pytest tests/test_versions.py"
# Pinned here, not read from a profile: editing a profile is no change to the trainer. Two
# runs cover the loop's two ways of counting (iterations, with lr milestones and the val split;
# epochs, Adam, fixed normalisation, no augmentation, the test split).
SHAPE = dict(profile="golden", batch_size=32, val_size=128, test_size=256, input_size=16,
             eval_batch_size=256)  # fmt: skip
PINNED: dict[str, dict[str, object]] = {
    "sgd-iterations": dict(lr=0.1, train_size=512, iterations=4, lr_milestones=(2, 3),
                           eval_every=1),
    "adam-epochs": dict(optimizer="adam", lr=1e-3, epochs=2, lr_milestones=(1,), train_size=64,
                        normalize="fixed", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                        augment=False, eval_split="test"),
}  # fmt: skip
# Other kernels move these losses (measured on an AMD EPYC: AVX2 against AVX-512, one thread
# against two, ATen's default kernels with oneDNN at SSE4.1): at iteration 1, the untrained net
# (data, augmentation, normalisation, initialisation), by at most 2.1e-7 relative; after a few
# steps, as rounding grows through BN, by at most 2.0e-3. A change to any of those, to the
# optimiser or to the schedule moves them further.


def rtol(point: str) -> float:
    return 2e-5 if point.endswith("@1") else 1e-2


def losses(name: str, data: Path, out: Path) -> dict[str, float]:
    """The pinned run's loss at every evaluation, per split ("<split>@<iteration>")."""
    config = TrainConfig(variant="resnet20", **SHAPE, **PINNED[name])  # type: ignore[arg-type]
    record = train(config, out=out, data=data, device=torch.device("cpu"), show_progress=False)
    loss = record.curves[record.curves["metric"] == "loss"]
    return {f"{s}@{i}": float(v) for s, i, v in zip(loss["split"], loss["iteration"],
                                                        loss["value"], strict=True)}  # fmt: skip


@pytest.fixture(scope="module")
def produced(tiny_cifar: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("golden-runs")
    runs = {name: losses(name, tiny_cifar, out) for name in PINNED}
    if os.environ.get("ABLATE_WRITE_GOLDEN"):
        text = json.dumps({"trainer_version": versions.TRAINER_VERSION, "losses": runs}, indent=1)
        GOLDEN.write_text(text + "\n")
    return runs


def golden() -> dict:
    return json.loads(GOLDEN.read_text())


def test_the_golden_was_written_at_the_current_trainer_version(produced):
    assert golden()["trainer_version"] == versions.TRAINER_VERSION, (
        f"TRAINER_VERSION is {versions.TRAINER_VERSION} but tests/golden/trainer.json was written "
        f"at {golden()['trainer_version']}: rewrite it with `{REWRITE}`"
    )


@pytest.mark.parametrize("name", PINNED)
def test_training_produces_what_this_trainer_version_recorded(name, produced):
    expected, got = golden()["losses"][name], produced[name]
    assert set(got) == set(expected), f"{name} evaluates at other points: {sorted(got)}"
    moved = {k: (expected[k], got[k]) for k in expected
             if abs(got[k] - expected[k]) > rtol(k) * abs(expected[k])}  # fmt: skip
    assert not moved, (
        f"{name} trains otherwise than trainer v{versions.TRAINER_VERSION} recorded "
        f"(golden, now): {moved}; if the change is meant, bump TRAINER_VERSION in "
        f"ablations/versions.py (stored runs become stale) and rewrite the golden with "
        f"`{REWRITE}`"
    )
