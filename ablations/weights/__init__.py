"""Checkpoints trained elsewhere, as weights of our architecture, with the preprocessing they
were trained with. One small converter per format:

    run:<run_id>             our own run's model.pt (its variant.json and config say the rest)
    torchvision:<name|file>  torchvision's ImageNet weights (see .torchvision), never downloaded
    akamaster:<file>, or a   akamaster/pytorch_resnet_cifar10's .th files (see .akamaster),
    .th file                 converted by permuting channels

`load_weights` returns the state_dict for `ablations.models.ResNet(variant)` (loaded strictly
by the caller) and a `Weights` record: what a results row says about the checkpoint (its file
name and sha256, never the machine's path) and how images must be prepared for it.
"""

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

FORMATS = ("run", "torchvision", "akamaster")


@dataclass(frozen=True, kw_only=True)
class Preprocessing:
    """How evaluation images are prepared: decode-time resize/crop, and the normaliser. "run"
    means the run's own preparation (its config: input size, normaliser fitted on its split)."""

    name: str  # recorded in every row
    resize: int | None = None
    crop: int | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


AKAMASTER = Preprocessing(
    name="imagenet-mean-std@32", mean=akamaster.MEAN, std=akamaster.STD
)  # their trainer.py: ToTensor + Normalize(ImageNet mean/std) on 32x32 CIFAR-10
TORCHVISION = Preprocessing(
    name=f"resize{torchvision.RESIZE}-crop{torchvision.CROP}-imagenet-mean-std",
    resize=torchvision.RESIZE, crop=torchvision.CROP, mean=torchvision.MEAN, std=torchvision.STD,
)  # fmt: skip
RUN = Preprocessing(name="run")


@dataclass(frozen=True, kw_only=True)
class Weights:
    source: str  # as results record it: "run:<id>", "torchvision:IMAGENET1K_V1", a file name
    format: str  # one of FORMATS
    sha256: str
    preprocessing: Preprocessing
    run_dir: Path | None = None  # for run:<id>


def weights_file(source: str, *, variant: Variant, runs_dir: Path) -> Path:
    """The file behind `source`, checked to exist (and, for torchvision's, to fit `variant`):
    cheap, so a caller can refuse a bad --weights before it reads any data."""
    if source.startswith("run:"):
        path = rundir.weights(runs_dir / source.removeprefix("run:"))
        if not path.is_file():
            raise AblationsError(
                f"{source}: {path} does not exist; train that run (a record committed without "
                "weights must be trained again) or pass --results where it is"
            )
        return path
    if source.startswith("torchvision:"):
        return torchvision.locate(variant, source.removeprefix("torchvision:"))
    path = Path(source.removeprefix("akamaster:")).expanduser()
    if not path.is_file():
        raise AblationsError(
            f"--weights {source}: no such file; pass run:<run_id>, torchvision:<name|file> or "
            "an akamaster .th file"
        )
    return path


def load_weights(
    source: str, *, variant: Variant, runs_dir: Path
) -> tuple[dict[str, Tensor], Weights]:
    """The state_dict of `source` for our `variant`, and its record."""
    path = weights_file(source, variant=variant, runs_dir=runs_dir)
    if source.startswith("run:"):
        state = _state_dict(_load(path), path)
        return state, _record(source, "run", path, RUN, run_dir=path.parent)
    if source.startswith("torchvision:"):
        state = _state_dict(_load(path), path)
        name = source if path.name not in source else f"torchvision:{path.name}"
        return state, _record(name, "torchvision", path, TORCHVISION)
    saved = _load(path)
    if not akamaster.is_akamaster(saved):
        raise AblationsError(
            f"{path.name} is not an akamaster checkpoint (a dict with a 'state_dict' of "
            "'module.' keys and a 'linear' head); for torchvision weights pass "
            "torchvision:<file>, for our runs run:<run_id>"
        )
    state = akamaster.convert(saved, variant)
    return state, _record(path.name, "akamaster", path, AKAMASTER)


def _record(
    source: str, fmt: str, path: Path, prep: Preprocessing, *, run_dir: Path | None = None
) -> Weights:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Weights(source=source, format=fmt, sha256=digest, preprocessing=prep, run_dir=run_dir)


def _load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a bad file
        raise AblationsError(
            f"{path.name} is not a loadable checkpoint ({type(err).__name__}); pass a file "
            "saved with torch.save"
        ) from None


def _state_dict(saved: Any, path: Path) -> dict[str, Tensor]:
    if isinstance(saved, dict) and isinstance(saved.get("model"), dict):
        saved = saved["model"]  # a resumable checkpoint.pt of this suite
    if not isinstance(saved, dict) or not all(isinstance(v, Tensor) for v in saved.values()):
        raise AblationsError(f"{path.name} holds no state_dict; pass a file saved from one")
    return dict(saved)
