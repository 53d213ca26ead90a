"""The variant registry: an architecture is a frozen dataclass of axes, registered under a name.

Every field of `Variant` is a plain value (str, int, bool, or a tuple of ints) so that a variant
turns into one row of a results table with the same words as column names. Validation happens at
construction, so an invalid spec fails where it is written, not when a model is built.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

Family = Literal["cifar", "imagenet"]
Block = Literal["basic", "bottleneck"]
Shortcut = Literal["a", "b", "c", "none"]
Stem = Literal["k3", "k7"]
StrideAt = Literal["3x3", "1x1"]

FAMILIES: tuple[str, ...] = ("cifar", "imagenet")
BLOCKS: tuple[str, ...] = ("basic", "bottleneck")
SHORTCUTS: tuple[str, ...] = ("a", "b", "c")  # residual nets; plain nets have shortcut="none"
STEMS: tuple[str, ...] = ("k3", "k7")
STRIDE_AT: tuple[str, ...] = ("3x3", "1x1")

# Weighted layers per block; depth = stem conv + blocks * this + the final linear layer.
LAYERS_PER_BLOCK = {"basic": 2, "bottleneck": 3}
EXPANSION = {"basic": 1, "bottleneck": 4}


class AblationsError(Exception):
    """An error the user can fix; the CLI prints its message as one line and exits non-zero."""


class UnknownVariantError(AblationsError, LookupError):
    """A name that is neither registered nor an alias."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0])


class InvalidVariantError(AblationsError, ValueError):
    """A spec that breaks the rules of its axes, or a duplicate registration."""


