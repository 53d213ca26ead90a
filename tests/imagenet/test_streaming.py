"""ImageNet layouts, the protocols' augmentation and the streaming loader, on a tiny tree."""

from __future__ import annotations

import math
import shutil
import tarfile

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from tiny_imagenet import WNIDS, members, write_devkit_root, write_shards, write_tree

from ablations.config import TrainConfig
from ablations.data import DataError
from ablations.data.image_index import subset_index
from ablations.data.loader import Normalizer, generator
from ablations.imagenet import streaming
from ablations.imagenet.augment import (
    PCA_EIGVAL,
    PCA_EIGVEC,
    RECIPES,
    Recipe,
    eval_center,
    lighting,
    rrc_box,
    sample_geometry,
    ten_crop,
    train_sample,
)
from ablations.imagenet.index import ENV_VAR, build_index, ground_truth_wnids
from ablations.imagenet.prepare import pixel_mean_normalizer, prepare_stream_run
from ablations.imagenet.streaming import ImageStream, decode, eval_batches, fit_normalizer
from ablations.measure.loader_speed import loader_speed
from ablations.train.evaluation import view_average, view_logits

# torchvision 0.29's deprecation of its decoders (see ablations.imagenet.streaming).
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
CPU = torch.device("cpu")
PLAIN = Normalizer.fixed((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def files():
    return members()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_VAR, raising=False)


def labelled(index):
    return {
        (f.split(":")[-1].split("/")[-1], index.classes[y])
        for f, y in zip(index.files, index.labels, strict=True)
    }


# --- layouts -----------------------------------------------------------------------------------


def test_imagefolder_tree(tmp_path, files):
    root = write_tree(tmp_path / "in", files)
    train, val = build_index("train", root), build_index("val", root)
    assert train.classes == WNIDS and train.layout == "imagefolder"
    assert len(train) == 12 and len(val) == 6
    assert labelled(train) == {
        (n.split("/")[2], n.split("/")[1]) for n in files if n[:5] == "train"
    }
    assert train.read(0) == files[train.files[0]]


def test_devkit_flat_val_takes_labels_from_meta_bin(tmp_path, files):
    wnids = write_devkit_root(tmp_path / "in", files)
    val = build_index("val", tmp_path / "in")
    assert val.layout == "devkit"
    assert [val.classes[y] for y in val.labels] == wnids
    assert val.files[0] == "val/ILSVRC2012_val_00000001.JPEG"


def test_original_archives_are_ignored_beside_a_tree_and_refused_alone(tmp_path, files):
    root = write_tree(tmp_path / "in", files)
    with tarfile.open(root / "ILSVRC2012_img_val.tar", "w"):
        pass  # torchvision's root keeps the downloads beside the extracted tree
    assert build_index("val", root).layout == "imagefolder"
    alone = tmp_path / "downloads"
    alone.mkdir()
    (root / "ILSVRC2012_img_val.tar").rename(alone / "ILSVRC2012_img_val.tar")
    with pytest.raises(DataError, match=r"original archive.*extract it"):
        build_index("val", alone)


def test_ground_truth_ids_map_through_meta_mat_ids():
    # ILSVRC2012_IDs are not in WNID order: ID 1 may be any class.
    assert ground_truth_wnids({1: "n2", 2: "n1"}, "2\n1\n1\n") == ["n1", "n2", "n2"]
    with pytest.raises(DataError, match="unknown ILSVRC2012_ID"):
        ground_truth_wnids({1: "n1"}, "3\n")


def test_flat_val_without_labels_names_the_fix(tmp_path, files):
    write_devkit_root(tmp_path / "in", files)
    (tmp_path / "in" / "meta.bin").unlink()
    with pytest.raises(DataError, match="ILSVRC2012_devkit_t12"):
        build_index("val", tmp_path / "in")


def test_tar_shards_match_the_tree(tmp_path, files):
    tree = write_tree(tmp_path / "in", files)
    shards = write_shards(tmp_path / "shards", files)
    for split in ("train", "val"):
        a, b = build_index(split, tree), build_index(split, shards)
        assert b.layout == "tar-shards" and b.classes == a.classes
        assert labelled(a) == labelled(b)
        by_name = {f.split("/")[-1]: i for i, f in enumerate(a.files)}
        for i, f in enumerate(b.files):
            assert b.read(i) == a.read(by_name[f.split("/")[-1]])


def test_index_is_cached_by_listing(tmp_path, files, monkeypatch):
    shards = write_shards(tmp_path / "shards", files)
    first = build_index("train", shards)
    monkeypatch.setattr("ablations.imagenet.index.shard_index", lambda *a: pytest.fail("rebuilt"))
    again = build_index("train", shards)
    assert again.files == first.files and again.checksum == first.checksum
    assert again.read(3) == first.read(3)


def test_missing_data_says_how_to_point_at_a_copy(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=f"--data.*{ENV_VAR}.*never downloaded"):
        build_index("train")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="does not exist"):
        build_index("train")


