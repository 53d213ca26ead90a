"""What the parser and the subcommands share: argparse types, common options, `say`. The
subcommands never import the parser (which imports them)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ablations.config import DECODES, PRECISIONS, STEPS

RESULTS = Path("results")
DURATION = re.compile(r"(?P<number>\d+(\.\d*)?|\.\d+)(?P<unit>[smh]?)")
SECONDS = {"s": 1, "m": 60, "h": 3600, "": 60}


def comma_separated(
    convert: Callable[[str], Any], what: str, *, choices: Iterable[str] | None = None
) -> Callable[[str], tuple[Any, ...]]:
    """An argparse type: "a,b,c" -> (convert(a), convert(b), convert(c)), each in `choices`."""
    allowed = None if choices is None else set(choices)

    def parse(text: str) -> tuple[Any, ...]:
        try:
            values = tuple(convert(v) for v in text.split(",") if v.strip())
            if allowed is not None and not allowed.issuperset(values):
                raise ValueError(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what}, got {text!r}"
            ) from None
        return values

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


def duration(text: str) -> float:
    """An argparse type: 90s, 45m, 1.5h, or a plain number of minutes, in seconds."""
    match = DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 90s, 45m, 1.5h or a number of minutes, got {text!r}"
        )
    return float(match["number"]) * SECONDS[match["unit"]]


def say(line: str) -> None:
    """A line of progress or advice, on stderr (stdout holds the command's output)."""
    print(line, file=sys.stderr, flush=True)


POSITIVE = at_least(1)
NON_NEGATIVE = at_least(0)
NON_NEGATIVE_FLOAT = at_least(0, float)
_floats = comma_separated(float, "numbers")
_milestones = comma_separated(POSITIVE, "iterations (or epochs, with --epochs)")


def add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patterns", nargs="*", metavar="GLOB", help="variant names or globs")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="drop matches (repeatable)"
    )


def add_time_limit(parser: argparse._ActionsContainer, what: str) -> None:
    parser.add_argument(
        "--time-limit", type=duration, metavar="DURATION",
        help=f"{what}; then exit 0, and the same command resumes (90s, 45m, 1.5h, or minutes)",
    )  # fmt: skip


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
    "init_from": {"metavar": "CKPT", "help": "a state_dict file, run:ID or torchvision:WEIGHTS"},
    "freeze": {"choices": ["none", "backbone"], "help": "backbone: train the final layer only"},
    "resize": {"type": POSITIVE, "help": "shorter image side, at decode time (ImageFolder data)"},
    "crop": {"type": POSITIVE, "help": "centre crop after --resize, at decode time"},
    "data_id": {"help": "a name for --data when it has no canonical identity (ImageFolder)"},
    "storage": {"choices": ["device", "host"], "help": "host: stream batches through a DataLoader"},
    "workers": {"type": NON_NEGATIVE, "help": "DataLoader workers (--storage host, or streamed)"},
    "stream": {"help": "streamed data's protocol: imagenet-paper or imagenet-torchvision"},
    "classes": {"type": POSITIVE, "help": "streamed data: a class subset of this many classes"},
    "train_per_class": {"type": POSITIVE, "help": "streamed data: training images per class"},
    "val_per_class": {"type": POSITIVE, "help": "streamed data: val images per class"},
    "decode": {"choices": list(DECODES), "help": "streamed data: gpu decodes JPEGs by nvJPEG"},
    "step": {"choices": list(STEPS), "help": "graph: one CUDA graph; auto: graph on a GPU"},
}
