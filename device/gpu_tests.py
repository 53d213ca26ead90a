"""The GPU tests of the runbook (device/train_gpu.sh): the graph step against the eager one and
under CUDA's sync detector, runs at once against runs alone, the streamed loader, bench's graph
step. They run once per GPU model, torch and commit: results/gpu_tests.json records what ran
where and how it ended, so a later call of the same session (which carries the results back)
skips them and spends its minutes training, while a new commit or GPU runs them again. The
record is committed with the results: it is the evidence that the GPU paths passed on a GPU.

A failed or timed-out run is recorded too, and never stops the runbook: the measuring and the
training still run, and the next call tries the tests again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ablations import env
from ablations.runbook import TESTS_FILE

TESTS = ("tests/test_steps.py", "tests/test_together.py", "tests/test_imagenet_runs.py",
         "tests/test_throughput.py")  # fmt: skip
SELECT = "gpu"  # the marker: tests that need CUDA


def say(line: str) -> None:
    print(f"[gpu_tests] {line}", file=sys.stderr, flush=True)


def where() -> dict[str, str]:
    """What a record holds for: the GPU (the CPU, where none is), torch and the commit."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"machine": env.device_name(device), "torch": torch.__version__,
            "git_commit": env.git_commit()}  # fmt: skip


def passed_here(record: Path) -> bool:
    if not record.exists():
        return False
    old = json.loads(record.read_text())
    return bool(old.get("passed")) and all(old.get(k) == v for k, v in where().items())


def run(tests: list[str], *, timeout: float) -> dict[str, Any]:
    """pytest over `tests` (those marked SELECT) in a child, its output passed through; the counts come
    from its JUnit XML, so a crash or a timeout is told apart from a failure."""
    with tempfile.TemporaryDirectory() as scratch:
        xml = Path(scratch) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", SELECT,
                   f"--junitxml={xml}", *tests]  # fmt: skip
        try:
            code: int | str = subprocess.run(command, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = f"timed out after {timeout:.0f} s"
        counts = _counts(xml) if xml.exists() else {}
    # pytest exits 0 when all passed (skips included), 5 when the selection is empty.
    return {"passed": code == 0, "exit": code, **counts}


def _counts(xml: Path) -> dict[str, int]:
    suite = ElementTree.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return {"tests": total, "failed": failed, "skipped": skipped,
            "ran_and_passed": total - failed - skipped}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--record", type=Path, default=Path("results") / TESTS_FILE)
    p.add_argument("--timeout", type=float, default=150, metavar="S")
    p.add_argument("--force", action="store_true", help="run them even where they passed")
    p.add_argument("tests", nargs="*", default=list(TESTS))
    args = p.parse_args(argv)
    if not args.force and passed_here(args.record):
        say(f"already passed here ({args.record}); --force (TESTS=1) runs them again")
        return 0
    result = run(args.tests, timeout=args.timeout)
    record = {**where(), "selection": SELECT, "files": " ".join(args.tests), **result,
              "created_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}  # fmt: skip
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(json.dumps(record, indent=1) + "\n")
    say(f"{'passed' if result['passed'] else 'FAILED (above); measuring anyway'}: "
        f"{result.get('ran_and_passed', 0)} ran and passed, {result.get('skipped', 0)} skipped, "
        f"{result.get('failed', 0)} failed ({args.record})")  # fmt: skip
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
