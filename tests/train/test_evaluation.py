"""Table 4's multi-scale testing: the whole image at each shorter side of {224, 256, 384, 480,
640} and its flip through the net (fully convolutional: the global pool averages the classifier
over every position), the logits averaged; checked against a computation written out here from
the paper's description, on a tiny ImageNet-layout tree. Evaluation reads the device once, at
its end, and runs the views of several sizes without cuDNN autotuning."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from tiny_imagenet import members, write_tree
from torch import Tensor

from ablations.data.loader import Normalizer, Views
from ablations.imagenet.augment import RECIPES, multi_scale
from ablations.imagenet.index import build_index
from ablations.imagenet.prepare import scaled
from ablations.imagenet.streaming import decode, eval_batches
from ablations.models import create_model
from ablations.references import TABLE4
from ablations.report.imagenet import errors_table
from ablations.results import schemas
from ablations.train.evaluation import TOP5, eval_sums, view_logits
from ablations.train.records import final_metrics

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
CPU = torch.device("cpu")
PAPER = RECIPES["imagenet-paper"]


def test_the_paper_recipe_tests_at_table_4s_scales():
    assert "multi-scale" in PAPER.eval_crops and PAPER.multi_scale == (224, 256, 384, 480, 640)
    # A smoke budget's crop of 32 scales every side with it, as it scales the 256 resize.
    assert scaled(PAPER, 32).multi_scale == (32, 37, 55, 69, 91)


@pytest.mark.parametrize("shape", [(3, 300, 400), (3, 500, 333), (3, 224, 224)])
def test_views_are_the_whole_image_at_each_shorter_side_and_its_flip(shape):
    image = torch.randint(
        0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    views = multi_scale(image, PAPER)
    assert len(views) == len(PAPER.multi_scale)
    for short, pair in zip(PAPER.multi_scale, views, strict=True):
        assert pair.shape[:2] == (2, 3) and min(pair.shape[-2:]) == short
        # torchvision's Resize(short): the shorter side to `short`, the aspect ratio kept.
        assert torch.equal(pair[0], TF.resize(image, [short], antialias=True))
        assert torch.equal(pair[1], pair[0].flip(-1))


@pytest.fixture
def val(tmp_path):
    return build_index("val", write_tree(tmp_path / "in", members()))


def _by_hand(model, index, recipe, mean):
    """Each val image decoded, resized to every scale (and flipped), normalised by the
    per-channel mean, through the net; the logits averaged over flips, then over scales."""
    logits = []
    for i in range(len(index)):
        image = decode(index.reader(i))
        per_scale = []
        for short in recipe.multi_scale:
            resized = TF.resize(image, [short], antialias=True).float() / 255 - mean
            pair = torch.stack([resized, resized.flip(-1)])
            per_scale.append(model(pair).mean(dim=0))
        logits.append(torch.stack(per_scale).mean(dim=0))
    return torch.stack(logits)


@torch.no_grad()
def test_eval_batches_and_eval_sums_average_every_scale_and_flip(val):
    recipe = scaled(PAPER, 32)
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=len(val.classes)).eval()
    # A per-pixel mean (the paper's) fits only the crop's size: every scale subtracts its
    # per-channel average.
    pixel_mean = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    normalizer = Normalizer(mean=pixel_mean, std=torch.ones(3, 1, 1), kind="pixel-mean")
    expected = _by_hand(model, val, recipe, pixel_mean.mean(dim=(1, 2), keepdim=True))
    labels = torch.from_numpy(val.labels)
    by_hand_loss = float(torch.nn.functional.cross_entropy(expected, labels, reduction="sum"))
    # batch_size 2: one image per batch; 12: all six at once, grouped by size (the tiny tree's
    # val images come in 4 sizes), so some batches stack several images per scale.
    for batch_size, most in ((2, 1), (12, 2)):
        batches = list(eval_batches(val, recipe=recipe, crops="multi-scale",
                                    batch_size=batch_size, device=CPU, normalizer=normalizer,
                                    workers=0))  # fmt: skip
        assert sum(len(y) for _, y in batches) == len(val)
        assert max(len(y) for _, y in batches) == most
        for views, y in batches:
            assert len(views) == 5 and all(v.shape[0] == 2 * len(y) for v in views)
        if batch_size == 2:  # in index order: compare image by image
            ours = torch.cat([view_logits(model, views, len(y)) for views, y in batches])
            torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
        sums = eval_sums(model, iter(batches), precision="fp32")
        assert sums.seen == len(val)
        assert sums.errors == int((expected.argmax(dim=1) != labels).sum())
        assert sums.loss_sum == pytest.approx(by_hand_loss, rel=1e-5)


def test_multi_scale_is_not_the_centre_crop(val):
    """The protocol sees the whole image: a net whose logits depend on the image's size and
    border gives another answer than on the 224 centre crop."""
    recipe = scaled(PAPER, 32)
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=len(val.classes)).eval()
    plain = Normalizer.fixed((0.5, 0.5, 0.5), (1.0, 1.0, 1.0))
    kw = {"recipe": recipe, "batch_size": 8, "device": CPU, "normalizer": plain, "workers": 0}
    with torch.no_grad():
        centre = [model(x) for x, _ in eval_batches(val, crops="center", **kw)]
        multi = [view_logits(model, v, 1) for v, _ in eval_batches(val, crops="multi-scale", **kw)]
    assert not torch.allclose(torch.cat(centre), torch.cat(multi))


def test_final_metrics_name_the_multi_scale_errors():
    values = (("train", "error", 0.5), ("train", "loss", 1.0), ("train", "images_per_s", 9.0),
              ("val", "error", 0.4), ("val", "top5_error", 0.2),
              ("val", "multi_scale_error", 0.3),
              ("val", "multi_scale_top5_error", 0.1))  # fmt: skip
    rows = [{"iteration": 10, "split": sp, "metric": m, "value": v} for sp, m, v in values]
    out = final_metrics(pd.DataFrame(rows), eval_split="val")
    assert out["multi_scale_val_error"] == 0.3 and out["multi_scale_val_top5_error"] == 0.1
    assert "ten_crop_val_error" not in out


def _runs(rows: list[dict]) -> pd.DataFrame:
    defaults = {"str": "", "int": 0, "float": float("nan"), "bool": False}
    base = {c: defaults[kind] for c, kind in schemas.RUNS.columns.items()}
    return schemas.RUNS.validate(pd.DataFrame([{**base, **r} for r in rows]))


def test_the_report_sets_multi_scale_errors_beside_table_4():
    rows = [{"run_id": f"{v}_s{s}", "variant": v, "seed": s, "depth": 34 if v == "resnet34" else 50,
             "ten_crop_val_error": 0.25, "ten_crop_val_top5_error": 0.08,
             "multi_scale_val_error": 0.22 + 0.01 * s, "multi_scale_val_top5_error": 0.06,
             "val_error": 0.27, "val_top5_error": 0.09}
            for v in ("resnet34", "resnet50-v1") for s in range(2)]  # fmt: skip
    table = errors_table(_runs(rows), published=True).set_index("net")
    assert {"top-1 multi-scale", "paper top-1 (multi-scale)", "paper top-5 (10-crop)"} <= set(
        table.columns
    )
    assert table["top-1 multi-scale"].iloc[0] == "22.5 ± 0.7%"
    assert list(table["paper top-1 (multi-scale)"]) == [
        f"{TABLE4.top1['resnet34']:.2f}%", f"{TABLE4.top1['resnet50-v1']:.2f}%"
    ]  # fmt: skip
    # Runs that did not test at several scales get no Table 4 columns.
    without = [{**r, "multi_scale_val_error": float("nan")} for r in rows]
    assert not any("multi-scale" in c for c in errors_table(_runs(without), published=True))


def test_images_of_one_size_share_a_batch_image_major():
    from ablations.imagenet.streaming import _by_shape

    def views(value: float, h: int, w: int) -> list[Tensor]:
        return [torch.full((2, 3, h * k, w * k), value) for k in (1, 2)]

    images = [views(0, 3, 4), views(1, 4, 3), views(2, 3, 4)]
    groups = list(_by_shape(images, torch.tensor([10, 11, 12])))
    assert [g[1].tolist() for g in groups] == [[10, 12], [11]]
    (small, large), _ = groups[0]
    assert small.shape == (4, 3, 3, 4) and large.shape == (4, 3, 6, 8)
    # Image-major: each image's two views (the image and its flip) side by side.
    assert small[:, 0, 0, 0].tolist() == [0, 0, 2, 2]


def test_the_prefetcher_guards_every_view_tensor_of_a_batch():
    """On CUDA each tensor a side stream copied is marked used by the current stream; a
    multi-scale batch holds a list of them (and a "gpu"-decode batch a list of bytes)."""
    from ablations.imagenet.prefetch import _tensors

    views, y = [torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 5, 6)], torch.zeros(2)
    images = [views, [v + 1 for v in views]]  # a loader batch: each image's views
    assert [t.shape for t in _tensors((images, y))] == [v.shape for v in views] * 2 + [y.shape]
    assert _tensors(([b"\xff\xd8"], y)) == [y]
    assert len(_tensors((torch.zeros(4, 3, 2, 2), y))) == 2


# --- host reads and cuDNN autotuning -------------------------------------------------------------

HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


def _count_host_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Tensor method that hands a value to the host (on a GPU, a synchronisation) logs
    its name in the returned list while `monkeypatch` holds."""
    reads: list[str] = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads


