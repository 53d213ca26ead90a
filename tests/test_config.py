"""The config owns its vocabulary: the stages below it import the values from it, never the
other way round."""

from __future__ import annotations

from ablations import config
from ablations.imagenet import augment


def test_every_stream_the_config_names_has_its_protocol():
    assert set(augment.RECIPES) == set(config.STREAMS)
    for recipe in augment.RECIPES.values():
        assert set(recipe.eval_crops) <= set(config.EVAL_CROPS)
