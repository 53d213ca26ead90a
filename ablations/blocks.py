"""Block types as declarations: a block's layers, widening, the families and stride placements it
allows, what the stem and head around it need, and where its nn.Module class lives. A new block
type is one class and one `register_block` (docs/variants.md). The built-in blocks name their
classes by import path, so importing the registry loads no torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any, TypeVar, overload

from ablations.errors import InvalidVariantError

FAMILIES: tuple[str, ...] = ("cifar", "imagenet")
STRIDE_AT: tuple[str, ...] = ("3x3", "1x1")

C = TypeVar("C", bound=type)


@dataclass(frozen=True, kw_only=True)
class BlockSpec:
    """One block type: the `block` axis value, its shape, where it applies, and its class."""

    name: str  # the `block` axis value
    layers: int  # weighted layers of one block: depth = stem conv + blocks * layers + linear
    expansion: int = 1  # a block's output channels per channel of its stage's width
    families: tuple[str, ...] = FAMILIES  # the families whose nets may use it
    plain: bool = True  # has a plain form: the same layers with no shortcut at all
    stride_at: tuple[str, ...] = ("3x3",)  # the stride placements it implements
    stem_bn_relu: bool = True  # BN-ReLU after the stem conv; False: the conv alone
    head_bn_relu: bool = False  # BN-ReLU on the last block's output, before the pool
    module: str | type  # the nn.Module class, or its import path "package.module:Class"

    def __post_init__(self) -> None:
        # Accept any iterable for the tuples but store tuples, so declarations stay hashable.
        object.__setattr__(self, "families", tuple(self.families))
        object.__setattr__(self, "stride_at", tuple(self.stride_at))
        problems = _problems(self)
        if problems:
            raise InvalidVariantError(f"invalid block {self.name!r}: " + "; ".join(problems))

    @property
    def path(self) -> str:
        """Where the class lives, "package.module:Class", also for a class given directly."""
        if isinstance(self.module, str):
            return self.module
        return f"{self.module.__module__}:{self.module.__qualname__}"

    def declared(self) -> str:
        """The declaration as stable text, the class by its path: what a cached count hashes."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return repr({**values, "module": self.path})

    def load(self) -> type:
        """The block's class, imported on first use when the declaration names its path."""
        if isinstance(self.module, type):
            return self.module
        module, _, name = self.module.partition(":")
        found = getattr(importlib.import_module(module), name, None)
        if not isinstance(found, type):
            raise InvalidVariantError(f"block {self.name!r}: {self.module} is not a class")
        return found


def _problems(spec: BlockSpec) -> list[str]:
    problems = []
    if not spec.name or any(c.isspace() for c in spec.name):
        problems.append("name must be non-empty and without spaces")
    for what in ("layers", "expansion"):
        if not (isinstance(getattr(spec, what), int) and getattr(spec, what) >= 1):
            problems.append(f"{what} must be a positive integer")
    for what, allowed in (("families", FAMILIES), ("stride_at", STRIDE_AT)):
        values = getattr(spec, what)
        if not values or any(v not in allowed for v in values):
            problems.append(f"{what} must be some of {', '.join(allowed)}; got {values}")
    if isinstance(spec.module, str) and ":" not in spec.module:
        problems.append(f'module must be a class or "package.module:Class"; got {spec.module!r}')
    return problems


_BLOCKS: dict[str, BlockSpec] = {}


def block_names() -> tuple[str, ...]:
    """The registered block types, in registration order."""
    return tuple(_BLOCKS)


def get_block(name: str) -> BlockSpec:
    """The declaration of the block type `name`; an unknown name lists the registered ones."""
    if name not in _BLOCKS:
        raise InvalidVariantError(f"unknown block {name!r}; registered: {', '.join(_BLOCKS)}")
    return _BLOCKS[name]


def unregister_block(name: str) -> None:
    """Remove a block type (variants that use it can no longer be built or validated)."""
    del _BLOCKS[get_block(name).name]


@overload
def register_block(
    name: str, module: str | type, *, layers: int, expansion: int = ...,
    families: Iterable[str] = ..., plain: bool = ..., stride_at: Iterable[str] = ...,
    stem_bn_relu: bool = ..., head_bn_relu: bool = ...,
) -> BlockSpec: ...  # fmt: skip
@overload
def register_block(
    name: str, module: None = ..., *, layers: int, expansion: int = ...,
    families: Iterable[str] = ..., plain: bool = ..., stride_at: Iterable[str] = ...,
    stem_bn_relu: bool = ..., head_bn_relu: bool = ...,
) -> Callable[[C], C]: ...  # fmt: skip
def register_block(
    name: str, module: str | type | None = None, **options: Any
) -> BlockSpec | Callable[[C], C]:
    """Declare the block type `name` (see BlockSpec for each option). With `module`, a class or
    its import path, the declaration is registered and returned; without it, this is a class
    decorator that registers the class it decorates and returns it unchanged."""

    def declare(cls: str | type) -> BlockSpec:
        spec = BlockSpec(name=name, module=cls, **options)
        if name in _BLOCKS:
            raise InvalidVariantError(f"block {name!r} is already registered; choose another name")
        _BLOCKS[name] = spec
        return spec

    if module is not None:
        return declare(module)

    def decorate(cls: C) -> C:
        declare(cls)
        return cls

    return decorate


# The built-in blocks. The paper's (He et al. 2016): two 3x3 convs, and the 1x1-3x3-1x1
# bottleneck whose stride sits on the 3x3 (torchvision's v1.5) or the first 1x1 (the paper's v1).
register_block("basic", "ablations.models.blocks:BasicBlock", layers=2)
register_block(
    "bottleneck", "ablations.models.blocks:Bottleneck", layers=3, expansion=4,
    stride_at=("3x3", "1x1"),
)  # fmt: skip
# Pre-activation blocks (He et al. 2016b): each conv is preceded by BN-ReLU and nothing follows
# the addition, so the stem is the conv alone and the head normalises the last block's sum.
register_block(
    "preact", "ablations.models.preact:PreActBlock", layers=2, families=("cifar",),
    plain=False, stem_bn_relu=False, head_bn_relu=True,
)  # fmt: skip
register_block(
    "preact-bottleneck", "ablations.models.preact:PreActBottleneck", layers=3, expansion=4,
    families=("cifar",), plain=False, stride_at=("3x3", "1x1"), stem_bn_relu=False,
    head_bn_relu=True,
)  # fmt: skip
