from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from ablations.cli import main
from ablations.config import TrainConfig, resolve_config
from ablations.registry import AblationsError
from ablations.train import run as runner
from ablations.train.run import train
from ablations.train.schedule import lr_at

TIMING = {"images_per_s", "train_s"}  # wall-clock metrics differ between identical runs


def _smoke(variant="resnet20", **overrides):
    return resolve_config(variant, profile="smoke", device="cpu", **overrides)


def _run(config, out, data, **kwargs):
    return train(config, out=out, data=data, device="cpu", show_progress=False, **kwargs)


def _deterministic(curves: pd.DataFrame) -> pd.DataFrame:
    return curves[~curves["metric"].isin(TIMING)].reset_index(drop=True)


def _weights(record):
    return torch.load(record.run_dir / "model.pt", weights_only=True)


def _same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_smoke_run_records_everything(tmp_path, tiny_cifar):
    record = _run(_smoke(), tmp_path, tiny_cifar)
    files = {p.name for p in record.run_dir.iterdir()}
    assert {"config.json", "env.json", "curves.csv", "model.pt", "summary.json"} <= files
    assert "checkpoint.pt" not in files  # only while unfinished
    assert record.status == "complete"
    curves = record.curves
    assert list(curves.columns) == ["iteration", "split", "metric", "value"]
    evals = sorted(set(curves.loc[curves["split"] == "val", "iteration"]))
    assert evals == [4, 8, 12]
    train_metrics = set(curves.loc[curves["split"] == "train", "metric"])
    assert train_metrics == {"loss", "error", "lr", "images_per_s", "train_s"}
    test_rows = curves[curves["split"] == "test"]
    assert set(test_rows["metric"]) == {"loss", "error"} and set(test_rows["iteration"]) == {12}
    [env] = json.loads((record.run_dir / "env.json").read_text())
    for key in ("git_commit", "torch", "machine", "dtype", "seed", "from_iteration"):
        assert key in env
    assert env["data"]["checksum"] and env["data"]["source_format"] == "cifar-pickle"
    assert env["data"]["train_images"] == 512 and env["data"]["input_size"] == 16
    summary = record.summary
    for key in ("train_error", "val_error", "test_error", "images_per_s", "train_s"):
        assert key in summary


def test_same_seed_gives_identical_curves_and_weights(tmp_path, tiny_cifar):
    a = _run(_smoke(), tmp_path / "a", tiny_cifar)
    b = _run(_smoke(), tmp_path / "b", tiny_cifar)
    pd.testing.assert_frame_equal(_deterministic(a.curves), _deterministic(b.curves))
    assert _same_weights(a, b)
    other_seed = resolve_config("resnet20", profile="smoke", device="cpu", seed=1)
    assert not _same_weights(a, _run(other_seed, tmp_path / "c", tiny_cifar))


def test_finished_run_is_returned_not_recomputed(tmp_path, tiny_cifar, monkeypatch):
    first = _run(_smoke(), tmp_path, tiny_cifar)
    monkeypatch.setattr(runner, "prepare_data", lambda *a, **k: pytest.fail("recomputed"))
    again = _run(_smoke(), tmp_path, tiny_cifar)
    assert again.summary == first.summary


class Crash(Exception):
    pass


def test_crash_between_checkpoints_resumes_to_the_same_result(tmp_path, tiny_cifar):
    reference = _run(_smoke(), tmp_path / "ref", tiny_cifar)

    def crash_at_6(iteration):
        if iteration == 6:  # after the checkpoint at 4, before the one at 8
            raise Crash

    with pytest.raises(Crash):
        _run(_smoke(), tmp_path / "run", tiny_cifar, on_iteration=crash_at_6)
    directory = tmp_path / "run" / _smoke().run_id
    assert (directory / "checkpoint.pt").exists() and not (directory / "summary.json").exists()
    assert torch.load(directory / "checkpoint.pt", weights_only=False)["state"].iteration == 4
    resumed = _run(_smoke(), tmp_path / "run", tiny_cifar)
    pd.testing.assert_frame_equal(_deterministic(resumed.curves), _deterministic(reference.curves))
    assert _same_weights(resumed, reference)
    starts = json.loads((directory / "env.json").read_text())
    assert [s["from_iteration"] for s in starts] == [0, 4]


LONG = {"iterations": 120, "eval_every": 10}  # long enough to be stopped after 10


