"""resnet-ablations: the architecture ablations of He et al. (2016) as a registry, runners and
reports. Importing it loads no torch (`create_model` imports the models on first use). It loads
the plugins that ABLATE_PLUGINS names, so a process `ablate` starts holds its parent's variants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ablations import plugins as _plugins
from ablations import variants as _builtin_variants  # noqa: F401  (the built-in grid)
from ablations.blocks import BlockSpec, register_block, unregister_block
from ablations.claims import GapGrows, Lower, Nets
from ablations.experiments import Experiment, register_experiment, unregister_experiment
from ablations.registry import (
    AblationsError,
    InvalidVariantError,
    UnknownVariantError,
    Variant,
    derive,
    get_variant,
    list_variants,
    register_variant,
)

if TYPE_CHECKING:
    from ablations.models import create_model, resolve

__all__ = [
    "AblationsError",
    "BlockSpec",
    "Experiment",
    "GapGrows",
    "InvalidVariantError",
    "Lower",
    "Nets",
    "UnknownVariantError",
    "Variant",
    "create_model",
    "derive",
    "get_variant",
    "list_variants",
    "register_block",
    "register_experiment",
    "register_variant",
    "resolve",
    "unregister_block",
    "unregister_experiment",
]


def __getattr__(name: str) -> Any:
    if name in ("create_model", "resolve"):
        from ablations import models

        return getattr(models, name)
    raise AttributeError(f"module 'ablations' has no attribute {name!r}")


# Last, so that a plugin may import any of the names above. A plugin that fails is skipped
# here: `ablate` loads the same list again and reports it in one line.
_plugins.load_environment(defer=True)