def cifar_stage_blocks(depth: int) -> tuple[int, int, int]:
    """Blocks per stage of a CIFAR net of `depth` = 6n+2 layers: (n, n, n)."""
    n, rest = divmod(depth - 2, 6)
    if rest or n < 1:
        raise InvalidVariantError(
            f"CIFAR depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, 1202, ...); "
            f"got {depth}"
        )
    return (n, n, n)


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One architecture: the axes the paper ablates, plus what the model's input and head are."""

    name: str
    family: Family  # "cifar": 3 stages of 6n+2 basic layers; "imagenet": 4 stages, 224x224 input
    depth: int  # weighted layers: stem conv + block convs + final linear (projections not counted)
    block: Block
    residual: bool  # False = "plain" net: the same layers with no shortcut at all
    shortcut: Shortcut  # a: zero-pad identity, b: projection where shape changes, c: always
    stem: Stem  # k7: 7x7/s2 conv + 3x3/s2 maxpool; k3: 3x3/s1 conv, no pool
    width: int  # channels of the first stage; stage i has width * 2**i (times 4 in bottlenecks)
    stage_blocks: tuple[int, ...]
    stride_at: StrideAt = "3x3"  # bottleneck: stride on the 3x3 conv (v1.5) or the first 1x1 (v1)
    input_size: int  # the square input the variant is defined on; params/MACs are quoted there
    in_channels: int = 3
    num_classes: int
    # Details where tutorial ResNets differ from the paper's (e.g. d2l's textbook ResNet-18).
    conv_bias: bool = False  # biases in every conv (redundant before BN, but some code has them)
    projection_bn: bool = True  # BN after a projection shortcut's 1x1 conv

    def __post_init__(self) -> None:
        # Accept any sequence for stage_blocks but store a tuple, so variants stay hashable.
        object.__setattr__(self, "stage_blocks", tuple(self.stage_blocks))
        problems = _problems(self)
        if problems:
            raise InvalidVariantError(f"invalid variant {self.name!r}: " + "; ".join(problems))

    @property
    def expansion(self) -> int:
        return EXPANSION[self.block]

    @property
    def stage_widths(self) -> tuple[int, ...]:
        """Inner (3x3) channel width of each stage."""
        return tuple(self.width * 2**i for i in range(len(self.stage_blocks)))

    def axes(self) -> dict[str, str | int | bool]:
        """The variant as one flat results row; stage_blocks becomes e.g. "3-4-6-3"."""
        row = asdict(self)
        row["stage_blocks"] = "-".join(map(str, self.stage_blocks))
        return row

    @classmethod
    def from_axes(cls, row: dict[str, Any]) -> Variant:
        """The variant a results row (or `axes()`) describes."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        values["stage_blocks"] = tuple(int(n) for n in str(row["stage_blocks"]).split("-"))
        return cls(**values)

    def fingerprint(self) -> str:
        """A short stable hash of the architecture: every axis but the name, leaving out those at
        their defaults, so that adding an axis (with a default) keeps every stored fingerprint."""
        defaults = {f.name: f.default for f in fields(self)}
        spec = {k: v for k, v in self.axes().items() if k != "name" and v != defaults[k]}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def axis_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Variant))


def _choice(axis: str, value: object, allowed: Sequence[str]) -> list[str]:
    if value in allowed:
        return []
    return [f"unknown {axis} {value!r}; allowed: {', '.join(allowed)}"]


def _problems(v: Variant) -> list[str]:
    problems = [
        *_choice("family", v.family, FAMILIES),
        *_choice("block", v.block, BLOCKS),
        *_choice("stem", v.stem, STEMS),
        *_choice("stride_at", v.stride_at, STRIDE_AT),
    ]
    if not v.name or any(c.isspace() for c in v.name):
        problems.append("name must be non-empty and without spaces")
    if v.residual:
        problems += _choice("shortcut", v.shortcut, SHORTCUTS)
    elif v.shortcut != "none":
        problems.append("plain nets have no shortcut: use shortcut='none'")
    if v.stride_at == "1x1" and v.block != "bottleneck":
        problems.append("stride_at='1x1' (v1) applies to bottleneck blocks only")
    for axis in ("width", "input_size", "in_channels", "num_classes"):
        if not (isinstance(getattr(v, axis), int) and getattr(v, axis) >= 1):
            problems.append(f"{axis} must be a positive integer")
    if not v.stage_blocks or any(not isinstance(n, int) or n < 1 for n in v.stage_blocks):
        problems.append("stage_blocks must be a non-empty tuple of positive integers")
    elif v.block in LAYERS_PER_BLOCK:
        problems += _depth_problems(v)
    return problems


def _depth_problems(v: Variant) -> list[str]:
    if v.family == "cifar":
        try:
            expected_blocks = cifar_stage_blocks(v.depth)
        except InvalidVariantError as err:
            return [str(err)]
        if v.block != "basic" or v.stage_blocks != expected_blocks:
            return [f"a CIFAR net of depth {v.depth} has basic blocks {expected_blocks}"]
        return []
    expected = 2 + LAYERS_PER_BLOCK[v.block] * sum(v.stage_blocks)
    if v.depth != expected:
        return [
            f"depth {v.depth} does not match stage_blocks {v.stage_blocks} of {v.block} blocks "
            f"(that is depth {expected})"
        ]
    return []


class Registry:
    """Names -> variants. Registration order is kept; duplicates raise; aliases resolve."""

    def __init__(self) -> None:
        self._variants: dict[str, Variant] = {}
        self._aliases: dict[str, str] = {}

    def register(self, variant: Variant, *, aliases: Iterable[str] = ()) -> Variant:
        taken = [n for n in (variant.name, *aliases) if n in self._variants or n in self._aliases]
        if taken:
            raise InvalidVariantError(
                f"variant name {taken[0]!r} is already registered; choose another name"
            )
        self._variants[variant.name] = variant
        self._aliases.update(dict.fromkeys(aliases, variant.name))
        return variant

    def unregister(self, name: str) -> None:
        canonical = self.get(name).name
        del self._variants[canonical]
        self._aliases = {a: n for a, n in self._aliases.items() if n != canonical}

    def get(self, name: str) -> Variant:
        canonical = self._aliases.get(name, name)
        if canonical in self._variants:
            return self._variants[canonical]
        close = difflib.get_close_matches(name, [*self._variants, *self._aliases], n=5)
        hint = f"closest: {', '.join(close)}" if close else "see `ablate list`"
        raise UnknownVariantError(f"unknown variant {name!r}; {hint}")

    def names(
        self, include: str | Sequence[str] = "*", exclude: str | Sequence[str] = ()
    ) -> list[str]:
        inc = [include] if isinstance(include, str) else list(include)
        exc = [exclude] if isinstance(exclude, str) else list(exclude)
        return [
            n
            for n in self._variants
            if any(fnmatch.fnmatchcase(n, p) for p in inc)
            and not any(fnmatch.fnmatchcase(n, p) for p in exc)
        ]

    def closest(self, pattern: str) -> list[str]:
        return difflib.get_close_matches(pattern, list(self._variants), n=5)


REGISTRY = Registry()


def register_variant(variant: Variant, *, aliases: Iterable[str] = ()) -> Variant:
    """Register `variant` under `variant.name` (and `aliases`); returns it, for chaining."""
    return REGISTRY.register(variant, aliases=aliases)


def get_variant(name: str) -> Variant:
    """The registered variant called `name` (or one of its aliases, e.g. "resnet56-a")."""
    return REGISTRY.get(name)


def list_variants(
    include: str | Sequence[str] = "*", exclude: str | Sequence[str] = ()
) -> list[str]:
    """Registered names matching any `include` glob and no `exclude` glob, in registration order."""
    return REGISTRY.names(include, exclude)


def derive(base: str | Variant, *, name: str | None = None, **overrides: Any) -> Variant:
    """`base` with some axes replaced, validated; unnamed derivations are called e.g.
    "resnet20[width=32]" so that a results row always says what was changed."""
    variant = get_variant(base) if isinstance(base, str) else base
    unknown = sorted(set(overrides) - set(axis_names()))
    if unknown:
        raise InvalidVariantError(
            f"unknown axis {unknown[0]!r}; axes are: {', '.join(axis_names()[1:])}"
        )
    changed = {k: v for k, v in overrides.items() if getattr(variant, k) != v}
    if name is None:
        # The head size follows the dataset and is its own column, so it does not rename.
        tag = ",".join(f"{k}={_plain(v)}" for k, v in changed.items() if k != "num_classes")
        name = f"{variant.name}[{tag}]" if tag else variant.name
    if variant.family == "cifar" and "depth" in changed and "stage_blocks" not in changed:
        changed["stage_blocks"] = cifar_stage_blocks(changed["depth"])
    return replace(variant, name=name, **changed)


def _plain(value: object) -> str:
    return "-".join(map(str, value)) if isinstance(value, tuple | list) else str(value)
