"""scripts/time-limited-gpu.sh end to end on the CPU (PROFILE=smoke): the GPU tests' JUnit XML,
the measured runs, training stopped by the time limit, the packed tarballs; then a second
machine merges them, resumes the stopped run, finishes the set and packs it again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ablations.report import planning as section
from ablations.results import schemas
from ablations.results.table import read_table

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "time-limited-gpu.sh"


def _script(tmp_path: Path, data: Path, machine: str, **settings: str) -> str:
    """The script with its results in tmp_path/machine and its tarballs in .../out."""
    own = ("PACK_DIR", "RESUME_FROM", "TIME_LIMIT", "MAX_MB", "PROFILE", "EXPERIMENTS", "JOBS",
           "STAGE_LIMIT")  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if k not in own}
    environment |= {
        "PACK_DIR": str(tmp_path / machine / "out"), "PROFILE": "smoke", "ABLATE_DATA": str(data),
        "RESULTS": str(tmp_path / machine / "results"),
        "REPORTS": str(tmp_path / machine / "reports"), "TESTS": "tests/gpu/test_streams.py",
        "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **settings,
    }  # fmt: skip
    done = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def _names(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


@pytest.mark.slow
def test_the_script_trains_to_the_time_limit_packs_and_resumes_elsewhere(tmp_path, tiny_cifar):
    log = _script(tmp_path, tiny_cifar, "first", TIME_LIMIT="0", EXPERIMENTS="degradation")
    out, results = tmp_path / "first" / "out", tmp_path / "first" / "results"
    assert "stopped at the time limit with 4 task(s) left" in log
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints-1.tar.gz", "gpu-tests.xml", "results.tar.gz"
    ]  # fmt: skip
    assert 'skipped="1"' in (out / "gpu-tests.xml").read_text()  # no CUDA here
    speed = read_table(results / schemas.STEP_SPEED_FILE, schemas.STEP_SPEED)
    assert sorted(speed["variant"]) == ["plain20", "plain56", "resnet20", "resnet56"]
    assert {"results/step_speed.csv", "results/projection.json"} <= set(
        _names(out / "results.tar.gz")
    )
    [checkpoint] = _names(out / "checkpoints-1.tar.gz")

    log = _script(tmp_path, tiny_cifar, "second", RESUME_FROM=str(out), MAX_MB="0.5")
    results = tmp_path / "second" / "results"
    assert "[measure]" not in log  # measured already on this machine at this commit
    runs = read_table(results / schemas.RUNS_FILE, schemas.RUNS)
    assert sorted(runs["variant"]) == ["plain20", "plain56", "resnet20", "resnet56"]
    stopped = results / Path(checkpoint).parent.relative_to("results")
    assert [s["from_iteration"] for s in json.loads((stopped / "env.json").read_text())] == [0, 4]
    assert not read_table(results / schemas.RESPONSES_FILE, schemas.RESPONSES).empty
    packed = tmp_path / "second" / "out"
    assert "left out (over --max-mb): results/runs/" in log  # weights over half a MB
    assert "results/runs.csv" in _names(packed / "results.tar.gz")
    assert "projected, eager step" in section.planning_section(results).markdown


@pytest.mark.slow
def test_a_stage_past_its_limit_is_stopped_and_training_goes_on(tmp_path, tiny_cifar):
    log = _script(tmp_path, tiny_cifar, "hung", TIME_LIMIT="0", EXPERIMENTS="degradation",
                  STAGE_LIMIT="0.01s")  # fmt: skip
    assert "stopped after STAGE_LIMIT (0.01s): " in log and " -m pytest " in log
    assert "-m ablations plan " in log and "measuring failed" in log
    assert "stopped at the time limit with 4 task(s) left" in log  # trained all the same
    assert (tmp_path / "hung" / "out" / "results.tar.gz").exists()
