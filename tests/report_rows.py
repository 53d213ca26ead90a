"""Synthetic training results for the report's tests: runs, curves and responses tables as
the pipeline writes them, and the rendered README they give."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ablations import Experiment, Lower, Nets, get_variant, stats
from ablations.report import render
from ablations.results import schemas
from ablations.results.table import write_table

MACHINE = "Test CPU (2 cores)"
CHECKSUM = "5bbd2193f3b9982b20b3e62de1fcb9691706d5884e1bfe2840596f4c5f9b9bec"
# Final training errors (fractions) per seed. The paper's shape: plain nets degrade, deeper
# residual nets are better, the gap grows with depth. The "cpu" shape is this repository's
# measured cpu-profile result: the deeper residual net trains worse.
PAPER_ERRORS = {
    "plain20": [0.060, 0.064], "plain56": [0.120, 0.110],
    "resnet20": [0.050, 0.052], "resnet56": [0.030, 0.032],
}  # fmt: skip
CPU_ERRORS = {"plain20": [0.555], "plain56": [0.885], "resnet20": [0.440], "resnet56": [0.649]}


def run_rows(
    errors: dict[str, list[float]],
    *,
    profile: str,
    iterations: int = 1000,
    machine: str = MACHINE,
    dataset: str = "cifar10",
    source: str = "/data/cifar10.tar.gz",
    checksum: str = CHECKSUM,
    first_seed: int = 0,
    experiments: str = "degradation",
) -> pd.DataFrame:
    rows = []
    for name, per_seed in errors.items():
        v = get_variant(name)
        for seed, error in enumerate(per_seed, start=first_seed):
            rows.append({
                "run_id": f"{name}_{dataset}_{profile}_s{seed}_{machine[:4]}", "key": "k",
                "variant": name, "family": v.family, "depth": v.depth, "block": v.block,
                "residual": v.residual, "shortcut": v.shortcut, "stem": v.stem,
                "width": v.width, "stride_at": v.stride_at, "dataset": dataset,
                "profile": profile, "seed": seed, "input_size": 16, "iterations": iterations,
                "iterations_done": iterations, "status": "complete", "diverged_at": 0,
                "warmup_end": 0, "train_error": error, "train_loss": 1.0,
                "val_error": error + 0.01, "best_val_error": error, "test_error": error + 0.02,
                "test_loss": 1.0, "train_s": 50.0, "images_per_s": 1e11 / v.depth / 4e7,
                "params": 10_000 * v.depth, "macs": 2_000_000 * v.depth, "machine": machine,
                "device": "cpu", "precision": "fp32", "torch": "2.15.0",
                "git_commit": "abc123", "data_source": source,
                "data_format": "imagefolder-tar", "data_checksum": checksum,
                "finished_at": "2026-01-01T00:00:00+00:00", "recipe": "", "arm": "",
                "epochs": 0, "best_test_error": float("nan"),
                "trainable_params": 10_000 * v.depth, "train_images": 45_000,
                "experiments": experiments,
            })  # fmt: skip
    return schemas.RUNS.validate(pd.DataFrame(rows))


def curve_rows(runs: pd.DataFrame, *, every: int = 100) -> pd.DataFrame:
    rows = []
    for run in runs.itertuples():
        for it in range(every, run.iterations + 1, every):
            # Decays from 90% to the run's final error.
            train = run.train_error + (0.9 - run.train_error) * math.exp(-5 * it / run.iterations)
            rows += [(run.run_id, it, "train", "error", train),
                     (run.run_id, it, "train", "loss", 2 * train),
                     (run.run_id, it, "val", "error", train + 0.01)]  # fmt: skip
        rows.append((run.run_id, run.iterations, "test", "error", run.test_error))
    columns = ["run_id", "iteration", "split", "metric", "value"]
    return schemas.CURVES.validate(pd.DataFrame(rows, columns=columns))


def response_rows(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for run in runs.itertuples():
        for layer in range(1, run.depth - 1):
            std = (0.5 if run.residual else 1.0) * (1 + 0.5 * math.sin(layer))
            rows.append({"run_id": run.run_id, "variant": run.variant, "profile": run.profile,
                         "residual": run.residual, "depth": run.depth, "layer": layer,
                         "module": f"m{layer}", "std": std})  # fmt: skip
    return schemas.RESPONSES.validate(pd.DataFrame(rows))


def write_results(results: Path, runs: pd.DataFrame, *, responses: bool = True) -> None:
    write_table(runs, results / schemas.RUNS_FILE, schemas.RUNS)
    write_table(curve_rows(runs), results / schemas.CURVES_FILE, schemas.CURVES)
    if responses:
        write_table(response_rows(runs), results / schemas.RESPONSES_FILE, schemas.RESPONSES)


def render_readme(tmp_path: Path, runs: pd.DataFrame, **kwargs: bool) -> tuple[Path, str]:
    results, out = tmp_path / "results", tmp_path / "reports"
    write_results(results, runs, **kwargs)
    render.render(results=results, out=out)
    return out, (out / "README.md").read_text()


def section(readme: str, heading: str) -> str:
    """The text of a Markdown section, from its heading to the next heading of its level."""
    level = heading.split(" ")[0]
    start = readme.index(heading)
    end = readme.find(f"\n{level} ", start + len(heading))
    return readme[start : end if end >= 0 else len(readme)]


# A user's own experiment: options A and C at two depths, with one declared claim.
OPTION_C = Lower("option C trains better than option A", lower=Nets({"shortcut": "c"}),
                 higher=Nets({"shortcut": "a"}, label="option A"))  # fmt: skip
PROJECTIONS = Experiment(
    name="projections", kind="train", title="Projections", description="options A and C",
    variants={"*": ("resnet20", "resnet20-c", "resnet56", "resnet56-c")}, claims=(OPTION_C,),
)  # fmt: skip
# Final errors of option A and option C (3 seeds each) that reach each verdict of the rule.
VERDICT_CASES = [
    ([0.50, 0.51, 0.49], [0.30, 0.31, 0.29], stats.HOLDS),
    ([0.30, 0.31, 0.29], [0.50, 0.51, 0.49], stats.FAILS),
    ([0.40, 0.60, 0.50], [0.35, 0.55, 0.45], stats.NOT_RESOLVED),
]
