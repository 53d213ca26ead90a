"""ImageNet runs end to end on a tiny generated tree (no ImageNet here): every imagenet profile
trains through the trainer's one data interface, resumes exactly, records top-1 and top-5 (10-crop
and centre), plans its experiments, evaluates a torchvision-format checkpoint by the streaming
path, and the report's ImageNet section renders with and without runs."""

from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_imagenet import WNIDS_7, members, write_shards, write_tree
from torch import nn

from ablations.cli import main
from ablations.config import resolve_config
from ablations.data.arrays import DataError
from ablations.experiments import EXPERIMENTS
from ablations.imagenet.index import ENV_VAR
from ablations.profiles import IMAGENET_PROFILES, PROFILES
from ablations.registry import AblationsError
from ablations.report.imagenet import imagenet_section, streamed_section
from ablations.results import collect, schemas
from ablations.results.table import read_table, write_table
from ablations.train.evaluation import evaluate_metrics
from ablations.train.run import train

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
TIMING = {"images_per_s", "train_s"}
# A few iterations at 32x32 crops, in-process loading: seconds on two cores. Epoch budgets keep
# their epochs (one), iteration budgets are cut to 4 (their milestones scale with them).
SMOKE = {"input_size": 32, "batch_size": 4, "workers": 0, "eval_batch_size": 8,
         "precision": "fp32", "channels_last": False}  # fmt: skip


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """7 classes (top-5 needs more than 5), 2 training and 1 val image each, as tar shards."""
    files = members(train_per_class=2, val_per_class=1, wnids=WNIDS_7)
    return write_shards(tmp_path_factory.mktemp("imagenet") / "shards", files)


@pytest.fixture(autouse=True)
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))


def smoke_config(profile: str, variant: str = "resnet18-a", **extra):
    budget = {"epochs": 1} if PROFILES[profile].settings.get("epochs") else {"iterations": 4}
    if profile == "imagenet-smoke":
        budget = {}
    overrides = {**SMOKE, **budget, **extra}
    if PROFILES[profile].settings.get("classes"):
        overrides["classes"] = 6  # a subset drawn from the 7, as the short budget draws 100
    return resolve_config(variant, profile=profile, device="cpu", **overrides)


def deterministic(curves: pd.DataFrame) -> pd.DataFrame:
    return curves[~curves["metric"].isin(TIMING)].reset_index(drop=True)


@pytest.mark.parametrize("profile", [p.name for p in IMAGENET_PROFILES])
def test_every_imagenet_profile_trains_on_the_tiny_tree(profile, tree, tmp_path):
    config = smoke_config(profile)
    assert config.dataset == "imagenet" and config.stream in (
        "imagenet-paper",
        "imagenet-torchvision",
    )
    record = train(config, out=tmp_path / "runs", data=tree, device="cpu", show_progress=False)
    assert record.status == "complete"
    curves = record.curves
    val = curves[curves["split"] == "val"]
    assert {"loss", "error", "top5_error"} <= set(val["metric"])
    assert "test" not in set(curves["split"])  # ImageNet's held-out set is its val split
    ten_crop = config.stream == "imagenet-paper"  # the paper tests with 10 crops and 5 scales
    assert ("ten_crop_error" in set(val["metric"])) == ten_crop
    assert ("multi_scale_error" in set(val["metric"])) == ten_crop
    summary = record.summary
    assert summary["val_top5_error"] <= summary["val_error"]
    [start] = json.loads((record.run_dir / "env.json").read_text())
    assert start["data"]["source_format"] == "tar-shards" and start["data"]["input_size"] == 32
    collect.record(record.run_dir, tmp_path / "results")
    row = read_table(tmp_path / "results" / schemas.RUNS_FILE, schemas.RUNS).iloc[0]
    assert row["val_top5_error"] == pytest.approx(summary["val_top5_error"])
    assert np.isnan(row["test_error"]) and (np.isnan(row["ten_crop_val_error"]) != ten_crop)
    assert np.isnan(row["multi_scale_val_top5_error"]) != ten_crop


