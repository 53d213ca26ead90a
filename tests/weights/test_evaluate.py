"""`ablate evaluate`: checkpoints trained elsewhere, and our runs, evaluated with our model and
evaluation path into results/evaluations.csv, with the preprocessing and data recorded."""

import json
import os
from dataclasses import replace

import pytest
import torch
from akamaster_layout import TheirResNet, randomised, save_as_they_do

from ablations.cli import main
from ablations.config import resolve_config
from ablations.data import load_dataset
from ablations.data.prepare import prepare_data
from ablations.models import ResNet, resolve
from ablations.results.schemas import EVALUATIONS
from ablations.results.table import read_table
from ablations.weights import evaluate


def _their_error(net, ds, limit):
    """Their evaluation, as their trainer.py does it: ToTensor, Normalize(ImageNet mean/std)."""
    from ablations.data.loader import random_subset

    idx = random_subset(len(ds.x_test), limit, seed=0)
    x = torch.from_numpy(ds.x_test[idx]).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = net((x - mean) / std)
    y = torch.from_numpy(ds.y_test[idx])
    top5 = (logits.topk(5, dim=1).indices == y[:, None]).any(dim=1).float().mean()
    return float((logits.argmax(1) != y).float().mean()), 1 - float(top5)


def test_evaluate_an_akamaster_checkpoint(tmp_path, tiny_cifar, capsys):
    theirs = randomised(TheirResNet(3))
    path = tmp_path / "resnet20-12fca82f.th"
    save_as_they_do(theirs, path)
    results = tmp_path / "results"
    argv = ["evaluate", "resnet20", "--weights", str(path), "--data", str(tiny_cifar),
            "--results", str(results), "--limit", "40", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert "top-1 error" in capsys.readouterr().out
    row = read_table(results / "evaluations.csv", EVALUATIONS).iloc[0]
    ds = load_dataset("cifar10", data=tiny_cifar)
    top1, top5 = _their_error(theirs, ds, 40)
    assert row["top1_error"] == pytest.approx(top1) and row["top5_error"] == pytest.approx(top5)
    assert row["weights"] == path.name and row["weights_format"] == "akamaster"
    assert row["preprocessing"] == "imagenet-mean-std@32" and row["images"] == 40
    assert row["data_source"] == tiny_cifar.name and row["data_checksum"] == ds.checksum
    assert row["data_format"] == "cifar-pickle" and row["dataset"] == "cifar10"
    for column in ("machine", "device", "torch", "git_commit", "created_at"):
        assert row[column]
    assert not any(os.sep in str(v) and str(v).startswith(os.sep) for v in row.to_numpy())
    assert main(argv) == 0  # the same evaluation again replaces its row
    assert len(read_table(results / "evaluations.csv", EVALUATIONS)) == 1


def test_evaluate_one_of_our_runs_with_its_own_preparation(tmp_path, tiny_cifar):
    config = resolve_config("resnet20", profile="smoke", seed=0, device="cpu")
    run_dir = tmp_path / "results" / "runs" / config.run_id
    run_dir.mkdir(parents=True)
    variant = resolve("resnet20", num_classes=10)
    (run_dir / "config.json").write_text(json.dumps(config.to_json()))
    (run_dir / "variant.json").write_text(json.dumps(variant.axes()))
    (run_dir / "env.json").write_text(json.dumps([{"trainer_version": 1}]))
    torch.manual_seed(0)
    model = ResNet(variant).eval()
    torch.save(model.state_dict(), run_dir / "model.pt")
    argv = ["evaluate", "resnet20", "--weights", f"run:{config.run_id}", "--data",
            str(tiny_cifar), "--results", str(tmp_path / "results"), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    row = read_table(tmp_path / "results" / "evaluations.csv", EVALUATIONS).iloc[0]
    whole = replace(config, test_size=None)  # the whole test split, not the run's subset
    data = prepare_data(whole, load_dataset("cifar10", data=tiny_cifar), torch.device("cpu"))
    x, y = data.test  # the run's own resize and normaliser
    with torch.no_grad():
        error = float((model(data.normalizer(x)).argmax(1) != y).float().mean())
    assert row["top1_error"] == pytest.approx(error) and row["images"] == len(y)
    assert row["preprocessing"] == f"run:{config.normalize}@{config.input_size}"
    assert row["weights_format"] == "run" and row["trainer_version"] == 1


def test_evaluate_refuses_missing_weights_in_one_line(tmp_path, tiny_cifar, capsys):
    argv = ["evaluate", "resnet20", "--weights", str(tmp_path / "none.th"), "--data",
            str(tiny_cifar), "--results", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such file" in err
    assert not (tmp_path / "evaluations.csv").exists()


@pytest.mark.parametrize(("precision", "tf32"), [("fp32", False), ("tf32", True)])
def test_evaluation_runs_under_its_precisions_tf32_flags(tmp_path, tiny_cifar, monkeypatch,
                                                         precision, tf32):  # fmt: skip
    path = tmp_path / "resnet20.th"
    save_as_they_do(randomised(TheirResNet(3)), path)
    during = []
    metrics = evaluate.evaluate_metrics

    def recorded(*args, **kwargs):
        during.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return metrics(*args, **kwargs)

    monkeypatch.setattr(evaluate, "evaluate_metrics", recorded)
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not tf32
    try:
        evaluate.evaluate_checkpoint("resnet20", weights=str(path), data=tiny_cifar, limit=8,
                                     results=tmp_path / "results", device="cpu",
                                     precision=precision)  # fmt: skip
        after = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    assert during == [(tf32, tf32)]
    assert after == (not tf32, not tf32)  # the caller's flags again
