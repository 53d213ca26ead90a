"""resnet-ablations: the architecture ablations of He et al. (2016) as a registry, runners and
reports. Public API: the registry (`Variant`, `register_variant`, `get_variant`, `list_variants`,
`derive`) and `create_model`."""

from ablations import variants as _builtin_variants  # noqa: F401  (registers the built-in grid)
from ablations.models import create_model, resolve
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

__all__ = [
    "AblationsError",
    "InvalidVariantError",
    "UnknownVariantError",
    "Variant",
    "create_model",
    "derive",
    "get_variant",
    "list_variants",
    "register_variant",
    "resolve",
]
