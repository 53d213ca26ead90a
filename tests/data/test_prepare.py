"""One way to a run's data and one way to weights from elsewhere: `prepare_data` serves arrays
and streams alike (the ImageNet stack imported only for a stream), and `weights.resolve` turns
a weights name into a file and a state_dict for both `ablate evaluate` and init_from."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
import torch

from ablations.config import resolve_config
from ablations.data import load_dataset
from ablations.data.prepare import prepare_data
from ablations.models import ResNet, create_model
from ablations.registry import AblationsError, get_variant
from ablations.weights import finetune, resolve, torchvision

CPU = torch.device("cpu")


def test_an_array_run_never_imports_the_imagenet_stack(tiny_cifar):
    script = (
        "import sys, torch\n"
        "import ablations.train.run, ablations.weights.evaluate, ablations.measure.step_speed\n"
        "from ablations.config import resolve_config\n"
        "from ablations.data.prepare import prepare_data\n"
        "config = resolve_config('resnet20', profile='smoke', device='cpu')\n"
        f"data = prepare_data(config, {str(tiny_cifar)!r}, torch.device('cpu'))\n"
        "assert data.train.steps_per_epoch > 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('ablations.imagenet')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_a_path_and_decoded_arrays_prepare_the_same_data(tiny_cifar):
    config = resolve_config("resnet20", profile="smoke", device="cpu")
    by_path = prepare_data(config, tiny_cifar, CPU)
    decoded = prepare_data(config, load_dataset("cifar10", data=tiny_cifar), CPU)
    assert by_path.record == decoded.record
    assert all(torch.equal(a, b) for a, b in zip(by_path.test, decoded.test, strict=True))


def test_a_cuda_runs_val_and_test_splits_are_pinned_once(tiny_cifar, monkeypatch):
    """Every evaluation copies the val or test split over batch by batch: for CUDA they are
    pinned when the split is made (once for the runs of a set), so the copies are queued
    without a host sync. The training images are not: they are stored on the device, or
    streamed through a pinning DataLoader. A CPU run pins nothing."""
    from ablations.data import prepare

    pinned: list[torch.Tensor] = []

    def pin(self):
        pinned.append(self.clone())
        return pinned[-1]

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self: any(self is t for t in pinned))
    monkeypatch.setattr(prepare, "_last_split", None)
    config = resolve_config("resnet20", profile="smoke", device="cpu")
    dataset = load_dataset("cifar10", data=tiny_cifar)
    on_cpu = prepare._split(config, dataset, CPU)
    assert pinned == []
    cuda = torch.device("cuda", 0)
    split = prepare._split(config, dataset, cuda)
    assert [t.data_ptr() for t in pinned] == [t.data_ptr() for t in (*split.val, *split.test)]
    held, plain = (*split.val, *split.test), (*on_cpu.val, *on_cpu.test)
    assert all(torch.equal(a, b) for a, b in zip(held, plain, strict=True))
    assert prepare._split(config, dataset, cuda) is split and len(pinned) == 4  # made once


@pytest.mark.gpu
def test_gpu_evaluation_copies_never_synchronise(tiny_cifar):
    config = resolve_config("resnet20", profile="smoke", device="cuda")
    data = prepare_data(config, tiny_cifar, torch.device("cuda"))
    assert all(t.is_pinned() for t in (*data.val, *data.test))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        batches = list(data.eval_batches("val", batch_size=64))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(x.is_cuda and y.is_cuda for x, y in batches)


def test_a_streamed_config_takes_no_decoded_arrays(tiny_cifar):
    config = resolve_config("resnet18", profile="imagenet-smoke", device="cpu")
    with pytest.raises(AblationsError, match="reads its image files"):
        prepare_data(config, load_dataset("cifar10", data=tiny_cifar), CPU)


def test_init_from_torchvision_reads_the_hub_cache_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda *a, **k: pytest.fail("downloaded"))  # fmt: skip
    model = create_model("resnet18", num_classes=4)
    with pytest.raises(AblationsError, match=r"not found: put resnet18-"):
        finetune.load_backbone(model, "torchvision:IMAGENET1K_V1", runs_dir=tmp_path)
    cached = torchvision.hub_file(model.variant, "IMAGENET1K_V1")
    cached.parent.mkdir(parents=True)
    torch.save(ResNet(get_variant("resnet18")).state_dict(), cached)
    record = finetune.load_backbone(model, "torchvision:IMAGENET1K_V1", runs_dir=tmp_path)
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()
    assert record == {"init_from": "torchvision:IMAGENET1K_V1", "init_sha256": digest}


def test_one_resolver_unwraps_a_resumable_checkpoint_for_both_callers(tmp_path):
    variant = get_variant("resnet20")
    weights = ResNet(variant).state_dict()
    torch.save({"model": weights, "step": 3}, tmp_path / "checkpoint.pt")
    state, record = resolve(str(tmp_path / "checkpoint.pt"), variant=variant, runs_dir=tmp_path)
    assert record.format == "file" and record.source == "checkpoint.pt"
    assert all(torch.equal(state[k], weights[k]) for k in weights)
    model = create_model("resnet20")
    started = finetune.load_backbone(model, str(tmp_path / "checkpoint.pt"), runs_dir=tmp_path)
    assert started == {"init_from": "checkpoint.pt", "init_sha256": record.sha256}
    for name in (str(tmp_path / "none.pt"), "akamaster:" + str(tmp_path / "none.th")):
        with pytest.raises(AblationsError, match="no such file"):
            finetune.load_backbone(model, name, runs_dir=tmp_path)
