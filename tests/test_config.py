"""The config owns its vocabulary (the stages below it import the values from it, never the
other way round), and resolves the device a run asks for."""

from __future__ import annotations

import pytest
import torch

from ablations import config
from ablations.config import resolve_device
from ablations.errors import AblationsError
from ablations.imagenet import augment


def test_every_stream_the_config_names_has_its_protocol():
    assert set(augment.RECIPES) == set(config.STREAMS)
    for recipe in augment.RECIPES.values():
        assert set(recipe.eval_crops) <= set(config.EVAL_CROPS)


def test_a_gpu_index_is_checked_without_making_it_current(monkeypatch):
    made_current = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", made_current.append)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")
    assert made_current == []  # a CUDA context there only where work starts
    with pytest.raises(AblationsError, match="no cuda:2: torch sees 2 GPU"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(AblationsError, match="sees no GPU; use --device cpu"):
        resolve_device("cuda:0")