def _small_net(classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, classes))  # fmt: skip


def _batches(classes: int, count: int) -> list[tuple[Views, Tensor]]:
    """`count` batches of 3 images: single-view tensors, and multi-scale lists of two sizes."""
    g = torch.Generator().manual_seed(2)
    out: list[tuple[Views, Tensor]] = []
    for i in range(count):
        y = torch.randint(0, classes, (3,), generator=g)
        one = torch.randn(3, 3, 6, 6, generator=g)
        out.append((one if i % 2 else [one, torch.randn(3, 3, 8, 7, generator=g)], y))
    return out


@pytest.mark.parametrize("classes", [10, 4])  # 4: no top-5 hits to count
def test_eval_sums_reads_the_host_once_with_the_per_batch_sums(monkeypatch, classes):
    model, batches = _small_net(classes), _batches(classes, 6)
    with torch.no_grad():  # the per-batch host sums: float32 loss sums added as doubles
        logits = [view_logits(model, x, len(y)) for x, y in batches]
    loss = 0.0
    for z, (_, y) in zip(logits, batches, strict=True):
        loss += float(torch.nn.functional.cross_entropy(z, y, reduction="sum"))
    errors = sum(int((z.argmax(1) != y).sum()) for z, (_, y) in zip(logits, batches, strict=True))
    with monkeypatch.context() as m:
        reads = _count_host_reads(m)
        sums = eval_sums(model, iter(batches), precision="fp32")
    assert len(reads) <= 1, reads
    assert (sums.loss_sum, sums.errors, sums.seen, sums.classes) == (loss, errors, 18, classes)
    hits = 0
    if classes > TOP5:
        hits = sum(int((z.topk(TOP5, 1).indices == y[:, None]).any(1).sum())
                   for z, (_, y) in zip(logits, batches, strict=True))  # fmt: skip
    assert isinstance(sums.errors, int) and isinstance(sums.top5_hits, int)
    assert sums.top5_hits == hits