def test_cli_trains_the_smoke_profile_and_resumes_to_the_same_curves(tree, tmp_path, capsys):
    config = smoke_config("imagenet-smoke")
    args = ["train", "resnet18-a", "--profile", "imagenet-smoke", "--device", "cpu", "--data",
            str(tree), "--input-size", "32", "--workers", "0"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "ref" / "runs")]) == 0
    reference = pd.read_csv(tmp_path / "ref" / "runs" / config.run_id / "curves.csv")
    summary = json.loads((tmp_path / "ref" / "runs" / config.run_id / "summary.json").read_text())
    # The finished run through `ablate evaluate`: its own recipe and normaliser, the val split
    # streamed, the very error its last evaluation recorded.
    evaluate = ["evaluate", "resnet18-a", "--weights", f"run:{config.run_id}", "--data",
                str(tree), "--results", str(tmp_path / "ref"), "--device", "cpu"]  # fmt: skip
    assert main(evaluate) == 0
    row = read_table(tmp_path / "ref" / schemas.EVALUATIONS_FILE, schemas.EVALUATIONS).iloc[0]
    assert row["split"] == "val" and row["preprocessing"] == "run:pixel-mean@32"
    assert row["top1_error"] == pytest.approx(summary["val_error"])
    assert row["top5_error"] == pytest.approx(summary["val_top5_error"])

    class Crash(Exception):
        pass

    def crash_at_4(iteration):
        if iteration == 4:  # after the checkpoint at 3
            raise Crash

    with pytest.raises(Crash):
        train(config, out=tmp_path / "run", data=tree, device="cpu", show_progress=False,
              on_iteration=crash_at_4)  # fmt: skip
    resumed = train(config, out=tmp_path / "run", data=tree, device="cpu", show_progress=False)
    pd.testing.assert_frame_equal(deterministic(resumed.curves), deterministic(reference))
    starts = json.loads((tmp_path / "run" / config.run_id / "env.json").read_text())
    assert [s["from_iteration"] for s in starts] == [0, 3]


def test_top5_and_ten_crop_on_constructed_logits():
    logits = torch.tensor([[7.0, 6, 5, 4, 3, 2, 1]] * 3)
    y = torch.tensor([0, 4, 5])  # top-1 hit; top-5 hit only; miss
    m = evaluate_metrics(nn.Identity(), iter([(logits, y)]), precision="fp32")
    assert m.error == pytest.approx(2 / 3) and m.top5_error == pytest.approx(1 / 3)
    # 10 views per label (image-major) are averaged: 9 views say class 6, one says class 0
    views = torch.zeros(10, 7)
    views[:, 6] = 1.0
    views[0, 0] = 20.0  # the average ranks class 0 first (2.0 vs 0.9)
    m = evaluate_metrics(nn.Identity(), iter([(views, torch.tensor([0]))]), precision="fp32")
    assert m.error == 0.0 and m.top5_error == 0.0
    few = evaluate_metrics(nn.Identity(), iter([(logits[:, :5], y[:1])]), precision="fp32")
    assert np.isnan(few.top5_error)  # with 5 classes every label is in the top 5