# --- augmentation ------------------------------------------------------------------------------


def test_random_resized_crop_stays_in_scale_and_ratio():
    g = generator(7)
    for _ in range(2000):
        top, left, h, w = rrc_box(375, 500, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), g=g)
        assert top >= 0 and top + h <= 375 and left >= 0 and left + w <= 500
        # rounding the sides to whole pixels moves area and ratio by at most a pixel's worth
        assert 0.08 - 2 / 375 <= h * w / (375 * 500) <= 1.0
        assert 3 / 4 - 1.5 / h <= w / h <= 4 / 3 + 1.5 / h


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    grid = np.union1d(a, b)
    cdf = [np.searchsorted(np.sort(x), grid, side="right") / len(x) for x in (a, b)]
    return float(np.abs(cdf[0] - cdf[1]).max())


def _box_statistics(boxes: list[tuple[int, int, int, int]], height: int, width: int) -> dict:
    top, left, h, w = (np.array(c, dtype=float) for c in zip(*boxes, strict=True))
    return {
        "area": h * w / (height * width), "log_ratio": np.log(w / h),
        "top": top / np.maximum(height - h, 1), "left": left / np.maximum(width - w, 1),
    }  # fmt: skip


@pytest.mark.parametrize("shape", [(375, 500), (1000, 120)])  # the second often falls back
def test_random_resized_crop_draws_as_torchvision_does(shape):
    # The same distribution as torchvision's RandomResizedCrop.get_params: a two-sample KS test
    # on each statistic. (Seeded alike, the draws even coincide but for float32 rounding in
    # theirs: gaps of 5e-5 measured.) With 20,000 draws each, D > 0.025 has p < 2e-5 under one
    # distribution; a uniform ratio (0.074), the scale from 0.1 (0.031) or a box centred a
    # fifth of the time (0.098) exceed it.
    from torchvision.transforms import RandomResizedCrop

    height, width = shape
    n, scale, ratio = 20_000, (0.08, 1.0), (3 / 4, 4 / 3)
    g = generator(11)
    ours = [rrc_box(height, width, scale=scale, ratio=ratio, g=g) for _ in range(n)]
    torch.manual_seed(11)
    image = torch.empty(3, height, width)
    theirs = [RandomResizedCrop.get_params(image, list(scale), list(ratio)) for _ in range(n)]
    a, b = _box_statistics(ours, height, width), _box_statistics(theirs, height, width)
    gaps = {k: _ks(a[k], b[k]) for k in a}
    assert max(gaps.values()) < 0.025, gaps


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_short_side_and_flip_rate(recipe):
    n, shorts, flips = 4000, [], 0
    g = generator(3)
    for _ in range(n):
        geometry = sample_geometry(375, 500, RECIPES[recipe], g=g)
        flips += geometry.flip
        if geometry.resized is not None:
            shorts.append(min(geometry.resized))
            top, left, h, w = geometry.box
            assert (h, w) == (224, 224) and top + h <= geometry.resized[0]
            assert left + w <= geometry.resized[1]
    if RECIPES[recipe].train == "he-scale":
        # uniform on the 225 integers 256..480: all in range, and both ends reached
        assert min(shorts) == 256 and max(shorts) == 480
    # Binomial(4000, 1/2) has std sqrt(4000)/2 ~ 31.6; 4 std fails a fair coin ~6e-5 of runs.
    assert abs(flips - n / 2) <= 4 * math.sqrt(n) / 2