def _train_cli(out, data, *extra):
    cmd = [sys.executable, "-m", "ablations.cli", "train", "resnet20", "--profile", "smoke",
           "--device", "cpu", "--iterations", str(LONG["iterations"]),
           "--eval-every", str(LONG["eval_every"]), "--data", str(data),
           "--out", str(out), *extra]  # fmt: skip
    # The reference's thread count: another one changes the CPU kernels' reduction order, and
    # so the last digits of every loss.
    threads = {"OMP_NUM_THREADS": str(torch.get_num_threads())}

    # SIGINT as a terminal delivers it: a suite started in the background (`cmd &`) inherits
    # SIGINT ignored, and the child would then train on through the test's Ctrl-C.
    def terminal_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **threads}, preexec_fn=terminal_sigint)  # fmt: skip


def _wait_for_checkpoint(directory, process, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (directory / "checkpoint.pt").exists():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    pytest.fail("no checkpoint appeared")


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory, tiny_cifar):
    config = resolve_config("resnet20", profile="smoke", device="cpu", **LONG)
    return _run(config, tmp_path_factory.mktemp("reference"), tiny_cifar)


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name
)
def test_killed_process_resumes_to_the_same_result(tmp_path, tiny_cifar, long_reference, sig):
    config = long_reference.config
    directory = tmp_path / "run" / config.run_id
    process = _train_cli(tmp_path / "run", tiny_cifar)
    _wait_for_checkpoint(directory, process)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert not (directory / "summary.json").exists(), "finished before the signal; slow it down"
    if sig == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 130
        assert "rerun to resume" in err
    resumed = _run(config, tmp_path / "run", tiny_cifar)
    pd.testing.assert_frame_equal(
        _deterministic(resumed.curves), _deterministic(long_reference.curves)
    )
    assert _same_weights(resumed, long_reference)


def test_diverging_run_is_recorded_not_raised(tmp_path, tiny_cifar):
    record = _run(_smoke(lr=1e30), tmp_path, tiny_cifar)
    assert record.status == "diverged"
    assert record.summary["diverged_at"] == 4
    assert (record.run_dir / "curves.csv").exists() and not (record.run_dir / "model.pt").exists()
    again = _run(_smoke(lr=1e30), tmp_path, tiny_cifar)  # a sweep sees the stored outcome
    assert again.status == "diverged"


def test_host_dataloader_storage_trains_identically(tmp_path, tiny_cifar):
    device = _run(_smoke(), tmp_path / "device", tiny_cifar)
    host = _run(_smoke(storage="host", workers=2), tmp_path / "host", tiny_cifar)
    assert host.config.key == device.config.key  # storage changes speed, not the run
    pd.testing.assert_frame_equal(_deterministic(host.curves), _deterministic(device.curves))


def test_fashion_mnist_trains_with_one_input_channel(tmp_path, tiny_fashion):
    config = resolve_config("resnet20", profile="smoke", dataset="fashion-mnist", device="cpu")
    record = _run(config, tmp_path, tiny_fashion)
    assert record.status == "complete"
    weights = _weights(record)
    assert weights["conv1.weight"].shape[1] == 1


def test_run_directory_of_another_config_is_refused(tmp_path, tiny_cifar):
    config = _smoke()
    (tmp_path / config.run_id).mkdir(parents=True)
    other = TrainConfig(**{**config.to_json(), "lr": 0.5})
    (tmp_path / config.run_id / "config.json").write_text(pd.Series(other.to_json()).to_json())
    with pytest.raises(AblationsError, match="another config"):
        _run(config, tmp_path, tiny_cifar)


def test_resolve_config_layers():
    paper = resolve_config("resnet56", profile="paper", device="cpu")
    assert (paper.iterations, paper.lr_milestones, paper.batch_size) == (
        64_000,
        (32_000, 48_000),
        128,
    )
    assert (paper.lr, paper.momentum, paper.weight_decay) == (0.1, 0.9, 1e-4)
    assert paper.precision == "fp32" and paper.warmup_lr is None  # "auto" on a CPU
    assert resolve_config("resnet110", profile="paper", device="cpu").warmup_lr == 0.01
    cpu = resolve_config("resnet20", profile="cpu", iterations=2000)
    assert cpu.lr_milestones == (1000, 1500)  # the schedule keeps its shape
    assert resolve_config("resnet56-a", profile="cpu").variant == "resnet56"  # canonical name
    with pytest.raises(AblationsError, match="unknown profile 'fast'"):
        resolve_config("resnet20", profile="fast")
    with pytest.raises(AblationsError, match="unknown training option"):
        resolve_config("resnet20", profile="cpu", learning_rate=1)
    with pytest.raises(AblationsError, match="precision 'fp8'"):
        resolve_config("resnet20", profile="cpu", precision="fp8")


