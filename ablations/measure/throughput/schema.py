"""The throughput table: its schema, a row from what a child measured, terminal formatting and
the run-to-run spread."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ablations.measure.throughput.settings import Setting
from ablations.registry import get_variant
from ablations.results import schemas
from ablations.results.schemas import OURS

MEASURED = ("images_per_s", "step_ms", "step_ms_iqr", "first_step_s", "peak_mem_mb", "tflops",
            "peak_tflops", "fraction_of_peak", "host_syncs_per_step")  # fmt: skip
COUNTERS = ("dynamo_graphs", "dynamo_graph_breaks", "dynamo_frames_skipped")


def row(result: dict[str, Any], environment: dict[str, Any]) -> dict[str, Any]:
    """A results row: the setting, what was measured and reported, the environment."""
    setting = Setting(**result["setting"])
    v = get_variant(setting.variant)
    # A setting that measured nothing: its fixed batch, or 0 where none was fixed.
    requested = setting.batch_size if isinstance(setting.batch_size, int) else 0
    return {
        "variant": v.name, "family": v.family, "depth": v.depth, "residual": v.residual,
        "shortcut": v.shortcut, "stem": v.stem, "mode": setting.mode, "step": setting.step,
        "reference": result.get("reference", OURS), "device": setting.device,
        "machine": environment["machine"], "precision": setting.precision,
        "channels_last": setting.channels_last, "compile": setting.compile,
        "requested_batch_size": str(setting.batch_size or "default"),
        "batch_size": result.get("batch_size", requested),
        "input_size": setting.input_size or v.input_size, "run": setting.run,
        "warmup": setting.warmup, "repeats": setting.repeats, "steps": setting.steps,
        "error": result.get("error", ""), "macs": result.get("macs", 0),
        **{k: result.get(k, math.nan) for k in MEASURED},
        **{k: result.get(k, 0) for k in COUNTERS},
        "status": result["status"], "memory_kind": result.get("memory_kind", ""),
        "peak_source": result.get("peak_source", ""), "protocol": result.get("protocol", ""),
        **{k: result.get(k, False) for k in ("tf32_matmul", "tf32_cudnn", "cudnn_benchmark")},
        "cudnn": result.get("cudnn", ""), "torch_threads": result.get("torch_threads", 0),
        "driver": environment["driver"], "torch": environment["torch"],
        "cuda": environment["cuda"], "git_commit": environment["git_commit"],
        "created_at": environment["created_at"],
        **{k: environment[k] for k in schemas.MACHINE_HASHES},
        "cpu_kernels": environment["cpu_kernels"],  # torch_threads: the child's, above
    }  # fmt: skip


def format_table(table: pd.DataFrame) -> str:
    """The measurements as a terminal table."""
    shown = pd.DataFrame({
        "variant": table["variant"], "mode": table["mode"], "step": table["step"],
        "ref": table["reference"],
        "precision": table["precision"], "channels_last": table["channels_last"],
        "compile": table["compile"], "batch": table["batch_size"], "status": table["status"],
        "images/s": table["images_per_s"].map("{:,.1f}".format),
        "step ms (IQR)": [f"{m:.2f} ({q:.2f})"
                          for m, q in zip(table["step_ms"], table["step_ms_iqr"], strict=True)],
        "peak MB": table["peak_mem_mb"].map("{:,.0f}".format),
        "TFLOP/s": table["tflops"].map("{:.3g}".format),
        "of peak": table["fraction_of_peak"].map(lambda f: "" if f != f else f"{f:.1%}"),
    })  # fmt: skip
    return f"# {table['machine'].iloc[0]}\n{shown.to_string(index=False)}"
