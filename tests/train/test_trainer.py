"""Training learns, and the paper's ResNet-110 warm-up runs: behaviour read from the run's own
record (curves.csv and summary.json), not from the loop's internals."""

from __future__ import annotations

import gc
import os
import pickle
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ablations.config import resolve_config
from ablations.data import load_dataset
from ablations.data.prepare import prepare_data
from ablations.profiles import PAPER_WARMUP, PROFILES
from ablations.train.run import train
from ablations.train.trainer import Trainer

# Ten colours (the corners of the RGB cube and two greys): a class is its colour, which no crop
# or flip changes, so a net separates them in a few dozen steps.
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0],
                    [255, 0, 255], [0, 255, 255], [255, 255, 255], [90, 90, 90],
                    [170, 170, 170]])  # fmt: skip


def _colour_images(per_class: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(len(PALETTE)), per_class)  # classes interleaved
    noise = rng.integers(-40, 41, size=(len(labels), 32, 32, 3))
    pixels = np.clip(PALETTE[labels][:, None, None, :] * 0.7 + 38 + noise, 0, 255)
    return pixels.astype(np.uint8), labels.astype(np.int64)


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A separable 10-class dataset in CIFAR-10's pickled format (chance error: 90%)."""
    folder = tmp_path_factory.mktemp("colours") / "cifar-10-batches-py"
    folder.mkdir()
    x, y = _colour_images(60, seed=0)
    for i, index in enumerate(np.array_split(np.arange(len(y)), 5), start=1):
        _pickle(folder / f"data_batch_{i}", x[index], y[index])
    x_test, y_test = _colour_images(20, seed=1)
    _pickle(folder / "test_batch", x_test, y_test)
    names = [f"colour{i}".encode() for i in range(len(PALETTE))]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return folder


def _pickle(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    path.write_bytes(pickle.dumps({b"labels": [int(v) for v in y], b"data": flat}, protocol=2))


def _series(curves: pd.DataFrame, split: str, metric: str) -> pd.Series:
    rows = curves[(curves["split"] == split) & (curves["metric"] == metric)]
    return rows.set_index("iteration")["value"].sort_index()


def _learns(record: object, *, chance: float, fall: float) -> None:
    """The training loss of the last interval is below `fall` x the first's, and the final
    test error is 10 points better than chance."""
    curves = record.curves  # type: ignore[attr-defined]
    loss = _series(curves, "train", "loss")
    assert loss.iloc[-1] < fall * loss.iloc[0], f"training loss did not fall: {list(loss)}"
    summary = record.summary  # type: ignore[attr-defined]
    assert summary["status"] == "complete"
    assert summary["test_error"] < chance - 0.1, summary["test_error"]


@pytest.mark.parametrize("variant", ["resnet20", "plain20"])
def test_training_learns_a_separable_dataset(tmp_path, colours, variant):
    # lr 0.02 without decay: 30 steps of batch 32 at 8x8, seconds; the paper's 0.1 with no
    # schedule makes a short run's loss jump about, which is not what this test is about.
    config = resolve_config(variant, profile="smoke", device="cpu", iterations=30,
                            eval_every=10, lr_milestones=(), lr=0.02, input_size=8)  # fmt: skip
    record = train(config, out=tmp_path, data=colours, device="cpu", show_progress=False)
    _learns(record, chance=0.9, fall=0.8)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("ABLATE_DATA"), reason="set ABLATE_DATA to a copy of CIFAR-10"
)
def test_training_learns_real_cifar10(tmp_path):
    config = resolve_config("resnet20", profile="smoke", device="cpu", iterations=120,
                            batch_size=64, train_size=5_000, val_size=500, test_size=1_000,
                            eval_every=30, lr_milestones=())  # fmt: skip
    record = train(config, out=tmp_path, data=None, device="cpu", show_progress=False)
    # Measured on the JPEG copy: the loss fell from 2.34 to 1.92 over the four intervals.
    _learns(record, chance=0.9, fall=0.9)


def test_warmup_is_the_papers_nets_only():
    assert PAPER_WARMUP == ("resnet110", "resnet1202")
    for profile in ("paper", "paper-val", "cpu"):
        for variant in ("resnet110", "resnet110-a", "resnet1202"):
            assert resolve_config(variant, profile=profile, device="cpu").warmup_lr == 0.01
        # A depth threshold would catch these; the paper warmed none of them up.
        for variant in ("plain110", "resnet110-b", "resnet152", "plain1202", "resnet56"):
            assert resolve_config(variant, profile=profile, device="cpu").warmup_lr is None
    assert PROFILES["paper"].settings["val_size"] == 0  # Table 6 trains on all 50k images
    assert PROFILES["paper"].settings["eval_split"] == "test"  # Fig. 6 plots test error


@pytest.mark.slow
def test_resnet110_warms_up_at_001_until_training_error_is_below_80_percent(tmp_path, colours):
    # A tiny budget: 8x8 input, batch 16, no lr decay. The record must show lr 0.01 at every
    # evaluation up to the end of the warm-up, 0.1 after it, and the switch only once the
    # training error had fallen below 80% (chance on these 10 classes: 90%).
    overrides = {"iterations": 40, "eval_every": 10, "lr_milestones": (), "batch_size": 16,
                 "input_size": 8}  # fmt: skip
    config = resolve_config("resnet110", profile="smoke", device="cpu", **overrides)
    record = train(config, out=tmp_path, data=colours, device="cpu", show_progress=False)
    lr = _series(record.curves, "train", "lr")
    error = _series(record.curves, "train", "error")
    end = record.summary["warmup_end"]
    assert end is not None and 0 < end < 40, f"the warm-up did not end: errors {list(error)}"
    assert set(lr[lr.index <= end]) == {0.01} and set(lr[lr.index > end]) == {0.1}
    # The switch came once the training error was below 80%: in the last 20 iterations before
    # it (the loop judges the running error over a short window).
    assert error[(error.index > end - 20) & (error.index <= end)].min() < 0.8


@pytest.mark.parametrize("finished", [False, True])
def test_a_trainer_is_freed_as_soon_as_nothing_refers_to_it(tmp_path, tiny_cifar, finished):
    """No reference cycle: a run's model (on a GPU, its memory and CUDA graph) goes with its
    trainer, not when the cyclic collector happens to run."""
    cpu = torch.device("cpu")
    config = resolve_config("resnet20", profile="smoke", device="cpu", input_size=8)
    prepared = prepare_data(config, load_dataset(config.dataset, data=tiny_cifar), cpu)
    gc.collect()
    gc.disable()
    try:
        trainer = Trainer(config, prepared, directory=tmp_path, device=cpu, show_progress=False)
        if finished:
            trainer.run()
        else:
            trainer.advance(trainer.data.train.batches(0), until=2)
        refs = weakref.ref(trainer), weakref.ref(trainer.model)
        del trainer
        assert [ref() for ref in refs] == [None, None]
    finally:
        gc.enable()
