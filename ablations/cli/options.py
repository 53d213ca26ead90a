"""Option vocabularies read by both the parser and the subcommands, kept here so that the
subcommands never import the parser (which imports them): `ablate train`'s overrides of the
profile (the parser adds them, `cmd_train` collects them) and `ablate bench`'s off / on / both."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from ablations.config import DECODES, PRECISIONS, STEPS


def comma_separated(convert: Callable[[str], Any], what: str) -> Callable[[str], tuple[Any, ...]]:
    """An argparse type: "a,b,c" -> (convert(a), convert(b), convert(c))."""

    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(convert(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what}, got {text!r}"
            ) from None

    return parse


def at_least(minimum: int | float, convert: Callable[[str], Any] = int) -> Callable[[str], Any]:
    """An argparse type: a number no smaller than `minimum`. Every count option takes one, so
    0 or -1 is a usage error rather than a value that reads as "unset" (`args.steps or 10`)."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    parse.__name__ = f"number >= {minimum}"  # what argparse names in its messages
    parse.minimum = minimum  # type: ignore[attr-defined]  # for the test that tries minimum - 1
    return parse


def one_of(choices: Iterable[str]) -> Callable[[str], str]:
    """A converter for `comma_separated`: the word itself, if it is one of `choices`."""
    allowed = tuple(choices)

    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(text)
        return text

    return parse


POSITIVE = at_least(1)
NON_NEGATIVE = at_least(0)
NON_NEGATIVE_FLOAT = at_least(0, float)
_floats = comma_separated(float, "numbers")
_milestones = comma_separated(POSITIVE, "iterations (or epochs, with --epochs)")


# `ablate train` options that override the profile; absent ones stay out of the namespace.
TRAIN_OVERRIDES: dict[str, dict[str, Any]] = {
    "iterations": {"type": POSITIVE},
    "batch_size": {"type": POSITIVE},
    "lr": {"type": NON_NEGATIVE_FLOAT},
    "lr_milestones": {"type": _milestones, "metavar": "A,B,..."},
    "lr_gamma": {"type": NON_NEGATIVE_FLOAT},
    "momentum": {"type": NON_NEGATIVE_FLOAT},
    "weight_decay": {"type": NON_NEGATIVE_FLOAT},
    "precision": {"choices": list(PRECISIONS)},
    "channels_last": {"action": argparse.BooleanOptionalAction},
    "compile": {"action": argparse.BooleanOptionalAction},
    "eval_every": {"type": POSITIVE},
    "input_size": {"type": POSITIVE},
    "train_size": {"type": POSITIVE},
    "val_size": {"type": NON_NEGATIVE},
    "augment": {"action": argparse.BooleanOptionalAction},
    "normalize": {"choices": ["pixel-mean", "channel", "fixed"]},
    "mean": {"type": _floats, "metavar": "M1,M2,M3", "help": "for --normalize fixed"},
    "std": {"type": _floats, "metavar": "S1,S2,S3", "help": "for --normalize fixed"},
    "optimizer": {"choices": ["sgd", "adam"]},
    "epochs": {"type": POSITIVE, "help": "count the budget in epochs (milestones then in epochs)"},
    "init_from": {
        "metavar": "CKPT",
        "help": "state_dict file, run:<run_id> or "
        "torchvision:IMAGENET1K_V1; the final layer is new",
    },
    "freeze": {"choices": ["none", "backbone"], "help": "backbone: train the final layer only"},
    "resize": {"type": POSITIVE, "help": "shorter image side, at decode time (ImageFolder data)"},
    "crop": {"type": POSITIVE, "help": "centre crop after --resize, at decode time"},
    "data_id": {"help": "a name for --data when it has no canonical identity (ImageFolder)"},
    "storage": {"choices": ["device", "host"], "help": "host: stream batches through a DataLoader"},
    "workers": {
        "type": NON_NEGATIVE,
        "help": "DataLoader workers (with --storage host, or streamed)",
    },
    "stream": {"help": "streamed data's protocol: imagenet-paper or imagenet-torchvision"},
    "classes": {"type": POSITIVE, "help": "streamed data: a class subset of this many classes"},
    "train_per_class": {"type": POSITIVE, "help": "streamed data: training images per class"},
    "val_per_class": {"type": POSITIVE, "help": "streamed data: val images per class"},
    "decode": {"choices": list(DECODES), "help": "streamed data: gpu decodes JPEGs by nvJPEG"},
    "step": {
        "choices": list(STEPS),
        "help": "graph: replay the training step as one CUDA graph; auto (default): graph on a "
        "GPU, eager elsewhere",
    },
}


BOTH = {"off": (False,), "on": (True,), "both": (False, True)}
