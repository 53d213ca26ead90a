"""Weights from elsewhere, as weights of our architecture: the one place a weights name becomes
a local file and a state_dict (`resolve`), for `ablate evaluate` (--weights) and for training's
init_from (ablations.weights.finetune). One small converter per format:

    run:<run_id>             our own run's model.pt (its variant.json and config say the rest)
    torchvision:<name|file>  torchvision's ImageNet weights (see .torchvision), never downloaded
    akamaster:<file>         akamaster/pytorch_resnet_cifar10's .th files (see .akamaster),
                             converted by permuting channels
    <file>                   an akamaster file (recognised by its layout), or a state_dict of
                             our architecture (also a resumable checkpoint.pt of this suite)

`resolve` returns the state_dict for `ablations.models.ResNet(variant)` and a `Weights` record:
what a results row says about the checkpoint (its file name and sha256, never the machine's
path) and how images must be prepared for it. `load_weights` is `ablate evaluate`'s resolve: it
refuses a bare state_dict file, which says nothing of how its images were prepared.
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
RUN = Preprocessing(name="run")
UNKNOWN = Preprocessing(name="unknown")  # a bare state_dict file says nothing of its images


@dataclass(frozen=True, kw_only=True)
class Weights:
    source: str  # as results record it: "run:<id>", "torchvision:IMAGENET1K_V1", a file name
    format: str  # run, torchvision, akamaster or file (a state_dict of our architecture)
    sha256: str
    preprocessing: Preprocessing
    run_dir: Path | None = None  # for run:<id>


@dataclass(frozen=True)
class WeightsName:
    """A weights name taken apart, before any file is read."""

    name: str
    format: str  # as Weights.format; "file": a path, whose contents tell akamaster from ours
    ref: str  # the run id, torchvision's weights name or file, or the path

    def run_dir(self, runs_dir: Path) -> Path | None:
        """Where a run:<run_id>'s record is (None for other formats)."""
        return runs_dir / self.ref if self.format == "run" else None


def parse(name: str) -> WeightsName:
    """`name` by its prefix: run:, torchvision:, akamaster:, or none (a file)."""
    for fmt in ("run", "torchvision", "akamaster"):
        if name.startswith(f"{fmt}:"):
            return WeightsName(name, fmt, name.removeprefix(f"{fmt}:"))
    return WeightsName(name, "file", name)


def weights_file(name: str, *, variant: Variant, runs_dir: Path) -> Path:
    """The file behind `name`, checked to exist (and, for torchvision's, to fit `variant`):
    cheap, so a caller can refuse a bad name before it reads any data."""
    return _locate(parse(name), variant=variant, runs_dir=runs_dir)


def resolve(name: str, *, variant: Variant, runs_dir: Path) -> tuple[dict[str, Tensor], Weights]:
    """The state_dict `name` holds, in our `variant`'s keys and channel order, and its record."""
    named = parse(name)
    path = _locate(named, variant=variant, runs_dir=runs_dir)
    saved = _load(path)
    if named.format == "run":
        return _state_dict(saved, path), _record(name, "run", path, RUN, run_dir=path.parent)
    if named.format == "torchvision":
        source = name if path.name not in name else f"torchvision:{path.name}"
        return _state_dict(saved, path), _record(source, "torchvision", path, TORCHVISION)
    if akamaster.is_akamaster(saved):
        state = akamaster.convert(saved, variant)
        return state, _record(path.name, "akamaster", path, AKAMASTER)
    if named.format == "akamaster":
        raise _not_akamaster(path)
    return _state_dict(saved, path), _record(path.name, "file", path, UNKNOWN)


def load_weights(
    name: str, *, variant: Variant, runs_dir: Path
) -> tuple[dict[str, Tensor], Weights]:
    """`resolve` for evaluation: only weights whose preprocessing is known (a bare state_dict
    file of ours is evaluated as its run, run:<run_id>)."""
    state, weights = resolve(name, variant=variant, runs_dir=runs_dir)
    if weights.format == "file":
        raise _not_akamaster(Path(weights.source))
    return state, weights


def _locate(named: WeightsName, *, variant: Variant, runs_dir: Path) -> Path:
    run = named.run_dir(runs_dir)
    if run is not None:
        path = rundir.weights(run)
        if not path.is_file():
            raise AblationsError(
                f"{named.name}: {path} does not exist; train that run (a record committed "
                "without weights must be moved aside and trained again) or point at the "
                "results folder that holds it"
            )
        return path
    if named.format == "torchvision":
        return torchvision.locate(variant, named.ref)
    path = Path(named.ref).expanduser()
    if not path.is_file():
        raise AblationsError(
            f"{named.name}: no such file; pass run:<run_id>, torchvision:<name|file>, an "
            "akamaster .th file or a state_dict file"
        )
    return path


def _not_akamaster(path: Path) -> AblationsError:
    return AblationsError(
        f"{path.name} is not an akamaster checkpoint (a dict with a 'state_dict' of "
        "'module.' keys and a 'linear' head); for torchvision weights pass "
        "torchvision:<file>, for our runs run:<run_id>"
    )


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
