"""Weights from elsewhere as weights of our architecture, for `ablate evaluate` and a run's
init_from: run:<run_id> (our run's model.pt), torchvision:<name|file> (never downloaded),
akamaster:<file> (channels permuted), or a file: akamaster's (told by its layout) or a
state_dict of ours (a checkpoint.pt too)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ablations import rundir
from ablations.registry import AblationsError, Variant
from ablations.weights import akamaster, torchvision

FORMATS = ("run", "torchvision", "akamaster")  # the prefixes; none: a file


@dataclass(frozen=True, kw_only=True)
class Preprocessing:
    """How evaluation images are prepared: decode-time resize/crop, and the normaliser. "run"
    means the run's own preparation (its config: input size, normaliser fitted on its split)."""

    name: str  # recorded in every row
    resize: int | None = None
    crop: int | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


# akamaster's trainer.py: ToTensor + Normalize(ImageNet mean/std) on 32x32 CIFAR-10.
AKAMASTER = Preprocessing(name="imagenet-mean-std@32", mean=torchvision.MEAN, std=torchvision.STD)
TORCHVISION = Preprocessing(
    name=f"resize{torchvision.RESIZE}-crop{torchvision.CROP}-imagenet-mean-std",
    resize=torchvision.RESIZE, crop=torchvision.CROP, mean=torchvision.MEAN, std=torchvision.STD,
)  # fmt: skip
PREPROCESSING = {
    "run": Preprocessing(name="run"),
    "torchvision": TORCHVISION,
    "akamaster": AKAMASTER,
    "file": Preprocessing(name="unknown"),  # a bare state_dict file says nothing of its images
}


@dataclass(frozen=True, kw_only=True)
class Weights:
    """What a results row says of a checkpoint (never the machine's path)."""

    source: str  # "run:<id>", "torchvision:IMAGENET1K_V1", a file name
    format: str  # run, torchvision, akamaster or file (a state_dict of our architecture)
    sha256: str


def parse(name: str) -> tuple[str, str]:
    """(format, reference): the run id, torchvision's weights name or file, or the path."""
    for fmt in FORMATS:
        if name.startswith(f"{fmt}:"):
            return fmt, name.removeprefix(f"{fmt}:")
    return "file", name


def weights_file(name: str, *, variant: Variant, runs_dir: Path) -> Path:
    """The file behind `name`, checked to exist (and, for torchvision's, to fit `variant`):
    cheap, so a caller can refuse a bad name before it reads any data."""
    fmt, ref = parse(name)
    if fmt == "torchvision":
        return torchvision.locate(variant, ref)
    path = rundir.weights(runs_dir / ref) if fmt == "run" else Path(ref).expanduser()
    if path.is_file():
        return path
    if fmt == "run":
        raise AblationsError(
            f"{name}: {path} does not exist; train that run (a record committed without weights "
            "must be moved aside and trained again) or point at the results folder that holds it"
        )
    raise AblationsError(
        f"{name}: no such file; pass run:<run_id>, torchvision:<name|file>, an akamaster .th "
        "file or a state_dict file"
    )


def resolve(name: str, *, variant: Variant, runs_dir: Path) -> tuple[dict[str, Tensor], Weights]:
    """The state_dict `name` holds, in our `variant`'s keys and channel order, and its record."""
    fmt, _ = parse(name)
    path = weights_file(name, variant=variant, runs_dir=runs_dir)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a bad file
        raise AblationsError(
            f"{path.name} is not a loadable checkpoint ({type(err).__name__}); pass a file "
            "saved with torch.save"
        ) from None
    if akamaster.is_akamaster(saved) and fmt in ("akamaster", "file"):
        fmt, state = "akamaster", akamaster.convert(saved, variant)
    elif fmt == "akamaster":
        raise _not_akamaster(path)
    else:
        state = _state_dict(saved, path)
    if fmt == "run" or (fmt == "torchvision" and path.name not in name):
        source = name  # a run id, or torchvision's weights name
    else:  # a file's name, never the machine's path
        source = f"torchvision:{path.name}" if fmt == "torchvision" else path.name
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return state, Weights(source=source, format=fmt, sha256=sha256)


def load_weights(
    name: str, *, variant: Variant, runs_dir: Path
) -> tuple[dict[str, Tensor], Weights]:
    """`resolve` for evaluation: only weights whose preprocessing is known (a bare state_dict
    file of ours is evaluated as its run, run:<run_id>)."""
    state, weights = resolve(name, variant=variant, runs_dir=runs_dir)
    if weights.format == "file":
        raise _not_akamaster(Path(weights.source))
    return state, weights


def _not_akamaster(path: Path) -> AblationsError:
    return AblationsError(
        f"{path.name} is not an akamaster checkpoint (a dict with a 'state_dict' of "
        "'module.' keys and a 'linear' head); for torchvision weights pass "
        "torchvision:<file>, for our runs run:<run_id>"
    )


def _state_dict(saved: Any, path: Path) -> dict[str, Tensor]:
    if isinstance(saved, dict) and isinstance(saved.get("model"), dict):
        saved = saved["model"]  # a resumable checkpoint.pt of this suite
    if not isinstance(saved, dict) or not all(isinstance(v, Tensor) for v in saved.values()):
        raise AblationsError(f"{path.name} holds no state_dict; pass a file saved from one")
    return dict(saved)
