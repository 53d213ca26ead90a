"""The variant registry: an architecture is a frozen dataclass of axes, registered under a name.

Every axis is a plain value, so a variant is one results row with the axes as column names. A
spec is validated where it is written, the `block` axis against its declaration (ablations.blocks).
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from ablations.blocks import FAMILIES, STRIDE_AT, block_names, get_block
from ablations.errors import AblationsError as AblationsError
from ablations.errors import InvalidVariantError, UnknownVariantError

Family = Literal["cifar", "imagenet"]
Shortcut = Literal["a", "b", "c", "none"]
Stem = Literal["k3", "k7"]
StrideAt = Literal["3x3", "1x1"]

SHORTCUTS: tuple[str, ...] = ("a", "b", "c")  # residual nets; plain nets have shortcut="none"
STEMS: tuple[str, ...] = ("k3", "k7")


def cifar_stage_blocks(depth: int, *, block: str) -> tuple[int, int, int]:
    """Blocks per stage of a CIFAR net of `depth` layers: (n, n, n) for depth = 2 + 3 * n *
    (the block's layers), e.g. 6n+2 for basic blocks and 9n+2 for bottlenecks."""
    per_n = 3 * get_block(block).layers
    n, rest = divmod(depth - 2, per_n)
    if rest or n < 1:
        examples = ", ".join(str(2 + per_n * k) for k in (1, 2, 3))
        raise InvalidVariantError(
            f"CIFAR depth of {block} blocks must be {per_n}n+2 with n >= 1 ({examples}, ...); "
            f"got {depth}"
        )
    return (n, n, n)


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One architecture: the axes the paper ablates, plus what the model's input and head are."""

    name: str
    family: Family  # "cifar": 3 equal stages, 32x32 input; "imagenet": 4 stages, 224x224 input
    depth: int  # weighted layers: stem conv + block convs + final linear (projections not counted)
    block: str  # a registered block type (ablations.blocks): basic, bottleneck, preact, ...
    residual: bool  # False = "plain" net: the same layers with no shortcut at all
    shortcut: Shortcut  # a: zero-pad identity, b: projection where shape changes, c: always
    stem: Stem  # k7: 7x7/s2 conv + 3x3/s2 maxpool; k3: 3x3/s1 conv, no pool
    width: int  # channels of the first stage; stage i has width * 2**i (times 4 in bottlenecks)
    stage_blocks: tuple[int, ...]
    stride_at: StrideAt = "3x3"  # bottlenecks: stride on the 3x3 conv (v1.5) or the first 1x1 (v1)
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
        return get_block(self.block).expansion

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


def _problems(v: Variant) -> list[str]:
    allowed = {"family": FAMILIES, "stem": STEMS, "stride_at": STRIDE_AT}
    problems = [
        f"unknown {axis} {getattr(v, axis)!r}; allowed: {', '.join(values)}"
        for axis, values in allowed.items()
        if getattr(v, axis) not in values
    ]
    if not v.name or any(c.isspace() for c in v.name):
        problems.append("name must be non-empty and without spaces")
    if v.residual and v.shortcut not in SHORTCUTS:
        problems.append(f"unknown shortcut {v.shortcut!r}; allowed: {', '.join(SHORTCUTS)}")
    elif not v.residual and v.shortcut != "none":
        problems.append("plain nets have no shortcut: use shortcut='none'")
    for axis in ("width", "input_size", "in_channels", "num_classes"):
        if not (isinstance(getattr(v, axis), int) and getattr(v, axis) >= 1):
            problems.append(f"{axis} must be a positive integer")
    if v.block not in block_names():
        return [*problems, f"unknown block {v.block!r}; registered: {', '.join(block_names())}"]
    # What the block's declaration rules out: other families, a plain form, a stride placement.
    spec = get_block(v.block)
    if v.family not in spec.families:
        problems.append(f"{v.block} blocks are declared for {', '.join(spec.families)} nets only")
    if not v.residual and not spec.plain:
        problems.append(f"{v.block} blocks have no plain form: residual must be True")
    if v.stride_at in STRIDE_AT and v.stride_at not in spec.stride_at:
        problems.append(
            f"stride_at {v.stride_at!r} is no placement of {v.block} blocks; "
            f"allowed: {', '.join(spec.stride_at)}"
        )
    if not v.stage_blocks or any(not isinstance(n, int) or n < 1 for n in v.stage_blocks):
        return [*problems, "stage_blocks must be a non-empty tuple of positive integers"]
    return problems + _depth_problems(v)


def _depth_problems(v: Variant) -> list[str]:
    if v.family == "cifar":
        try:
            expected_blocks = cifar_stage_blocks(v.depth, block=v.block)
        except InvalidVariantError as err:
            return [str(err)]
        if v.stage_blocks != expected_blocks:
            return [f"a CIFAR net of depth {v.depth} has {v.block} blocks {expected_blocks}"]
        return []
    expected = 2 + get_block(v.block).layers * sum(v.stage_blocks)
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
        """Register `variant` under `variant.name` (and `aliases`); returns it, for chaining."""
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
        """The registered variant called `name` (or one of its aliases, e.g. "resnet56-a")."""
        canonical = self._aliases.get(name, name)
        if canonical in self._variants:
            return self._variants[canonical]
        close = difflib.get_close_matches(name, [*self._variants, *self._aliases], n=5)
        hint = f"closest: {', '.join(close)}" if close else "see `ablate list`"
        raise UnknownVariantError(f"unknown variant {name!r}; {hint}")

    def names(
        self, include: str | Sequence[str] = "*", exclude: str | Sequence[str] = ()
    ) -> list[str]:
        """Names matching any `include` glob and no `exclude` glob, in registration order."""

        def matches(name: str, patterns: str | Sequence[str]) -> bool:
            globs = [patterns] if isinstance(patterns, str) else patterns
            return any(fnmatch.fnmatchcase(name, g) for g in globs)

        return [n for n in self._variants if matches(n, include) and not matches(n, exclude)]

    def closest(self, pattern: str) -> list[str]:
        return difflib.get_close_matches(pattern, list(self._variants), n=5)


REGISTRY = Registry()
register_variant = REGISTRY.register
get_variant = REGISTRY.get
list_variants = REGISTRY.names


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
    # A CIFAR net's stage sizes follow from its depth and its block's layers.
    reshaped = "depth" in changed or "block" in changed
    if variant.family == "cifar" and reshaped and "stage_blocks" not in changed:
        depth, block = changed.get("depth", variant.depth), changed.get("block", variant.block)
        changed["stage_blocks"] = cifar_stage_blocks(depth, block=block)
    return replace(variant, name=name, **changed)


def _plain(value: object) -> str:
    return "-".join(map(str, value)) if isinstance(value, tuple | list) else str(value)
