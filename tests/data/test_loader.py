from __future__ import annotations

import numpy as np
import pytest
import torch

from ablations.data import DataError
from ablations.data.loader import (
    Normalizer,
    TrainStream,
    augment,
    eval_batches,
    pinned,
    share,
    split_indices,
    to_device,
    to_nchw,
)


def _images(n=40, size=8, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8))


def _stream(images, *, storage="device", workers=0, seed=1, pad=1, batch_size=8):
    labels = torch.arange(len(images)) % 10
    norm = Normalizer.fit(images, kind="channel")
    return TrainStream(
        images, labels, batch_size=batch_size, seed=seed, device=torch.device("cpu"),
        normalizer=norm, augment_pad=pad, storage=storage, workers=workers,
    )  # fmt: skip


def test_split_is_fixed_disjoint_and_complete():
    train, val = split_indices(100, val_size=10, seed=0)
    again, _ = split_indices(100, val_size=10, seed=0)
    other, _ = split_indices(100, val_size=10, seed=1)
    assert len(train) == 90 and len(val) == 10
    assert not np.array_equal(train[:10], np.sort(train[:10]))  # random order: prefixes are random
    assert not set(train) & set(val)
    assert sorted([*train, *val]) == list(range(100))
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_split_rejects_a_validation_set_as_large_as_the_data():
    with pytest.raises(DataError, match="val_size"):
        split_indices(10, val_size=10, seed=0)


def test_to_nchw_and_area_resize():
    x = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    x[:, :2, :2, 0] = 200  # one 2x2 block of the first channel
    nchw = to_nchw(x)
    assert nchw.shape == (2, 3, 4, 4) and nchw.dtype == torch.uint8
    small = to_nchw(x, size=2)
    assert small.shape == (2, 3, 2, 2)
    assert small[0, 0, 0, 0] == 200 and small[0, 0, 1, 1] == 0


