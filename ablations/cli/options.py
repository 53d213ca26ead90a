"""Option vocabularies read by both the parser and the subcommands, kept here so that the
subcommands never import the parser (which imports them): `ablate train`'s overrides of the
profile (the parser adds them, `cmd_train` collects them) and `ablate bench`'s off / on / both."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ablations.config import DECODES
from ablations.runners.steps import PRECISIONS, STEPS


def _comma_separated(convert: Callable[[str], Any], what: str) -> Callable[[str], tuple[Any, ...]]:
    """An argparse type: "a,b,c" -> (convert(a), convert(b), convert(c))."""

    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(convert(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what}, got {text!r}"
            ) from None

    return parse


_floats = _comma_separated(float, "numbers")
_milestones = _comma_separated(int, "iterations (or epochs, with --epochs)")


# `ablate train` options that override the profile; absent ones stay out of the namespace.
TRAIN_OVERRIDES: dict[str, dict[str, Any]] = {
    "iterations": {"type": int},
    "batch_size": {"type": int},
    "lr": {"type": float},
    "lr_milestones": {"type": _milestones, "metavar": "A,B,..."},
    "lr_gamma": {"type": float},
    "momentum": {"type": float},
    "weight_decay": {"type": float},
    "precision": {"choices": list(PRECISIONS)},
    "channels_last": {"action": argparse.BooleanOptionalAction},
    "compile": {"action": argparse.BooleanOptionalAction},
    "eval_every": {"type": int},
    "input_size": {"type": int},
    "train_size": {"type": int},
    "val_size": {"type": int},
    "augment": {"action": argparse.BooleanOptionalAction},
    "normalize": {"choices": ["pixel-mean", "channel", "fixed"]},
    "mean": {"type": _floats, "metavar": "M1,M2,M3", "help": "for --normalize fixed"},
    "std": {"type": _floats, "metavar": "S1,S2,S3", "help": "for --normalize fixed"},
    "optimizer": {"choices": ["sgd", "adam"]},
    "epochs": {"type": int, "help": "count the budget in epochs (milestones then in epochs)"},
    "init_from": {
        "metavar": "CKPT",
        "help": "state_dict file, run:<run_id> or "
        "torchvision:IMAGENET1K_V1; the final layer is new",
    },
    "freeze": {"choices": ["none", "backbone"], "help": "backbone: train the final layer only"},
    "resize": {"type": int, "help": "shorter image side, at decode time (ImageFolder data)"},
    "crop": {"type": int, "help": "centre crop after --resize, at decode time"},
    "data_id": {"help": "a name for --data when it has no canonical identity (ImageFolder)"},
    "storage": {"choices": ["device", "host"], "help": "host: stream batches through a DataLoader"},
    "workers": {"type": int, "help": "DataLoader workers (with --storage host, or streamed)"},
    "stream": {"help": "streamed data's protocol: imagenet-paper or imagenet-torchvision"},
    "classes": {"type": int, "help": "streamed data: a class subset of this many classes"},
    "train_per_class": {"type": int, "help": "streamed data: training images per class"},
    "val_per_class": {"type": int, "help": "streamed data: val images per class"},
    "decode": {"choices": list(DECODES), "help": "streamed data: gpu decodes JPEGs by nvJPEG"},
    "step": {
        "choices": list(STEPS),
        "help": "graph: replay the training step as one CUDA graph; auto (default): graph on a "
        "GPU, eager elsewhere",
    },
}


BOTH = {"off": (False,), "on": (True,), "both": (False, True)}