def test_plan_lists_the_imagenet_experiments_runs(tmp_path, capsys):
    argv = ["plan", "--experiments", "imagenet-degradation", "--profile", "imagenet-paper",
            "--device", "cpu", "--results", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    commands = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ablate")]
    variants = EXPERIMENTS["imagenet-degradation"].variants_for("imagenet-paper")
    assert [c.split()[2] for c in commands] == list(variants)
    assert all("--profile imagenet-paper" in c for c in commands)
    for name in ("cpu", "smoke", "paper"):  # CIFAR profiles never plan ImageNet runs
        assert not any(e.startswith("imagenet") for e in PROFILES[name].experiments)
    assert main(["plan", "--experiments", "imagenet-shortcuts", "--profile", "cpu"]) == 2
    assert "use --profile imagenet-paper" in capsys.readouterr().err


def test_evaluate_torchvision_weights_streams_the_val_split(tmp_path, capsys):
    from torchvision.models import resnet18

    root = write_tree(tmp_path / "in", members(train_per_class=1, val_per_class=2,
                                               wnids=WNIDS_7))  # fmt: skip
    torch.manual_seed(0)
    weights = tmp_path / "resnet18-random.pth"
    torch.save(resnet18(num_classes=len(WNIDS_7)).state_dict(), weights)
    results = tmp_path / "results"
    argv = ["evaluate", "resnet18", "--weights", f"torchvision:{weights}", "--data", str(root),
            "--results", str(results), "--device", "cpu", "--batch-size", "8"]  # fmt: skip
    assert main(argv) == 0
    assert "top-5" in capsys.readouterr().out
    row = read_table(results / schemas.EVALUATIONS_FILE, schemas.EVALUATIONS).iloc[0]
    assert row["dataset"] == "imagenet" and row["split"] == "val" and row["images"] == 14
    assert row["preprocessing"] == "resize256-crop224-imagenet-mean-std"
    assert row["input_size"] == 224 and row["data_format"] == "imagefolder"
    assert 0 <= row["top5_error"] <= row["top1_error"] <= 1
    three = write_tree(tmp_path / "three", members(train_per_class=1, val_per_class=1))
    assert main([*argv[:5], str(three), *argv[6:]]) == 2  # 3 classes, a 7-output head
    assert "has 7 outputs" in capsys.readouterr().err
    # The paper's other test protocols, each its own row beside the centre crop's (on 2 images:
    # 224-640 pixel views are slow on a CPU).
    for crops in ("ten-crop", "multi-scale"):
        assert main([*argv, "--crops", crops, "--limit", "2"]) == 0
        assert f"{row['preprocessing']}, {crops})" in capsys.readouterr().out
    table = read_table(results / schemas.EVALUATIONS_FILE, schemas.EVALUATIONS)
    assert list(table["crops"]) == ["center", "ten-crop", "multi-scale"]
    assert table["top1_error"].between(0, 1).all() and list(table["images"]) == [14, 2, 2]
    # Older files, written before --crops, read as centre-crop rows.
    table.drop(columns="crops").head(1).to_csv(tmp_path / "old.csv", index=False)
    assert read_table(tmp_path / "old.csv", schemas.EVALUATIONS)["crops"].tolist() == ["center"]


def test_evaluate_refuses_imagenet_crops_on_cifar_before_reading_data(tmp_path, capsys):
    argv = ["evaluate", "resnet20", "--weights", str(tmp_path / "missing.th"), "--crops",
            "ten-crop", "--data", str(tmp_path / "nowhere"),
            "--results", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--crops ten-crop is an ImageNet test protocol" in err and "drop --crops" in err
    assert not (tmp_path / schemas.EVALUATIONS_FILE).exists()


def _runs(rows: list[dict]) -> pd.DataFrame:
    defaults = {"str": "", "int": 0, "float": float("nan"), "bool": False}
    base = {c: defaults[kind] for c, kind in schemas.RUNS.columns.items()}
    return schemas.RUNS.validate(pd.DataFrame([{**base, **r} for r in rows]))


def _results(folder, runs: pd.DataFrame, curves: pd.DataFrame | None = None):
    """`folder` holding the runs and curves tables: what the report's sections read."""
    write_table(runs, folder / schemas.RUNS_FILE, schemas.RUNS)
    curves = schemas.CURVES.empty() if curves is None else curves
    write_table(curves, folder / schemas.CURVES_FILE, schemas.CURVES)
    return folder


def test_report_section_with_and_without_imagenet_runs(tmp_path):
    empty = imagenet_section(tmp_path)
    assert "No ImageNet runs" in empty.markdown and len(empty.markdown.splitlines()) == 3
    paper = {"plain18": 27.94, "plain34": 28.54, "resnet18-a": 27.88, "resnet34-a": 25.03}
    rows = [
        {"run_id": f"{v}_s{s}", "variant": v, "seed": s, "profile": "imagenet-paper",
         "dataset": "imagenet", "status": "complete", "experiments": "imagenet-degradation",
         "depth": int(v.split("-")[0][-2:]), "residual": v.startswith("resnet"),
         "ten_crop_val_error": (e + 0.1 * s) / 100, "ten_crop_val_top5_error": e / 300,
         "val_error": (e + 2) / 100, "val_top5_error": e / 250, "iterations": 600_000,
         "input_size": 224, "data_source": "imagenet", "data_format": "imagefolder",
         "data_checksum": "ab" * 32, "machine": "m", "device": "cuda"}
        for v, e in paper.items() for s in range(3)
    ]  # fmt: skip
    curves = schemas.CURVES.validate(pd.DataFrame([
        {"run_id": r["run_id"], "iteration": i, "split": split, "metric": "error", "value": v}
        for r in rows for i in (5_000, 10_000) for split, v in (("train", 0.6), ("val", 0.5))
    ]))  # fmt: skip
    section = imagenet_section(_results(tmp_path / "paper", _runs(rows), curves))
    assert list(section.figures) == ["imagenet_degradation_imagenet-paper"]  # Fig. 4's curves
    assert "](imagenet_degradation_imagenet-paper.png)" in section.markdown
    text = section.markdown
    assert "holds: plain-34 has a higher error than plain-18" in text
    assert "holds: ResNet-34 has a lower error than ResNet-18" in text
    assert "not checked: option B is better than A" in text
    assert "28.6 ± 0.1%" in text and "27.94%" in text and "10.02%" in text
    assert "Not run under this profile: `ablate run --experiments imagenet-shortcuts" in text
    reduced = [{**r, "profile": "imagenet-short"} for r in rows]
    short = imagenet_section(_results(tmp_path / "short", _runs(reduced))).markdown
    assert "reduced budget" in short and "27.94%" not in short


def test_each_rank_streams_its_shard_of_the_global_batch(tree, monkeypatch):
    """Under torchrun a rank decodes only its contiguous slice of each global batch, with the
    crops and colour noise that image gets in one process (so DDP steps are one process's)."""
    from ablations.cluster import distributed
    from ablations.imagenet.prepare import prepare_stream_run

    config = smoke_config("imagenet-smoke")
    cpu = torch.device("cpu")
    whole = list(islice(prepare_stream_run(config, data=tree, device=cpu).train.batches(1), 3))
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "world_size", lambda: 2)
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        stream = prepare_stream_run(config, data=tree, device=cpu).train
        shards.append(list(islice(stream.batches(1), 3)))
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *shards, strict=True):
        assert len(y0) == len(y1) == len(y) // 2
        assert torch.equal(torch.cat([y0, y1]), y) and torch.equal(torch.cat([x0, x1]), x)


