"""What a start of a streamed run spends its set-up on, done once: the paper's per-pixel mean is
decoded once per training listing, recipe and seed, then read from the data cache (a resumed
run or another run of the profile does not decode 10,000 images again; a damaged cache file is
rebuilt, never trusted), and the tree is listed once for both splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_imagenet import members, write_tree

from ablations.config import TrainConfig
from ablations.imagenet import prepare
from ablations.imagenet.augment import RECIPES
from ablations.imagenet.index import build_index

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
PAPER = prepare.scaled(RECIPES["imagenet-paper"], 32)


@pytest.fixture(scope="module")
def train_index(tmp_path_factory):
    root = write_tree(tmp_path_factory.mktemp("in"), members(train_per_class=3))
    return build_index("train", root)


def _mean(index, cache, **kwargs):
    return prepare.pixel_mean_normalizer(
        index, kwargs.pop("recipe", PAPER), seed=kwargs.pop("seed", 0), workers=0,
        cache_dir=cache,
    )  # fmt: skip


def test_the_pixel_mean_is_decoded_once_then_read(train_index, tmp_path, monkeypatch):
    first = _mean(train_index, tmp_path)
    assert first.kind == "pixel-mean" and first.mean.shape == (3, 32, 32)
    assert len(list((tmp_path / "pixel-means").glob("*.npy"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(prepare, "fit_normalizer", no_decoding)
    again = _mean(train_index, tmp_path)
    torch.testing.assert_close(again.mean, first.mean, rtol=0, atol=0)
    with pytest.raises(AssertionError, match="decoded again"):  # another seed: other images
        _mean(train_index, tmp_path, seed=1)


def test_a_damaged_pixel_mean_is_rebuilt(train_index, tmp_path):
    first = _mean(train_index, tmp_path)
    (path,) = (tmp_path / "pixel-means").glob("*.npy")
    np.save(path, np.zeros((3, 8, 8), dtype=np.float32))  # a shape no run of this recipe has
    with pytest.warns(UserWarning, match="rebuilding the pixel mean"):
        rebuilt = _mean(train_index, tmp_path)
    torch.testing.assert_close(rebuilt.mean, first.mean, rtol=0, atol=0)
    path.write_bytes(b"not an array")
    with pytest.warns(UserWarning, match="rebuilding the pixel mean"):
        _mean(train_index, tmp_path)


def test_a_fixed_normalisation_decodes_nothing(train_index, tmp_path):
    torchvision = prepare.scaled(RECIPES["imagenet-torchvision"], 32)
    assert _mean(train_index, tmp_path, recipe=torchvision).kind == "fixed"
    assert not (tmp_path / "pixel-means").exists()


def test_a_start_lists_the_tree_once(tmp_path, monkeypatch):
    # The checksum covers both splits: listing (a stat per file, 1.3M of them on ImageNet) once
    # serves the train and the val index.
    from ablations.imagenet import index

    calls = []
    listing = index.layout_listing
    monkeypatch.setattr(index, "layout_listing", lambda *a: calls.append(a) or listing(*a))
    root = write_tree(tmp_path / "in", members(train_per_class=2, val_per_class=1))
    config = TrainConfig(variant="resnet18", dataset="imagenet", stream="imagenet-torchvision",
                         batch_size=2, workers=0, input_size=32)  # fmt: skip
    data = prepare.prepare_stream_run(config, data=root, device=torch.device("cpu"))
    assert len(calls) == 1 and len(data.val) == 3 and data.train.steps_per_epoch == 3
