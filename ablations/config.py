"""The resolved configuration of a training run: a frozen, printable, hashable value.

A run is a pure function of its config. `key` hashes every field that can change the result, so a
finished run is recognised wherever it is found. Field defaults are the paper's CIFAR-10 protocol.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from ablations.profiles import default_profile, get_profile
from ablations.registry import AblationsError, get_variant

if TYPE_CHECKING:
    import torch

# The values of the config's fields; the stages below import them from here.
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")  # "tf32": fp32 storage, TF32 tensor-core math
# "graph" replays the training step as one CUDA graph, "eager" launches each kernel from Python;
# "auto" is the fastest correct one on the device (ablations.train.steps.resolve_step).
STEPS = ("auto", "eager", "graph")
STREAMS = ("imagenet-paper", "imagenet-torchvision")  # streamed data's protocols
EVAL_CROPS = ("center", "ten-crop", "multi-scale")  # test protocols, the curves' crop first

DECODES = ("cpu", "gpu")
# Datasets always read as a stream of files, never decoded whole; their --data is an ImageNet
# layout. An ImageFolder tree streams too when its run names a `stream`.
STREAM_DATASETS = ("imagenet",)
STREAMABLE = (*STREAM_DATASETS, "imagefolder")
# The fields that take one of a few words, and those words.
CHOICES: dict[str, tuple[str, ...]] = {
    "precision": PRECISIONS,
    "optimizer": ("sgd", "adam"),
    "storage": ("device", "host"),
    "normalize": ("pixel-mean", "channel", "fixed"),
    "eval_split": ("val", "test"),
    "freeze": ("none", "backbone"),
    "step": STEPS,
    "decode": DECODES,
}
# Knobs that change speed, not results. A CUDA graph replays the eager step's very kernels in
# order (a GPU test checks it); `compile` is not here: its fusions change the arithmetic.
EXECUTION_ONLY = ("storage", "workers", "eval_batch_size", "step")
# The key hashes only fields that differ from their defaults, so adding a field whose default
# keeps the old behaviour leaves every stored run's key valid. Changing a default changes the
# meaning of old keys: bump KEY_VERSION with it (tests pin the defaults to catch this).
KEY_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    variant: str
    dataset: str = "cifar10"
    profile: str = "paper"
    seed: int = 0
    # Data: the paper holds out 5k of the 50k training images for validation.
    val_size: int = 5_000
    split_seed: int = 0  # the same split for every run, whatever its seed
    train_size: int | None = None  # a subset of the training split, for reduced budgets
    test_size: int | None = None  # a subset of the test set (smoke only)
    input_size: int | None = None  # None: the dataset's own size
    augment: bool = True  # pad (4 px at 32x32) + random crop + horizontal flip
    normalize: str = "pixel-mean"  # the paper subtracts the per-pixel mean
    mean: tuple[float, ...] = ()  # per channel, for normalize="fixed" (tutorials' constants)
    std: tuple[float, ...] = ()
    # Decode-time preparation of images of any size (an ImageFolder for fine-tuning): shorter
    # side resized to `resize`, then a centre crop of `crop` (torchvision's Resize, CenterCrop).
    resize: int | None = None
    crop: int | None = None
    # A name for data that has no canonical identity (dataset "imagefolder"), so that runs on
    # different folders get different keys; `ablate train` uses the folder's name by default.
    data_id: str | None = None
    # Optimisation (section 4.2).
    iterations: int = 64_000
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_milestones: tuple[int, ...] = (32_000, 48_000)
    lr_gamma: float = 0.1
    # Tutorials count in epochs: when set, the run lasts `epochs` passes over the training split
    # (the last partial batch dropped), `lr_milestones` count epochs, and evaluation is once per
    # epoch; `iterations` and `eval_every` are then unused.
    epochs: int | None = None
    # The split evaluated during training: "val" (held out of the training set), or "test", as
    # tutorials do (their best-so-far accuracy then selects on the test set, and says so).
    eval_split: str = "val"
    # Transfer learning: init from a state_dict file, "torchvision:<WEIGHTS>" or "run:<run_id>",
    # always with a new final layer; freeze="backbone" trains only that layer.
    init_from: str | None = None
    freeze: str = "none"
    recipe: str | None = None  # the recipe (ablations.recipes) and arm this run belongs to
    arm: str | None = None
    warmup_lr: float | None = None  # set for deep nets by the profile's warm-up rule
    warmup_until_error: float = 0.8
    # BatchNorm's batch: None is the whole batch (one process, or --sync-bn); a number is
    # per-rank BN under torchrun, where the result depends on the world size.
    bn_batch: int | None = None
    # Execution. The kind of device is part of the key: other kernels round otherwise.
    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    eval_every: int = 500
    eval_batch_size: int = 1_000
    storage: str = "device"  # "device": the whole split on the device; "host": a DataLoader
    workers: int | None = 0  # None: one per core (the streaming loader's default)
    step: str = "auto"  # "auto" | "eager" | "graph" (ablations.train.steps.resolve_step)
    # Streamed (ImageNet-size) data: `stream` names the protocol's augmentation and evaluation
    # crops (one of STREAMS); None is the in-memory path. A class subset
    # (`classes` drawn with split_seed, up to `*_per_class` images each) makes a short budget;
    # `input_size` then scales the recipe's crop and resizes (smoke tests only). `decode` "gpu"
    # decodes JPEG batches with nvJPEG: its pixels differ slightly from libjpeg's, so it is part
    # of the key.
    stream: str | None = None
    classes: int | None = None
    train_per_class: int | None = None
    val_per_class: int | None = None
    decode: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("lr_milestones", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = _problems(self)
        if problems:
            raise AblationsError("invalid training config: " + "; ".join(problems))

    @property
    def key(self) -> str:
        """Hash of the fields that can change the result and differ from their defaults."""
        defaults = {f.name: f.default for f in fields(self)}
        spec = {
            k: v for k, v in asdict(self).items()
            if k not in EXECUTION_ONLY and v != defaults[k]
        }  # fmt: skip
        payload = json.dumps({"v": KEY_VERSION, **spec}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:8]

    @property
    def run_id(self) -> str:
        what = f"{self.variant}_{self.dataset}" if self.recipe is None else self.recipe
        what += f"-{self.arm}" if self.arm else ""
        return f"{what}_{self.profile}_s{self.seed}_{self.key}"

    def schedule(self, steps_per_epoch: int) -> tuple[int, tuple[int, ...], int]:
        """(iterations, lr milestones in iterations, evaluate every) for a training split of
        `steps_per_epoch` batches."""
        if self.epochs is None:
            return self.iterations, self.lr_milestones, self.eval_every
        milestones = tuple(m * steps_per_epoch for m in self.lr_milestones)
        return self.epochs * steps_per_epoch, milestones, steps_per_epoch

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})


def _problems(c: TrainConfig) -> list[str]:
    problems = [
        f"{name} {getattr(c, name)!r} is not one of {', '.join(allowed)}"
        for name, allowed in CHOICES.items()
        if getattr(c, name) not in allowed
    ]
    sizes = ("iterations", "batch_size", "eval_every", "eval_batch_size")
    problems += [f"{name} must be >= 1" for name in sizes if getattr(c, name) < 1]
    if list(c.lr_milestones) != sorted(c.lr_milestones) or any(m < 1 for m in c.lr_milestones):
        problems.append(f"lr_milestones must be increasing positive iterations: {c.lr_milestones}")
    if c.lr <= 0 or c.weight_decay < 0:
        problems.append("lr must be > 0 and weight_decay >= 0")
    if (c.normalize == "fixed") != bool(c.mean) or len(c.mean) != len(c.std):
        problems.append('normalize="fixed" needs mean and std, one value per channel')
    if any(v <= 0 for v in c.std):
        problems.append("std values must be > 0")
    if c.epochs is not None and c.epochs < 1:
        problems.append("epochs must be >= 1")
    if c.eval_split == "val" and c.val_size < 1:
        problems.append('val_size 0 leaves nothing to evaluate on: use eval_split="test"')
    if c.freeze != "none" and c.init_from is None:
        problems.append("freezing the backbone needs init_from (a checkpoint to start from)")
    if c.bn_batch is not None and (c.bn_batch < 1 or c.batch_size % c.bn_batch):
        problems.append(f"bn_batch {c.bn_batch} must divide batch_size {c.batch_size}")
    if c.device not in ("cpu", "cuda") and device_type(c.device) != c.device:  # no torch needed
        problems.append(f"device {c.device!r} must be a device type such as cpu or cuda")
    problems += _stream_problems(c)
    optional = ("resize", "crop", "classes", "train_per_class", "val_per_class")
    values = {n: getattr(c, n) for n in optional}
    return problems + [f"{n} must be >= 1" for n, v in values.items() if v is not None and v < 1]


def _stream_problems(c: TrainConfig) -> list[str]:
    if c.dataset in STREAM_DATASETS and c.stream not in STREAMS:
        return [f"dataset {c.dataset} is streamed: use an imagenet-* profile, or --stream "
                f"{' or '.join(STREAMS)}"]  # fmt: skip
    if c.stream is not None:
        if c.stream not in STREAMS:
            return [f"stream {c.stream!r} is not one of {', '.join(STREAMS)}"]
        if c.dataset not in STREAMABLE:
            return [f"stream {c.stream!r} needs a dataset read from files "
                    f"({', '.join(STREAMABLE)})"]  # fmt: skip
        if c.eval_split != "val":
            return [f"a streamed {c.dataset} run is evaluated on its val split (eval_split "
                    "must be val)"]  # fmt: skip
    return []


def device_type(device: str | torch.device | None = None) -> str:
    """The kind of device a config is resolved for: "auto"/None -> cuda when torch sees a GPU,
    else cpu; "cuda:1" -> cuda. Needs no GPU (a run can be planned for one elsewhere)."""
    import torch  # only when a device is resolved: the report needs none

    if device is None or str(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return torch.device(device).type
    except RuntimeError:
        raise AblationsError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None


def resolve_precision(precision: str, device: str) -> str:
    """ "auto": bf16 autocast on a GPU (its tensor cores), fp32 elsewhere."""
    if precision != "auto":
        return precision
    return "bf16" if device == "cuda" else "fp32"


def check_device(config: TrainConfig, device: torch.device) -> None:
    """A run trains on the kind of device its config (and key) was resolved for."""
    if device.type != config.device:
        raise AblationsError(
            f"{config.run_id} is a {config.device} run (its key says so) but would train on "
            f"{device.type}; resolve the config for {device.type} or use --device {config.device}"
        )


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """ "auto"/None -> the first GPU when there is one, else the CPU. Checks a GPU's index but
    leaves the current GPU as it is (making it current costs a CUDA context there)."""
    import torch  # only when a device is resolved: the report needs none

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved, count = torch.device(device), torch.cuda.device_count()
    if resolved.type == "cuda" and not count:
        raise AblationsError("--device cuda asked for, but torch sees no GPU; use --device cpu")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= count:
        raise AblationsError(f"no {resolved}: torch sees {count} GPU(s), cuda:0 and on")
    return resolved


_PAPER = TrainConfig(variant="")


def resolve_config(
    variant: str,
    *,
    profile: str | None = None,
    dataset: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> TrainConfig:
    """Paper defaults <- the profile <- its warm-up rule for deep nets <- explicit overrides.

    A changed `iterations` without explicit `lr_milestones` scales the profile's milestones, so
    the schedule keeps its shape; "auto" precision is bf16 on a GPU and fp32 on the CPU. The
    config is resolved for `device`'s kind, which is part of its key. `dataset` defaults to
    the profile's (an ImageNet profile's is imagenet), else cifar10.
    """
    name = profile or default_profile()
    prof = get_profile(name)
    v = get_variant(variant)  # fails early, with the closest names, on a typo
    unknown = sorted(set(overrides) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise AblationsError(f"unknown training option {unknown[0]!r}")
    settings: dict[str, Any] = dict(prof.settings)
    dataset = dataset or settings.get("dataset", "cifar10")
    settings.pop("dataset", None)
    if v.name in prof.warmup:  # the paper's warmed-up nets, named as data
        settings["warmup_lr"] = prof.warmup_lr
    settings.update(overrides)
    if "iterations" in overrides and "lr_milestones" not in overrides:
        planned = prof.settings.get("iterations", _PAPER.iterations)
        milestones = prof.settings.get("lr_milestones", _PAPER.lr_milestones)
        scale = overrides["iterations"] / planned
        settings["lr_milestones"] = tuple(max(1, round(m * scale)) for m in milestones)
    kind = device_type(device)
    settings["precision"] = resolve_precision(settings.get("precision", "fp32"), kind)
    return TrainConfig(
        variant=v.name, dataset=dataset, profile=name, seed=seed, device=kind, **settings
    )
