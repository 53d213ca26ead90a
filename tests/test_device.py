"""The GPU runbook (device/train_gpu.sh) end to end on the CPU at the smoke budget: measure,
project, train until the time limit, pack; then a second call resumes and finishes the set and
measures its layer responses. Also: a failed measurement still trains and packs, and the
weights packed stay within what a device call returns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from ablations import runbook
from ablations.report import gpu
from ablations.results import read_table

ROOT = Path(__file__).resolve().parents[1]


def _runbook(tmp_path: Path, data: Path, out: str, *args: str, results: str = "results",
             carried: str = "nothing") -> subprocess.CompletedProcess:  # fmt: skip
    """The runbook in --smoke, its results in tmp_path/`results`, carrying back the tarballs in
    tmp_path/`carried` (an earlier call's $OUT), as a later device call would."""
    environment = {**os.environ, "OUT": str(tmp_path / out), "ABLATE_DATA": str(data),
                   "OMP_NUM_THREADS": "1", "RESUME_FROM": str(tmp_path / carried),
                   "PYTHON": sys.executable}  # fmt: skip
    return subprocess.run(
        ["bash", str(ROOT / "device" / "train_gpu.sh"), "--smoke",
         "--results", str(tmp_path / results), *args],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _names(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


@pytest.mark.slow
def test_runbook_measures_stops_cleanly_packs_and_resumes(tmp_path, tiny_cifar):
    # No time: nothing is measured, and the first run still starts and stops at a checkpoint.
    first = _runbook(tmp_path, tiny_cifar, "out1", "--time-limit", "0")
    assert first.returncode == 0, first.stdout[-3000:]
    out, results = tmp_path / "out1", tmp_path / "results"
    assert "measuring stopped at the time limit, before plain20" in first.stdout
    assert not (results / "gpu_speed.csv").exists()
    [stopped] = json.loads((out / "runs.json").read_text())
    assert stopped["status"] == "stopped" and stopped["iterations"] == 4
    assert "stopped cleanly at a checkpoint" in first.stdout
    assert any(n.endswith("checkpoint.pt") for n in _names(out / "checkpoints-1.tar.gz"))
    names = _names(out / "results.tar.gz")
    assert any(n.endswith("config.json") for n in names) and not any(".pt" in n for n in names)

    # A later call on a fresh copy of the tree, carrying the first call's tarballs back: with
    # time, it measures every net, projects, resumes the stopped run and finishes the set.
    second = _runbook(tmp_path, tiny_cifar, "out2", "--jobs", "2", "--measure-iterations", "3",
                      "--eager-iterations", "2", results="results2", carried="out1")  # fmt: skip
    assert second.returncode == 0, second.stdout[-3000:]
    assert second.stdout.count("merging") == 2  # results.tar.gz and checkpoints-1.tar.gz
    results = tmp_path / "results2"
    starts = json.loads((results / "runs" / stopped["run_id"] / "env.json").read_text())
    assert [s["from_iteration"] for s in starts] == [0, 4]  # resumed from the carried checkpoint
    speed = read_table(results / "gpu_speed.csv", runbook.SPEED)
    assert set(speed["step"]) == {"eager"} and len(speed) == 8  # 4 nets x (auto, eager) on a CPU
    assert (speed["images_per_s"] > 0).all() and set(speed["eval_split"]) == {"val"}
    assert (speed["checkpoint_bytes"] > 0).all()
    projection = json.loads((results / "gpu_projection.json").read_text())
    assert projection["nets"] == 4 and projection["eager_total_minutes"] > 0
    assert projection["runs_at_once"] == 2 and projection["machine"]
    assert {"results/gpu_speed.csv", "results/gpu_projection.json"} <= set(
        _names(tmp_path / "out2" / "results.tar.gz")
    )
    shown = gpu.gpu_section(results).markdown  # the report shows what the runbook measured
    assert "img/s, eager step" in shown and "projected, eager step" in shown
    runs = json.loads((tmp_path / "out2" / "runs.json").read_text())
    assert [r["status"] for r in runs] == ["complete"] * 4
    assert stopped["run_id"] in [r["run_id"] for r in runs]  # resumed, not restarted elsewhere
    assert "4 unfinished run(s), 2 at once" in second.stdout
    table = pd.read_csv(results / "runs.csv")
    assert len(table) == 4 and set(table["status"]) == {"complete"}
    assert set(table["experiments"]) == {"degradation"}  # the report selects the runs by it
    # Fig. 7 measured here, from the weights, before the machine goes.
    responses = pd.read_csv(results / "responses.csv")
    assert set(responses["run_id"]) == set(table["run_id"])
    weights = [n for part in sorted((tmp_path / "out2").glob("weights-*.tar.gz"))
               for n in _names(part)]  # fmt: skip
    assert sorted(n for n in weights if n.endswith("model.pt")) == sorted(
        f"results/runs/{r}/model.pt" for r in table["run_id"]
    )  # fmt: skip
    assert "results/responses.csv" in _names(tmp_path / "out2" / "results.tar.gz")


@pytest.mark.slow
def test_a_failed_measurement_still_trains_and_packs(
    tmp_path, tiny_cifar, monkeypatch, capsys, device_script
):
    train_gpu = device_script("train_gpu")

    def broken(*args, **kwargs):  # slow, then failing: the time limit passes meanwhile
        time.sleep(1.5)
        raise ValueError("an evaluation over no images has no metrics")

    monkeypatch.setattr(train_gpu, "measure", broken)
    code = train_gpu.main(["--smoke", "--out", str(tmp_path / "out"), "--results",
                           str(tmp_path / "results"), "--data", str(tiny_cifar),
                           "--time-limit", "1"])  # fmt: skip
    assert code == 0
    assert "measuring failed" in capsys.readouterr().err
    [stopped] = json.loads((tmp_path / "out" / "runs.json").read_text())
    assert stopped["status"] == "stopped"
    assert (tmp_path / "out" / "results.tar.gz").exists()


def test_measure_evaluates_the_split_the_profile_evaluates(tiny_cifar, monkeypatch, device_script):
    """The paper profile holds no validation split (it evaluates on test): measuring it must
    time the test pass, not fail on an empty val split."""
    from ablations.config import resolve_config
    from ablations.data import load_dataset
    from ablations.data.prepare import prepare_data

    cpu = torch.device("cpu")
    config = resolve_config("plain20", profile="paper", device="cpu", input_size=8)
    data = prepare_data(config, load_dataset("cifar10", data=tiny_cifar), cpu)
    train_gpu = device_script("train_gpu")
    monkeypatch.setattr(train_gpu, "WARMUP_ITERATIONS", 1)
    row = train_gpu.measure(config, data, cpu, 1)
    assert row["eval_split"] == "test" and row["eval_s"] > 0


def test_packed_weights_stay_within_what_a_call_returns(tmp_path, monkeypatch, device_script):
    """Checkpoints of unfinished runs first, the furthest along first, within what a later call
    can carry; then the weights of runs finished in this call; parts under the part size, no
    more parts and bytes than a call returns; the rest named."""
    packing = device_script("packing")
    for name, value in {"PART_BYTES": 100, "WEIGHT_PARTS": 3, "WEIGHT_BYTES": 230,
                        "CARRY_BYTES": 120}.items():  # fmt: skip
        monkeypatch.setattr(packing, name, value)
    runs = tmp_path / "results" / "runs"
    files = {"a": ("checkpoint.pt", 60, 10), "b": ("checkpoint.pt", 60, 30),
             "c": ("checkpoint.pt", 50, 20), "d": ("model.pt", 90, 0), "e": ("model.pt", 40, 0),
             "f": ("model.pt", 30, 0)}  # fmt: skip
    for run, (name, size, iteration) in files.items():
        (runs / run).mkdir(parents=True)
        (runs / run / name).write_bytes(b"\0" * size)
        pd.DataFrame({"iteration": [iteration]}).to_csv(runs / run / "curves.csv", index=False)
    (runs / "d" / "best.pt").write_bytes(b"\0" * 10)  # never packed
    out = tmp_path / "out"
    out.mkdir()
    written, notes = packing.pack(tmp_path / "results", ["d", "e", "f"], out)
    assert [p.name for p in written] == ["results.tar.gz", "checkpoints-1.tar.gz",
                                         "checkpoints-2.tar.gz", "weights-1.tar.gz"]  # fmt: skip
    # b (iteration 30) and c (20) first: 110 bytes, over one 100-byte part; a would pass the
    # 120 bytes a later call carries. d (90) opens the last of the 3 parts; e (40) and f (30)
    # fit in none.
    assert [_names(p) for p in written[1:]] == [
        ["results/runs/b/checkpoint.pt"], ["results/runs/c/checkpoint.pt"],
        ["results/runs/d/model.pt"],
    ]  # fmt: skip
    assert notes == [
        "left out (over what a later call can carry: that run restarts): "
        "results/runs/a/checkpoint.pt",
        "left out (over what a call returns): results/runs/e/model.pt",
        "left out (over what a call returns): results/runs/f/model.pt",
    ]


def test_a_call_without_the_carried_wheels_stops_in_one_line(tmp_path):
    """The GPU image has neither fvcore nor submitit: without their wheels the runbooks stop at
    once, naming what to carry, instead of minutes into the device's time (here a Python
    without site-packages stands in for that image)."""
    environment = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": f"{sys.executable} -S"}
    done = subprocess.run(["bash", str(ROOT / "device" / "train_gpu.sh"), "--smoke"], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "missing: fvcore submitit; carry the wheels: ../shared/device/wheels.sh .whl" in (
        done.stdout
    )


@pytest.mark.slow
@pytest.mark.parametrize("time_limit", [600, 0])
def test_recipes_start_only_the_runs_that_end_in_time_or_resume(
    tmp_path, tiny_cifar, monkeypatch, capsys, device_script, time_limit
):
    """Issue 11's tutorial claims on the GPU (`--runs recipes`): every arm of the CIFAR-10
    recipes that claim an accuracy. A ResNet-18's checkpoint is over what a later call can carry
    back, so such a run starts only where its measured time fits what is left (all of them, in
    a long call; none, in a call with no time left); the small ResNet-14's resumes, so it always
    may."""
    from ablations import recipes

    train_gpu = device_script("train_gpu")
    monkeypatch.setattr(train_gpu, "WARMUP_ITERATIONS", 1)
    code = train_gpu.main(["--smoke", "--runs", "recipes", "--fit-iterations", "1", "--out",
                           str(tmp_path / "out"), "--results", str(tmp_path / "results"),
                           "--data", str(tiny_cifar), "--time-limit", str(time_limit)])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    claimed = [r for r in recipes.RECIPES.values()
               if r.claimed_accuracy is not None and r.dataset == "cifar10"]  # fmt: skip
    expected = {c.run_id for r in claimed for c in recipes.recipe_configs(r.name, profile="smoke")}
    big = {run for run in expected if "resnet18" in run}
    assert big and len(expected - big) == 1  # the ResNet-18 recipes' arms, and ResNet-14's
    ran = {
        r["run_id"]: r["status"] for r in json.loads((tmp_path / "out" / "runs.json").read_text())
    }
    if time_limit:
        assert ran == dict.fromkeys(expected, "complete")
        assert "(too big to carry back)" in err and "not started" not in err
        table = pd.read_csv(tmp_path / "results" / "runs.csv")
        assert set(table["recipe"]) == {r.name for r in claimed}
    else:
        assert set(ran) == expected - big
        assert all(f"{run}: not started: it cannot resume in a later call" in err for run in big)


def test_gpu_tests_run_once_per_machine_and_commit_and_record_how_they_ended(
    tmp_path, device_script
):
    """device/gpu_tests.py: a record of what ran where; a second call with a passing record for
    this machine, torch and commit skips the tests; a failure, a timeout or --force runs them."""
    gpu_tests = device_script("gpu_tests")
    record = tmp_path / "results" / "gpu_tests.json"
    tests = tmp_path / "probe"
    tests.mkdir()
    gpu = "import time\nimport pytest\n\n@pytest.mark.gpu\n"
    (tests / "test_ok.py").write_text(f"{gpu}def test_ok():\n    pass\n\n"
                                      "def test_gpu_named_but_unmarked():\n"
                                      "    raise AssertionError\n")  # fmt: skip
    (tests / "test_bad.py").write_text(f"{gpu}def test_bad():\n    raise AssertionError\n")
    (tests / "test_slow.py").write_text(f"{gpu}def test_slow():\n    time.sleep(30)\n")

    def call(name: str, *args: str) -> tuple[int, dict]:
        code = gpu_tests.main(["--record", str(record), *args, str(tests / name)])
        return code, json.loads(record.read_text())

    code, first = call("test_ok.py")  # only the marked test runs, whatever the names
    assert code == 0 and first["passed"] and first["ran_and_passed"] == 1
    assert first["failed"] == 0 and first["machine"] and first["git_commit"]
    assert call("test_ok.py") == (0, first)  # skipped: the record stands as it was
    code, bad = call("test_bad.py", "--force")
    assert code == 1 and not bad["passed"] and bad["failed"] == 1
    code, again = call("test_ok.py")  # after a failure they run again
    assert code == 0 and again["passed"] and again["created_at"] >= bad["created_at"]
    code, slow = call("test_slow.py", "--force", "--timeout", "3")
    assert code == 1 and not slow["passed"] and slow["exit"] == "timed out after 3 s"


def test_the_projection_counts_only_the_nets_measured(device_script):
    from ablations.config import resolve_config

    train_gpu = device_script("train_gpu")
    configs = [resolve_config(v, profile="paper", device="cpu") for v in ("resnet20", "resnet56")]
    rows = pd.DataFrame([{"variant": "resnet20", "step": "graph", "ms_per_step": 2.0,
                          "eval_s": 1.0}])  # fmt: skip
    projection = train_gpu.project(rows, configs, steps_per_epoch=391)
    # 64k steps of 2 ms; 128 evaluations (every 500 steps) and the final test pass (counted
    # twice) of 1 s each.
    assert projection["graph_seconds"] == {"resnet20": pytest.approx(64_000 * 2e-3 + 130 * 1.0)}
    assert projection["graph_unmeasured"] == ["resnet56"] and projection["nets"] == 2


@pytest.mark.slow
def test_a_later_call_measures_only_what_an_earlier_one_left_out(
    tmp_path, tiny_cifar, monkeypatch, device_script
):
    from ablations.config import resolve_config

    train_gpu = device_script("train_gpu")
    monkeypatch.setattr(train_gpu, "WARMUP_ITERATIONS", 1)
    configs = [resolve_config(v, profile="smoke", device="cpu") for v in ("resnet20", "plain20")]

    def call(iterations: dict[str, int]) -> pd.DataFrame:
        train_gpu.measure_set(configs, data=str(tiny_cifar), device=torch.device("cpu"),
                              results=tmp_path, iterations=iterations, jobs=1, speedup=1.0,
                              deadline=time.monotonic() + 600)  # fmt: skip
        return read_table(tmp_path / runbook.SPEED_FILE, runbook.SPEED)

    first = call({"auto": 1})
    assert sorted(first["variant"]) == ["plain20", "resnet20"]
    second = call({"auto": 1, "eager": 1})  # the auto rows stand; only the eager ones are new
    assert len(second) == 4 and set(second["requested_step"]) == {"auto", "eager"}
    pd.testing.assert_frame_equal(second.iloc[:2], first)
    projection = json.loads((tmp_path / runbook.PROJECTION_FILE).read_text())
    assert set(projection["eager_seconds"]) == {"resnet20", "plain20"}  # both calls' rows