def test_config_key_ignores_execution_only_options():
    base = _smoke()
    assert TrainConfig(**{**base.to_json(), "workers": 4}).key == base.key
    assert TrainConfig(**{**base.to_json(), "lr": 0.2}).key != base.key


def test_lr_schedule_and_warmup():
    config = resolve_config("resnet110", profile="paper", device="cpu")
    assert lr_at(config, 0, None) == 0.01  # warming up
    assert lr_at(config, 500, 400) == 0.1  # warm-up ended at 400
    assert lr_at(config, 32_000, 400) == pytest.approx(0.01)
    assert lr_at(config, 48_000, 400) == pytest.approx(0.001)
    assert lr_at(config, 32_000, None) == pytest.approx(0.01)  # never beyond the first decay


def test_cli_train_smoke(tmp_path, tiny_cifar, capsys):
    code = main(["train", "resnet20", "--profile", "smoke", "--device", "cpu", "--data",
                 str(tiny_cifar), "--out", str(tmp_path)])  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0
    assert "resnet20_cifar10_smoke_s0_" in out and "complete: train error" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "resnet57"], "unknown variant 'resnet57'; closest"),
        (
            ["train", "resnet20", "--profile", "smoke", "--data", "/nonexistent/cifar"],
            "/nonexistent/cifar",
        ),
        (
            ["train", "resnet20", "--profile", "smoke", "--iterations", "0"],
            "--iterations: must be >= 1",  # a usage error: argparse exits 2
        ),
    ],
)
def test_cli_train_bad_input(argv, expected, capsys):
    try:
        code = main(argv)
    except SystemExit as usage_error:  # the parser's own errors (ranges, choices) exit here
        code = usage_error.code
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and expected in err


@pytest.mark.skipif(
    not os.environ.get("ABLATE_DATA"), reason="set ABLATE_DATA to a copy of CIFAR-10"
)
def test_smoke_run_on_real_cifar10(tmp_path):
    record = _run(_smoke(), tmp_path, None)
    assert record.status == "complete"
    [env] = json.loads((record.run_dir / "env.json").read_text())
    assert env["data"]["n_train"] == 50_000 and env["data"]["val_images"] == 128


def test_config_defaults_are_the_papers_and_pinned():
    # Run keys hash only non-default fields: changing a default silently changes what old keys
    # mean. If this fails because a default changed on purpose, bump config.KEY_VERSION too.
    from dataclasses import fields

    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name != "variant"}
    assert defaults == {
        "dataset": "cifar10", "profile": "paper", "seed": 0, "val_size": 5000, "split_seed": 0,
        "train_size": None, "test_size": None, "input_size": None, "augment": True,
        "normalize": "pixel-mean", "iterations": 64000, "batch_size": 128, "optimizer": "sgd",
        "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "lr_milestones": (32000, 48000),
        "lr_gamma": 0.1, "warmup_lr": None, "warmup_until_error": 0.8, "precision": "fp32",
        "channels_last": False, "compile": False, "eval_every": 500, "eval_batch_size": 1000,
        "storage": "device", "workers": 0, "mean": (), "std": (), "resize": None, "crop": None,
        "device": "cpu", "step": "auto",
        "data_id": None, "epochs": None, "eval_split": "val", "init_from": None, "freeze": "none",
        "recipe": None, "arm": None, "bn_batch": None, "stream": None, "classes": None,
        "train_per_class": None, "val_per_class": None, "decode": "cpu",
    }  # fmt: skip


@pytest.mark.parametrize("module", [b"ablations.runners.train", b"ablations.runners.checkpoint"])
def test_a_checkpoint_that_names_state_where_it_once_lived_still_loads(tmp_path, module):
    """Checkpoints name the module of `State` as it was when they were written; a rerun must
    still resume them."""
    import io
    import pickle

    from ablations.train import resume

    old = pickle.dumps(resume.State(iteration=7), protocol=0).replace(
        b"ablations.train.resume", module
    )
    assert module + b"\nState" in old
    assert resume.UNPICKLING.Unpickler(io.BytesIO(old)).load().iteration == 7
    path = tmp_path / "checkpoint.pt"
    torch.save({"state": resume.State(iteration=9)}, path)
    assert resume.checkpoint_iteration(tmp_path) == 9  # torch.load takes the same unpickler
