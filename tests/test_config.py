"""The config owns its vocabulary: the stages below it import the values from it, never the
other way round."""

from __future__ import annotations

import subprocess
import sys

from ablations import config
from ablations.imagenet import augment


def test_the_config_imports_no_runner_and_no_data_module():
    below = ("ablations.data", "ablations.imagenet", "ablations.train", "ablations.measure",
             "ablations.gpu", "ablations.weights")  # fmt: skip
    probe = ("import sys, ablations.config; print(' '.join(m for m in sys.modules if "
             f"m.startswith({below!r})))")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.split()  # fmt: skip
    assert loaded == []


def test_every_stream_the_config_names_has_its_protocol():
    assert set(augment.RECIPES) == set(config.STREAMS)
    for recipe in augment.RECIPES.values():
        assert set(recipe.eval_crops) <= set(config.EVAL_CROPS)