def test_train_sample_applies_its_geometry():
    image = torch.randint(0, 256, (3, 300, 260), generator=generator(1), dtype=torch.uint8)
    for name, recipe in RECIPES.items():
        for seed in range(4):
            geometry = sample_geometry(300, 260, recipe, g=generator(seed))
            out = train_sample(image, recipe, g=generator(seed))
            assert out.shape == (3, 224, 224), name
            if geometry.resized is None:
                top, left, h, w = geometry.box
                expected = TF.resize(image[:, top : top + h, left : left + w], [224, 224])
            else:
                resized = TF.resize(image, list(geometry.resized))
                top, left, _, _ = geometry.box
                expected = resized[:, top : top + 224, left : left + 224]
            expected = expected.flip(-1) if geometry.flip else expected
            assert torch.equal(out, expected), name


def test_ten_crop_geometry_on_coordinate_image():
    recipe = Recipe("x", "he-scale", crop=4, eval_resize=6)  # resize leaves a 6 x 8 image alone
    rows = torch.arange(6).view(6, 1).expand(6, 8)
    cols = torch.arange(8).view(1, 8).expand(6, 8)
    image = torch.stack([rows, cols, rows * 0]).to(torch.uint8)
    crops = ten_crop(image, recipe)
    assert crops.shape == (10, 3, 4, 4)
    expected = [(0, 0), (0, 4), (2, 0), (2, 4), (1, 2)]  # tl, tr, bl, br, centre
    for k, (top, left) in enumerate(expected):
        assert crops[k, 0, 0, 0] == top and crops[k, 1, 0, 0] == left
        assert torch.equal(crops[k, 1, 0], torch.arange(left, left + 4, dtype=torch.uint8))
        assert torch.equal(crops[k + 5], crops[k].flip(-1))
    logits = torch.arange(20.0).view(2 * 10, 1)
    assert view_average(logits, 2).flatten().tolist() == [4.5, 14.5]


# --- the stream --------------------------------------------------------------------------------


def stream(index, *, seed, decode="cpu", recipe="imagenet-torchvision", workers=0):
    return ImageStream(
        index, recipe=RECIPES[recipe], batch_size=4, seed=seed, device=CPU,
        normalizer=PLAIN, decode=decode, workers=workers,
    )  # fmt: skip


def take(s, start, n):
    out = []
    for i, (x, y) in enumerate(s.batches(start)):
        out.append((x, y))
        if i + 1 == n:
            return out
    return out


def test_stream_is_a_function_of_seed_and_iteration(tmp_path, files):
    index = build_index("train", write_tree(tmp_path / "in", files))
    a = take(stream(index, seed=1), 0, 5)  # 3 steps per epoch: crosses an epoch
    assert all(x.shape == (4, 3, 224, 224) for x, _ in a)
    b = take(stream(index, seed=1), 0, 5)
    assert all(
        torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )
    c = take(stream(index, seed=2), 0, 5)
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, c, strict=True))
    resumed = take(stream(index, seed=1), 2, 3)
    assert all(
        torch.equal(x1, x2) and torch.equal(y1, y2)
        for (x1, y1), (x2, y2) in zip(a[2:], resumed, strict=True)
    )
    in_workers = take(stream(index, seed=1, workers=2), 0, 2)  # workers change nothing
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a[:2], in_workers, strict=True))
    epoch = torch.cat([y for _, y in a[:3]])
    assert sorted(epoch.tolist()) == sorted(index.labels.tolist())


def test_batch_decode_path_equals_worker_decode_on_cpu(tmp_path, files):
    index = build_index("train", write_shards(tmp_path / "shards", files))
    for recipe in RECIPES:
        a = take(stream(index, seed=5, recipe=recipe), 1, 2)
        b = take(stream(index, seed=5, decode="gpu", recipe=recipe), 1, 2)
        assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b, strict=True))


