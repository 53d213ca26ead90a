"""Throughput: images/s, step time and peak memory, each setting in a fresh child process
(`parent`) by one protocol (`child`), against datasheet peaks and, on request, timm's own
benchmark (`reference`). A batch that runs out of memory is an "oom" row; a sweep
(`batch_size="max"`) halves it until it fits."""

from ablations.measure.throughput.child import make_step
from ablations.measure.throughput.parent import format_table, output_path, run
from ablations.measure.throughput.settings import MODES, Setting, defaults, grid, setting_key

__all__ = [
    "MODES", "Setting", "defaults", "format_table", "grid", "make_step", "output_path", "run",
    "setting_key",
]  # fmt: skip
