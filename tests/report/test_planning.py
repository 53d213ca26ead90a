"""The report's planning section (ablations.report.planning) from the tables of
ablations.measure.step_speed: img/s by step kind with the graph step over the eager, the set's
projected time beside the GPU time its runs took (each run's share), runs at once over one alone;
the README's GPU blocks (train-speed, timm, the GPU table) from GPU rows only; and, before anything
is measured, the line that says how to. The rows here are made up, as a GPU would write them
(tests/scripts/test_time_limited_gpu.py checks the section on the rows a CPU smoke run writes)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ablations.report import planning as section
from ablations.report import readme_blocks
from ablations.report.render import render
from ablations.results import schemas
from ablations.results.table import Schema, write_table

GPU = "NVIDIA H100 80GB HBM3"
COMMON = {"precision": "bf16", "channels_last": True, "batch_size": 128, "machine": GPU,
          "torch": "2.11.0", "git_commit": "abc123def456"}  # fmt: skip


def _speed(variant: str, step: str, images_per_s: float, created_at: str = "2026-12-06") -> dict:
    requested = "auto" if step == "graph" else step
    return {"variant": variant, "requested_step": requested, "step": step, "step_note": "",
            "iterations": 2000,
            "seconds": 2000 * 128 / images_per_s, "ms_per_step": 128e3 / images_per_s,
            "images_per_s": images_per_s, "eval_split": "test", "eval_s": 0.5,
            "checkpoint_bytes": 2_300_000, "created_at": created_at, **COMMON}  # fmt: skip


def _concurrency(method: str, jobs: int, images_per_s: float, *, mps: bool = False) -> dict:
    return {"method": method, "mps": mps, "jobs": jobs, "variant": "resnet56", "step": "graph",
            "iterations": 300, "seconds": 1.0, "images_per_s": images_per_s,
            "created_at": "2026-12-06", **COMMON}  # fmt: skip


def test_before_any_measurement_the_section_says_how_to_measure(tmp_path):
    text = section.planning_section(tmp_path).markdown
    assert text.startswith(section.TITLE) and "Not measured yet" in text
    assert "`ablate plan --measure`" in text and schemas.STEP_SPEED_FILE in text
    assert "`ablate runs-at-once`" in text


def test_the_section_shows_what_was_measured(tmp_path):
    speed = pd.DataFrame([
        _speed("resnet20", "graph", 40_000.0, "2026-12-01"),  # superseded by the next
        _speed("resnet20", "graph", 50_000.0), _speed("resnet20", "eager", 10_000.0),
        _speed("resnet110", "graph", 8_000.0), _speed("resnet110", "eager", 4_000.0),
    ])  # fmt: skip
    write_table(speed, tmp_path / schemas.STEP_SPEED_FILE, schemas.STEP_SPEED)
    write_table(pd.DataFrame([_concurrency("streams", 1, 20_000.0),
                              _concurrency("streams", 4, 50_000.0),
                              _concurrency("processes", 2, 30_000.0, mps=True)]),
                tmp_path / schemas.RUNS_AT_ONCE_FILE, schemas.RUNS_AT_ONCE)  # fmt: skip
    projection = {"runs": 9, "graph_seconds": dict.fromkeys("abcdefghi", 80.0),
                  "graph_total_minutes": 12.0, "runs_at_once": 4, "combined_speedup": 2.5,
                  "machine": GPU}  # fmt: skip
    (tmp_path / schemas.PROJECTION_FILE).write_text(json.dumps(projection))
    text = section.planning_section(tmp_path).markdown
    assert "| ResNet-20 | 50,000 | 10,000 |" in text and "40,000" not in text
    assert "5.00x" in text and "2.00x" in text  # graph over eager, per net
    assert "12.0 min one at a time, 4.8 min 4 at once (9 runs;" in text
    assert "| streams | 4 | 50,000 | 2.50x |" in text and "| processes (MPS) | 2 |" in text
    assert "measured:" not in text  # no paper-profile GPU run yet


def test_the_set_time_counts_each_run_by_its_share_of_the_gpu():
    rows = [{"variant": v, "profile": "paper", "device": "cuda", "seed": 0, "status": "complete",
             "experiments": "degradation", "train_s": 600.0, "runs_at_once": k, "machine": GPU,
             "run_id": v}
            for v, k in (("resnet20", 1), ("resnet56", 2), ("plain20", 2))]  # fmt: skip
    others = [{**rows[0], "seed": 1, "run_id": "a"}, {**rows[0], "device": "cpu", "run_id": "b"},
              {**rows[0], "experiments": "imagenet-degradation", "run_id": "c"}]  # fmt: skip
    text = "\n".join(section.set_time_lines(None, _table(schemas.RUNS, rows + others)))
    # 600 s alone + 2 x 600 s shared by 2 = 20 min, over the 3 seed-0 GPU degradation runs.
    assert "20.0 min of GPU time for the 3 nets trained so far" in text
    assert "ResNet-20, ResNet-56, plain-20" in text


def test_the_rendered_report_holds_the_section(tmp_path: Path):
    render(results=tmp_path, out=tmp_path / "reports")
    assert section.TITLE in (tmp_path / "reports" / "README.md").read_text()


def _table(schema: Schema, rows: list[dict]) -> pd.DataFrame:
    """Rows of a results table, every column the schema names blank but those given."""
    blank = {"str": "", "int": 0, "float": float("nan"), "bool": False}
    base = {column: blank[kind] for column, kind in schema.columns.items()}
    return schema.validate(pd.DataFrame([{**base, **row} for row in rows]))


def test_the_readme_gpu_blocks_say_how_to_measure_before_any_gpu(tmp_path):
    for name in ("planning", "gpu-throughput", "gpu-timm", "gpu-train-speed"):
        text = readme_blocks.BLOCKS[name](tmp_path)
        assert text.startswith(("Not measured", "No GPU rows")), name
        assert "`ablate " in text, name
        assert name == "planning" or "(#time-limited-gpus)" in text, name


def test_the_readme_gpu_blocks_show_only_gpu_rows(tmp_path):
    on = {"device": "cuda", "machine": GPU, "status": "ok", "torch": "2.11.0",
          "git_commit": "abc123def456", "batch_size": 256, "input_size": 224}  # fmt: skip
    cpu = {**on, "device": "cpu", "machine": "AMD EPYC (2 cores)"}
    grid = [{**on, "variant": "resnet50", "mode": mode, "reference": "ours", "precision": p,
             "channels_last": cl, "images_per_s": base * (2 if p == "bf16" else 1)
             * (1.5 if cl else 1)}
            for mode, base in (("train", 1000.0), ("infer", 3000.0))
            for p in ("bf16", "tf32") for cl in (True, False)]  # fmt: skip
    grid.append({**grid[0], **cpu, "images_per_s": 10.0})
    write_table(_table(schemas.THROUGHPUT, grid), tmp_path / schemas.THROUGHPUT_FILE,
                schemas.THROUGHPUT)  # fmt: skip
    table = readme_blocks.gpu_throughput(tmp_path)
    assert "| resnet50 | train | 3,000 | 2,000 | 1,500 | 1,000 |" in table
    assert "bf16, channels_last" in table and "tf32, NCHW" in table and GPU in table
    assert "| 10 |" not in table  # the CPU row stays in the CPU table

    timm = [
        {**grid[0], "step": "graph", "fraction_of_peak": 0.3},
        {**grid[0], "reference": "timm", "images_per_s": 2000.0},
    ]
    write_table(_table(schemas.THROUGHPUT, timm), tmp_path / schemas.REFERENCE_FILE,
                schemas.THROUGHPUT)  # fmt: skip
    assert "1.50x" in readme_blocks.gpu_timm(tmp_path)

    loops = [{**on, "variant": "resnet20", "loop": loop, "images_per_s": ips, "step": "graph",
              "optimizer": "SGD fused", "batch_size": 128, "input_size": 32}
             for loop, ips in (("suite", 60_000.0), ("conventional", 10_000.0))]  # fmt: skip
    loops.append({**loops[0], **cpu, "images_per_s": 500.0})
    write_table(
        _table(schemas.TRAIN_SPEED, loops), tmp_path / schemas.TRAIN_SPEED_FILE, schemas.TRAIN_SPEED
    )
    shown = readme_blocks.train_speed(tmp_path, device="cuda")
    assert "6.00x" in shown and GPU in shown and "AMD EPYC" not in shown


def test_a_projection_cut_short_names_the_nets_it_did_not_measure():
    projection = {"runs": 9, "graph_seconds": dict.fromkeys("abcdefgh", 22.5),
                  "graph_total_minutes": 3.0, "graph_unmeasured": ["resnet110"],
                  "machine": GPU}  # fmt: skip
    [line] = section.set_time_lines(projection, schemas.RUNS.empty())
    assert "3.0 min one at a time (8 of 9 runs: ResNet-110 not measured;" in line
