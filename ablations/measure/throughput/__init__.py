"""Throughput: images/s, step time and peak memory of variants, measured the careful way:
each setting in a fresh child process (`parent`), by one protocol (`child`), against datasheet
peaks (`peaks`) and, on request, timm's own benchmark (`reference`).

A batch size that runs out of memory is recorded as such (status "oom") and, in a sweep
(`batch_size="max"`), halved until it fits; every row names the batch it actually measured.
"""

from ablations.measure.throughput.child import make_step, measure_setting
from ablations.measure.throughput.parent import output_path, process_groups, run
from ablations.measure.throughput.peaks import datasheet, peak_tflops
from ablations.measure.throughput.schema import format_table
from ablations.measure.throughput.settings import MODES, Setting, defaults, grid, setting_key

__all__ = [
    "MODES", "Setting", "datasheet", "defaults", "format_table", "grid", "make_step",
    "measure_setting", "output_path", "peak_tflops", "process_groups", "run", "setting_key",
]  # fmt: skip