def test_augment_is_a_shifted_window_of_the_padded_image_or_its_mirror():
    x = _images(n=16, size=6)
    g = torch.Generator().manual_seed(0)
    out = augment(x, pad=2, generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        windows = [padded[i, :, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    flipped = sum(not any(torch.equal(out[i], w) for w in [padded[i, :, r : r + 6, c : c + 6]
                  for r in range(5) for c in range(5)]) for i in range(len(x)))  # fmt: skip
    assert 0 < flipped < len(x)  # some images flipped, some not


def test_normalizers():
    x = _images(n=50)
    pixel = Normalizer.fit(x, kind="pixel-mean")
    assert pixel.mean.shape == (3, 8, 8)
    assert pixel(x).mean(dim=0).abs().max() < 1e-5  # every pixel centred
    channel = Normalizer.fit(x, kind="channel")
    out = channel(x)
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (out.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2
    with pytest.raises(DataError, match="pixel-mean or channel"):
        Normalizer.fit(x, kind="zca")


def test_batches_are_a_pure_function_of_seed_and_iteration():
    images = _images()
    first = [b for _, b in zip(range(12), _stream(images).batches(0), strict=False)]
    resumed = [b for _, b in zip(range(5), _stream(images).batches(7), strict=False)]
    for (x1, y1), (x2, y2) in zip(first[7:], resumed, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    other_seed = next(_stream(images, seed=2).batches(0))
    assert not torch.equal(first[0][0], other_seed[0])


def test_each_epoch_visits_every_image_once():
    images = _images(n=40)
    stream = _stream(images, pad=0, batch_size=8)
    labels = torch.cat([y for _, (_, y) in zip(range(5), stream.batches(0), strict=False)])
    seen = torch.cat([stream.order(0)[: 5 * 8]])
    assert torch.equal(labels, seen % 10)
    assert sorted(stream.order(0).tolist()) == list(range(40))
    assert not torch.equal(stream.order(0), stream.order(1))


@pytest.mark.parametrize("workers", [0, 2])
def test_host_dataloader_path_gives_the_device_path_batches(workers):
    images = _images()
    device = [b for _, b in zip(range(9), _stream(images).batches(3), strict=False)]
    host = [
        b
        for _, b in zip(
            range(9), _stream(images, storage="host", workers=workers).batches(3), strict=False
        )
    ]
    for (x1, y1), (x2, y2) in zip(device, host, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_batch_larger_than_the_data_is_a_clear_error():
    with pytest.raises(DataError, match="batch size 64 exceeds the 40 training images"):
        _stream(_images(), batch_size=64)


def test_eval_batches_cover_every_image_in_order():
    images = _images(n=25)
    labels = torch.arange(25)
    norm = Normalizer.fit(images, kind="channel")
    got = list(
        eval_batches(images, labels, batch_size=10, device=torch.device("cpu"), normalizer=norm)
    )
    assert [len(y) for _, y in got] == [10, 10, 5]
    assert torch.equal(torch.cat([y for _, y in got]), labels)
    torch.testing.assert_close(torch.cat([x for x, _ in got]), norm(images))


def test_tensors_bound_for_cuda_are_pinned_once(monkeypatch):
    """A copy from pageable memory to the GPU may wait for it: tensors bound for CUDA go from
    pinned memory, pinned only where they are not already; a CPU run pins nothing."""
    pinned_ids: set[int] = set()

    def pin(self):
        out = self.clone()
        pinned_ids.add(id(out))
        return out

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self: id(self) in pinned_ids)
    x = torch.arange(6)
    once = pinned(x, torch.device("cuda", 0))
    assert once is not x and torch.equal(once, x) and id(once) in pinned_ids
    assert pinned(once, torch.device("cuda", 0)) is once
    assert pinned(x, torch.device("cpu")) is x and len(pinned_ids) == 1


def test_cpu_evaluation_pins_nothing(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pytest.fail("pinned"))
    images, labels = _images(n=5), torch.arange(5)
    norm = Normalizer.fit(images, kind="channel")
    got = eval_batches(images, labels, batch_size=2, device=torch.device("cpu"), normalizer=norm)
    assert [len(y) for _, y in got] == [2, 2, 1]


@pytest.mark.parametrize(("n", "world"), [(25, 1), (25, 2), (25, 3), (2, 4), (0, 2)])
def test_shares_cover_every_image_once_in_order(n, world):
    shares = [share(n, (rank, world)) for rank in range(world)]
    assert [i for s in shares for i in s] == list(range(n))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    with pytest.raises(ValueError, match="not in a world"):
        share(n, (world, world))


def test_eval_batches_of_the_shares_are_the_whole():
    images, labels = _images(n=25), torch.arange(25)
    norm = Normalizer.fit(images, kind="channel")
    whole = eval_batches(images, labels, batch_size=10, device=torch.device("cpu"), normalizer=norm)
    parts = [list(eval_batches(images, labels, batch_size=10, device=torch.device("cpu"),
                               normalizer=norm, part=(rank, 3))) for rank in range(3)]  # fmt: skip
    assert [[len(y) for _, y in p] for p in parts] == [[8], [8], [9]]
    assert torch.equal(torch.cat([y for p in parts for _, y in p]), labels)
    torch.testing.assert_close(torch.cat([x for p in parts for x, _ in p]),
                               torch.cat([x for x, _ in whole]))  # fmt: skip


def test_runs_of_one_set_share_the_split_and_the_decoded_arrays(tiny_cifar):
    """The runs of one `ablate run` differ by seed and net: they reuse the last split made from
    the same arrays (and load_dataset the same arrays), but never across data settings."""
    from ablations.config import resolve_config
    from ablations.data import load_dataset
    from ablations.data.prepare import prepare_data

    first = load_dataset("cifar10", data=tiny_cifar)
    again = load_dataset("cifar10", data=tiny_cifar)
    assert again.x_train is first.x_train  # one copy per process, not one per run
    cpu = torch.device("cpu")
    a = prepare_data(resolve_config("resnet20", profile="smoke", seed=0), first, cpu)
    b = prepare_data(resolve_config("plain56", profile="smoke", seed=1), again, cpu)
    assert b.train.images is a.train.images and b.test[0] is a.test[0]
    assert (a.train.seed, b.train.seed) == (0, 1)
    other = prepare_data(resolve_config("resnet20", profile="smoke", val_size=64), first, cpu)
    assert other.train.images is not a.train.images and len(other.val[0]) == 64
    fresh = prepare_data(resolve_config("resnet20", profile="smoke", val_size=64), first, cpu)
    assert torch.equal(fresh.normalizer.mean, other.normalizer.mean)


def test_to_device_copies_to_cuda_from_pinned_memory(monkeypatch):
    calls: list[str] = []

    def pin(self):
        calls.append("pin")
        return self

    def to(self, device, non_blocking=False):
        calls.append(f"to {device} non_blocking={non_blocking}")
        return self

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    monkeypatch.setattr(torch.Tensor, "to", to)
    to_device(torch.zeros(2), torch.device("cuda", 0))
    assert calls == ["pin", "to cuda:0 non_blocking=True"]
    calls.clear()
    to_device(torch.zeros(2), torch.device("cpu"))
    assert calls == ["to cpu non_blocking=False"]
