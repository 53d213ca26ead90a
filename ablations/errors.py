"""The errors a user can fix. The CLI prints each as one line and exits non-zero. The registry
re-exports them, so `from ablations.registry import AblationsError` works."""

from __future__ import annotations


class AblationsError(Exception):
    """An error the user can fix; the CLI prints its message as one line and exits non-zero."""


class UnknownVariantError(AblationsError, LookupError):
    """A name that is neither registered nor an alias."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0])


class InvalidVariantError(AblationsError, ValueError):
    """A spec that breaks the rules of its axes or of its block, or a duplicate registration."""


class CaptureError(AblationsError):
    """A CUDA graph capture that failed. PyTorch cannot restore CUDA's state after one (the
    capture stream stays current, the allocator keeps its capture pool), so the process stops."""