def test_runs_tables_without_the_top5_columns_read_as_nan(tmp_path):
    """A runs.csv written before the ImageNet columns existed stays readable: they read NaN."""
    old = _runs([{"run_id": "resnet20_cifar10_cpu_s0_x", "variant": "resnet20", "test_error": 0.3}])
    old.drop(columns=list(schemas.TOP5_COLUMNS)).to_csv(tmp_path / "runs.csv", index=False)
    table = read_table(tmp_path / "runs.csv", schemas.RUNS)
    assert table[list(schemas.TOP5_COLUMNS)].isna().all().all() and table["test_error"][0] == 0.3


def test_any_imagefolder_tree_streams_with_an_imagenet_profile(tmp_path, monkeypatch):
    """--dataset imagefolder with an imagenet-* profile: the same streamed path on another tree,
    recorded as imagefolder (never shown beside the paper's ImageNet numbers)."""
    root = write_tree(tmp_path / "places", members(train_per_class=2, val_per_class=1,
                                                   wnids=WNIDS_7))  # fmt: skip
    config = smoke_config("imagenet-smoke", dataset="imagefolder")
    assert config.dataset == "imagefolder" and config.stream is not None
    monkeypatch.delenv("ABLATE_DATA", raising=False)
    with pytest.raises(DataError, match="pass --data DIR"):
        train(config, out=tmp_path / "runs", device="cpu", show_progress=False)
    record = train(config, out=tmp_path / "runs", data=root, device="cpu", show_progress=False)
    assert record.status == "complete" and "val_top5_error" in record.summary
    row = collect.run_row(record.run_dir)
    assert (row["dataset"], row["stream"]) == ("imagefolder", config.stream)
    assert row["data_source"] == "places"
    collect.record(record.run_dir, tmp_path / "results")  # runs.csv and curves.csv
    shown = streamed_section(tmp_path / "results").markdown
    assert "places" in shown and config.stream in shown and "resnet18-a" in shown
    assert "No ImageNet runs" in imagenet_section(tmp_path / "results").markdown  # not ImageNet
    assert streamed_section(tmp_path / "none").markdown == ""  # no runs.csv
    with pytest.raises(AblationsError, match="needs a dataset read from files"):
        resolve_config("resnet20", profile="imagenet-smoke", dataset="cifar10", device="cpu")


@pytest.mark.gpu
def test_gpu_streamed_batches_never_synchronise(tree):
    """CUDA's own detector on the streaming loader's batches (CPU decode, pinned copies, colour
    noise, normalisation on the GPU): a host sync per batch would stall every step."""
    from ablations.imagenet.prepare import prepare_stream_run

    config = resolve_config("resnet18-a", profile="imagenet-smoke", device="cuda",
                            **{**SMOKE, "precision": "bf16"})  # fmt: skip
    batches = prepare_stream_run(config, data=tree, device=torch.device("cuda")).train.batches(0)
    next(batches)  # the loader's start (its first pinned buffers) may synchronise once
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            x, _ = next(batches)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x.is_cuda and x.dtype == torch.float32