def test_a_batch_the_batched_decoder_refuses_is_decoded_one_by_one(tmp_path, files, monkeypatch):
    """nvJPEG's batched call refuses CMYK JPEGs: the batch falls back to the CPU decoder, the
    images the same as the CPU path's, and the run goes on."""
    index = build_index("train", write_shards(tmp_path / "shards", files))
    expected = take(stream(index, seed=5, decode="gpu"), 0, 2)

    def refuse(data, device):
        raise RuntimeError("nvjpegDecodeBatchedPhaseOne failed: 6 (a CMYK image)")

    monkeypatch.setattr(streaming, "_decode_jpegs", refuse)
    fallen_back = take(stream(index, seed=5, decode="gpu"), 0, 2)
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(expected, fallen_back, strict=True))


def test_eval_batches_center_and_ten_crop(tmp_path, files):
    index = build_index("val", write_tree(tmp_path / "in", files))
    recipe = RECIPES["imagenet-paper"]
    center = list(eval_batches(index, recipe=recipe, crops="center", batch_size=4, device=CPU,
                               normalizer=PLAIN, workers=0))  # fmt: skip
    assert [x.shape[0] for x, _ in center] == [4, 2]
    ten = list(eval_batches(index, recipe=recipe, crops="ten-crop", batch_size=4, device=CPU,
                            normalizer=PLAIN, workers=0))  # fmt: skip
    assert [x.shape[0] for x, _ in ten] == [40, 20]
    assert torch.equal(torch.cat([y for _, y in ten]), torch.from_numpy(index.labels))
    # Under torchrun each rank decodes its share only; the shares together are the whole.
    halves = [list(eval_batches(index, recipe=recipe, crops="ten-crop", batch_size=4, device=CPU,
                                normalizer=PLAIN, workers=0, part=(rank, 2)))
              for rank in range(2)]  # fmt: skip
    assert [[x.shape[0] for x, _ in h] for h in halves] == [[30], [30]]
    assert torch.equal(torch.cat([x for h in halves for x, _ in h]), torch.cat([x for x, _ in ten]))


def test_loader_speed_rows(tmp_path, files):
    rows = loader_speed(write_tree(tmp_path / "in", files), paths=("cpu-decode", "gpu-decode"),
                        workers=(0,), batch_sizes=(4,), batches=2, device=CPU)  # fmt: skip
    assert [r["path"] for r in rows] == ["cpu-decode", "gpu-decode"]
    for r in rows:
        assert r["workers"] == 0 and r["batch"] == 4 and r["images"] == 8
        assert r["images_per_s"] > 0 and r["device"] == "cpu" and r["machine"]


@pytest.mark.parametrize("packed", [True, False])
def test_devkit_ground_truth_file(tmp_path, files, monkeypatch, packed):
    """The devkit (tar.gz or extracted) without meta.bin: ground-truth IDs through meta.mat's
    ID -> WNID map (its parsing, scipy's loadmat, is stubbed: scipy is optional)."""
    wnids = write_devkit_root(tmp_path / "in", files)
    (tmp_path / "in" / "meta.bin").unlink()
    ids = {w: 10 + i for i, w in enumerate(reversed(WNIDS))}  # IDs not in WNID order
    devkit = tmp_path / "in" / "ILSVRC2012_devkit_t12"
    (devkit / "data").mkdir(parents=True)
    (devkit / "data" / "meta.mat").write_bytes(b"stub")
    truth = "".join(f"{ids[w]}\n" for w in wnids)
    (devkit / "data" / "ILSVRC2012_validation_ground_truth.txt").write_text(truth)
    if packed:
        with tarfile.open(f"{devkit}.tar.gz", "w:gz") as tar:
            tar.add(devkit, arcname=devkit.name)
        shutil.rmtree(devkit)
    seen = []
    monkeypatch.setattr(
        "ablations.imagenet.index.parse_meta_mat",
        lambda raw: seen.append(raw) or {i: w for w, i in ids.items()},
    )
    val = build_index("val", tmp_path / "in")
    assert seen == [b"stub"]
    assert [val.classes[y] for y in val.labels] == wnids