class _FlagRecorder(torch.nn.Module):
    """A net that records whether cuDNN autotuning was on at each forward."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.seen: list[bool] = []
        self.fail = fail

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(torch.backends.cudnn.benchmark)
        if self.fail:
            raise RuntimeError("forward failed")
        return x.mean(dim=(2, 3))


def test_multi_scale_views_run_without_cudnn_autotuning(monkeypatch):
    """Every multi-scale group brings a new input shape: autotuning would time each afresh."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    model = _FlagRecorder()
    view_logits(model, [torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 5, 6)], 2)
    assert model.seen == [False, False] and torch.backends.cudnn.benchmark
    view_logits(model, torch.zeros(2, 3, 4, 4), 2)
    assert model.seen[-1] is True and torch.backends.cudnn.benchmark
    failing = _FlagRecorder(fail=True)
    with pytest.raises(RuntimeError, match="forward failed"):
        view_logits(failing, [torch.zeros(2, 3, 4, 4)], 2)
    assert failing.seen == [False] and torch.backends.cudnn.benchmark


@pytest.mark.gpu
def test_eval_sums_synchronises_the_gpu_once():
    """CUDA's sync debug mode warns at every synchronising call: only the final read."""
    gpu = torch.device("cuda")
    model = _small_net(10).to(gpu)
    batches = [([v.to(gpu) for v in x] if isinstance(x, list) else x.to(gpu), y.to(gpu))
               for x, y in _batches(10, 6)]  # fmt: skip
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            eval_sums(model, iter(batches), precision="fp32")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1, [str(w.message) for w in syncs]
