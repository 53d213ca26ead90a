"""Throughput: images/s, step time and peak memory of variants, measured the careful way.

Where to look:

- `settings.py`  what one measurement is (`Setting`), the per-device defaults, the grid
- `parent.py`    which settings share a child process, running the children, appending rows
- `child.py`     the measurement protocol itself (timing, memory, denormals, dynamo counters)
- `flops.py`     a setting's MACs, and the TFLOP/s and fraction of peak a step time makes
- `peaks.py`     datasheet peaks by exact device name, with their sources
- `schema.py`    the results table, terminal formatting, run-to-run spread
- `reference.py` timm's own benchmark.py on the same settings (`--reference timm`)

A batch size that runs out of memory is recorded as such (status "oom") and, in a sweep
(`batch_size="max"`), halved until it fits; every row names the batch it actually measured.
"""

from ablations.measure.throughput.child import make_step, measure_setting
from ablations.measure.throughput.flops import TRAIN_FLOPS_FACTOR
from ablations.measure.throughput.parent import output_path, process_groups, run
from ablations.measure.throughput.peaks import DEVICE_NAMES, datasheet, peak_tflops
from ablations.measure.throughput.schema import format_table
from ablations.measure.throughput.settings import (
    MODES,
    Setting,
    defaults,
    grid,
    setting_key,
    timing,
)

__all__ = [
    "DEVICE_NAMES", "MODES",
    "TRAIN_FLOPS_FACTOR", "Setting", "datasheet", "defaults", "format_table", "grid",
    "make_step", "measure_setting", "output_path", "peak_tflops", "process_groups", "run",
    "setting_key", "timing",
]  # fmt: skip