def test_subset_index_keeps_whole_classes(tmp_path, files):
    index = build_index("train", write_tree(tmp_path / "in", files))
    small = subset_index(index, classes=2, per_class=3, seed=0)
    assert len(small.classes) == 2 and len(small) == 6
    assert set(small.classes) <= set(index.classes) and list(small.labels) == sorted(small.labels)
    assert all(
        f.split("/")[1] == small.classes[y] for f, y in zip(small.files, small.labels, strict=True)
    )
    assert small.read(0) == index.read(index.files.index(small.files[0]))
    assert subset_index(index, classes=2, per_class=3, seed=0).files == small.files
    val = build_index("val", tmp_path / "in")
    assert subset_index(val, classes=small.classes, per_class=None, seed=0).classes == small.classes


def test_lighting_adds_one_pca_colour_per_image():
    x = torch.rand(64, 3, 5, 5, generator=generator(0))
    assert torch.equal(lighting(x, std=0.0, g=generator(1)), x)
    shift = lighting(x, std=0.1, g=generator(1)) - x
    per_image = shift[:, :, :1, :1]
    assert torch.allclose(shift, per_image.expand_as(shift), atol=1e-6)  # one colour per image
    # the shift lies in the eigenvectors' span with coefficients alpha_j * eigval_j:
    coeff = per_image.flatten(1) @ torch.tensor(PCA_EIGVEC)  # eigvec is orthonormal
    alpha = coeff / torch.tensor(PCA_EIGVAL)
    assert 0.05 < float(alpha.std()) < 0.15  # N(0, 0.1) draws; 192 of them
    assert torch.equal(lighting(x, std=0.1, g=generator(1)), lighting(x, std=0.1, g=generator(1)))


def test_pixel_mean_normalizer_is_the_mean_centre_crop(tmp_path, files):
    index = build_index("train", write_tree(tmp_path / "in", files))
    paper = RECIPES["imagenet-paper"]
    norm = fit_normalizer(index, paper, n=len(index), seed=0, workers=0)
    crops = torch.stack([eval_center(decode(index.read(i)), paper) for i in range(len(index))])
    assert norm.mean.shape == (3, 224, 224)
    assert torch.allclose(norm.mean, crops.double().mean(0).float() / 255, atol=1e-6)
    fixed = pixel_mean_normalizer(index, RECIPES["imagenet-torchvision"], seed=0, workers=0)
    assert fixed.kind == "fixed" and fixed.mean.flatten().tolist() == pytest.approx(
        [0.485, 0.456, 0.406]
    )


def test_prepared_stream_trains_and_evaluates_a_registry_net(tmp_path, files):
    """The contract end to end: a class subset streamed into an SGD step of ResNet-18 and its
    evaluation with both crop protocols of the paper (tiny, on the CPU; the other recipe differs
    only in the crop sampling tested above)."""
    recipe = "imagenet-paper"
    from ablations.models import create_model

    root = write_shards(tmp_path / "shards", files)
    config = TrainConfig(variant="resnet18", dataset="imagenet", stream=recipe, batch_size=2,
                         workers=0, classes=2, train_per_class=2, val_per_class=1)  # fmt: skip
    data = prepare_stream_run(config, data=root, device=CPU)
    assert data.num_classes == 2 and len(data.val) == 2 and data.train.steps_per_epoch == 2
    assert data.record["source_format"] == "tar-shards" and data.record["recipe"] == recipe
    model = create_model("resnet18", num_classes=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _, (x, y) in zip(range(1), data.train.batches(0), strict=False):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)
    model.eval()
    for crops in data.train.recipe.eval_crops:
        with torch.no_grad():
            batches = data.eval_batches(crops=crops, batch_size=2)
            scores = torch.cat([view_logits(model, x, len(y)) for x, y in batches])
        assert scores.shape == (2, 2)


def test_loader_speed_command_writes_csv(tmp_path, files, capsys):
    from ablations.cli import main

    root = write_tree(tmp_path / "in", files)
    out = tmp_path / "speed.csv"
    args = ["loader-speed", "--data", str(root), "--paths", "cpu-decode", "--workers", "0"]
    assert main([*args, "--batch", "4", "--batches", "1", "--warmup", "1", "--out", str(out)]) == 0
    header, row = out.read_text().splitlines()[:2]
    assert header.startswith("path,workers,batch,") and row.startswith("cpu-decode,0,4,")
