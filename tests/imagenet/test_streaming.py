"""ImageNet layouts, the protocols' augmentation and the streaming loader, on a tiny tree."""

from __future__ import annotations

import contextlib
import io
import math
import shutil
import tarfile

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from tiny_imagenet import WNIDS, members, write_devkit_root, write_shards, write_tree
from torch.utils.data import DataLoader

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
from ablations.imagenet.prefetch import prefetched
from ablations.imagenet.prepare import pixel_mean_normalizer, prepare_stream_run
from ablations.imagenet.streaming import ImageStream, decode, eval_batches, fit_normalizer
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


def encoded(mode, fmt="JPEG", **options):
    """A 31x23 picture of noise as `fmt` bytes in PIL's `mode`."""
    pixels = np.random.default_rng(3).integers(0, 256, (23, 31, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(out, format=fmt, **options)
    return out.getvalue()


def test_jpeg_components_reads_the_start_of_frame():
    assert streaming.jpeg_components(encoded("RGB")) == 3
    assert streaming.jpeg_components(encoded("L")) == 1
    assert streaming.jpeg_components(encoded("CMYK")) == 4
    # A progressive frame (SOF2), and one behind an EXIF segment, are found too.
    assert streaming.jpeg_components(encoded("CMYK", progressive=True)) == 4
    exif = Image.Exif()
    exif[0x010E] = "x" * 300  # an ImageDescription: an APP1 segment of some length
    assert streaming.jpeg_components(encoded("L", exif=exif)) == 1
    assert streaming.jpeg_components(encoded("RGB", "PNG")) is None
    assert streaming.jpeg_components(encoded("RGB")[:20]) is None  # cut before its frame


def test_decode_batch_gives_nvjpeg_only_the_jpegs_it_takes(monkeypatch):
    """nvJPEG refuses CMYK JPEGs (ImageNet's train split holds a few): they, and PNGs, are
    decoded on the CPU as the "cpu" path decodes them, the rest in one batched call."""
    rgb, gray, cmyk, png = encoded("RGB"), encoded("L"), encoded("CMYK"), encoded("RGB", "PNG")
    given: list[list[bytes]] = []

    def batched(raws, device):
        given.append(raws)
        return [decode(r) for r in raws]

    monkeypatch.setattr(streaming, "_decode_jpegs", batched)
    raws = [cmyk, rgb, png, gray, rgb]
    images = streaming.decode_batch(raws, device=CPU)
    assert given == [[rgb, gray, rgb]]
    assert all(torch.equal(i, decode(r)) for i, r in zip(images, raws, strict=True))
    assert [tuple(i.shape) for i in images] == [(3, 23, 31)] * 5
    given.clear()
    streaming.decode_batch([cmyk, png], device=CPU)
    assert given == []  # no batched call without a JPEG it takes


def test_the_batched_decoders_errors_are_the_runs(monkeypatch):
    """An nvJPEG failure (out of memory, a broken build) stops the run: it is no CMYK image,
    and a silent fall back to one CPU core would still record the decode as "gpu"."""

    def refuse(raws, device):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(streaming, "_decode_jpegs", refuse)
    with pytest.raises(RuntimeError, match="out of memory"):
        streaming.decode_batch([encoded("CMYK"), encoded("RGB")], device=CPU)


def test_multi_scale_groups_keep_their_labels():
    """Images of one size go together; each group's labels are its images' (an index tensor,
    not a list: a list index on CUDA is a blocking copy)."""
    sizes = [(4, 6), (5, 5), (4, 6), (5, 5), (3, 3)]
    images = [[torch.full((1, 3, h, w), i), torch.full((1, 3, 2 * h, 2 * w), i)]
              for i, (h, w) in enumerate(sizes)]  # fmt: skip
    y = torch.tensor([10, 11, 12, 13, 14])
    groups = list(streaming._by_shape(images, y))
    assert [labels.tolist() for _, labels in groups] == [[10, 12], [11, 13], [14]]
    for views, labels in groups:
        assert [v[:, 0, 0, 0].tolist() for v in views] == [(labels - 10).tolist()] * 2


def test_the_training_loader_queues_two_batches_a_worker(tmp_path, files, monkeypatch):
    """`prefetched` reads one batch ahead already; each queued batch is a pinned buffer."""
    index = build_index("train", write_tree(tmp_path / "in", files))
    seen: list[dict] = []

    def loader(samples, **options):
        seen.append(options)  # then read in this process: the options are what is checked
        return DataLoader(samples, **{**options, "num_workers": 0, "prefetch_factor": None})

    monkeypatch.setattr(streaming, "DataLoader", loader)
    take(stream(index, seed=1, workers=3), 0, 1)
    assert [(o["num_workers"], o["prefetch_factor"]) for o in seen] == [(3, 2)]


@pytest.mark.gpu
def test_gpu_decode_batch_takes_grey_colour_and_cmyk_jpegs():
    """nvJPEG decodes the grey and colour JPEGs, the CPU the CMYK one and the PNG; the pixels
    are the CPU path's up to nvJPEG's rounding."""
    raws = [encoded("RGB"), encoded("L"), encoded("CMYK"), encoded("RGB", "PNG")]
    images = streaming.decode_batch(raws, device=torch.device("cuda"))
    for image, raw in zip(images, raws, strict=True):
        expected = decode(raw)
        assert image.is_cuda and image.shape == expected.shape
        assert (image.cpu().float() - expected.float()).abs().mean() < 8


@pytest.mark.gpu
def test_gpu_label_groups_and_cpu_decoded_images_never_synchronise():
    """CUDA's own detector: a list index, or a copy from pageable memory, waits for the GPU."""
    cuda = torch.device("cuda")
    images = [[torch.zeros(1, 3, 4, 4 + i % 2, device=cuda)] for i in range(4)]
    y = torch.arange(4, device=cuda)
    raws = [encoded("CMYK"), encoded("RGB", "PNG")]
    for mode in ("default", "error"):  # the first pass makes the pinned buffers
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode(mode)
        try:
            groups = [labels for _, labels in streaming._by_shape(images, y)]
            decoded = streaming.decode_batch(raws, device=cuda)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert [g.tolist() for g in groups] == [[0, 2], [1, 3]]
    assert all(torch.equal(i.cpu(), decode(r)) for i, r in zip(decoded, raws, strict=True))


class PooledStream:
    """torch.cuda.Stream as CUDA's pool hands it out: a new handle each."""

    made = 0

    def __init__(self, device: torch.device | None = None) -> None:
        self.cuda_stream = 100 + PooledStream.made
        PooledStream.made += 1

    def wait_stream(self, other: object) -> None:
        pass


def test_each_run_stream_has_its_own_prefetch_and_decode_streams(monkeypatch):
    """Runs at once, each on a stream of its own, copy and decode on side streams of their own:
    no run's copies queue behind another's; a run's later batches take the same ones."""
    from ablations import gpu

    monkeypatch.setattr(gpu, "_STREAMS", {})
    monkeypatch.setattr(PooledStream, "made", 0)
    monkeypatch.setattr(torch.cuda, "Stream", PooledStream)
    run_streams = [PooledStream(), PooledStream()]
    current = {"stream": run_streams[0]}
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: current["stream"])
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda self, s: None)
    monkeypatch.setattr(
        "torchvision.io.decode_jpeg", lambda data, **k: [torch.zeros(1)] * len(data)
    )
    cuda, batch = torch.device("cuda", 0), [(torch.zeros(2), torch.zeros(2))]
    sides = []
    for run in [*run_streams, run_streams[0]]:
        current["stream"] = run
        list(prefetched(batch, cuda))
        streaming._decode_jpegs([encoded("RGB")], cuda)
        sides.append((gpu._STREAMS[(cuda, f"prefetch for stream {run.cuda_stream}")],
                      gpu._STREAMS[(cuda, f"decode for stream {run.cuda_stream}")]))  # fmt: skip
    assert len({id(s) for pair in sides[:2] for s in pair}) == 4
    assert sides[2] == sides[0]
    assert PooledStream.made == 2 + 4  # the runs' streams, then one pair each, made once


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
