"""GPU-only machinery: the training step as one CUDA graph, several runs on their own streams,
and the process's CUDA streams (`stream`)."""

from __future__ import annotations

import torch

from ablations.errors import AblationsError

_STREAMS: dict[tuple[torch.device, str], torch.cuda.Stream] = {}


def stream(device: torch.device, role: str) -> torch.cuda.Stream:
    """The process's one stream for `role` on `device` (e.g. "capture", "run 0"), made on first
    use. `torch.cuda.Stream()` hands out CUDA's pooled streams in turn, 32 per priority, so a
    stream made per run or per evaluation would in time be a live one again. A stream per role
    is made once; one that would coincide with another role's is refused."""
    index = torch.cuda.current_device() if device.index is None else device.index
    key = (torch.device("cuda", index), role)
    if key not in _STREAMS:
        made = torch.cuda.Stream(device=key[0])
        for (where, other), known in _STREAMS.items():
            if where == key[0] and known.cuda_stream == made.cuda_stream:
                raise AblationsError(
                    f"CUDA's stream pool is used up: {role!r} would share {other!r}'s stream; "
                    "train fewer runs at once (--jobs)"
                )
        _STREAMS[key] = made
    return _STREAMS[key]
