"""The tables the GPU runbook writes (device/train_gpu.py, concurrency_gpu.py, gpu_tests.py):
their names and schemas. The scripts that write them and the report that reads them share this
module, so neither spells a file name or a column the other does not.

Each table keeps every measurement (one row per net or setting and call, `created_at` in its
key): a second GPU session adds rows beside the first's, and the report shows the newest of each
machine.
"""

from __future__ import annotations

from ablations.results import Schema

SPEED_FILE = "gpu_speed.csv"
PROJECTION_FILE = "gpu_projection.json"
CONCURRENCY_FILE = "concurrency.csv"
TESTS_FILE = "gpu_tests.json"

SPEED = Schema(
    name="gpu speed",
    columns={
        "variant": "str", "requested_step": "str", "step": "str", "step_note": "str",
        "iterations": "int",
        "batch_size": "int", "seconds": "float", "ms_per_step": "float",
        "images_per_s": "float", "eval_split": "str", "eval_s": "float",
        "checkpoint_bytes": "int", "precision": "str", "channels_last": "bool", "machine": "str",
        "torch": "str", "git_commit": "str", "created_at": "str",
    },
    key=("machine", "variant", "requested_step", "created_at"),
    fix="it is device/train_gpu.py's; move it aside and measure again",
)  # fmt: skip
CONCURRENCY = Schema(
    name="concurrency",
    columns={
        "method": "str", "mps": "bool", "jobs": "int", "variant": "str", "step": "str",
        "precision": "str", "channels_last": "bool", "batch_size": "int", "iterations": "int",
        "seconds": "float", "images_per_s": "float", "machine": "str", "torch": "str",
        "git_commit": "str", "created_at": "str",
    },
    key=("machine", "method", "mps", "jobs", "created_at"),
    fix="it is device/concurrency_gpu.py's; move it aside and measure again",
)  # fmt: skip
