"""Image bytes to uint8 RGB CHW tensors, for the streaming loader (streaming.py): one image on
the CPU (`decode`: torchvision's JPEG decoder, PIL for other formats), or a batch at once on a
device (`decode_batch`: batched nvJPEG on CUDA, with a per-batch fall back to the CPU decoder for
the JPEGs nvJPEG refuses).
"""

from __future__ import annotations

import io
import warnings
from typing import overload

import numpy as np
import torch
from PIL import Image
from torch import Tensor

_JPEG_MAGIC = b"\xff\xd8"
# torchvision 0.29 deprecates its decoders in favour of torchcodec, warning on every call (once per
# image, in every worker); they still work.
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision",
    category=DeprecationWarning,
)  # fmt: skip


@overload
def _decode_jpeg(data: Tensor, *, device: torch.device | str) -> Tensor: ...
@overload
def _decode_jpeg(data: list[Tensor], *, device: torch.device | str) -> list[Tensor]: ...
def _decode_jpeg(
    data: Tensor | list[Tensor], *, device: torch.device | str
) -> Tensor | list[Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg  # on first use: seconds to import

    if isinstance(data, list) and torch.device(device).type == "cpu":
        # A list is one batched nvJPEG call on CUDA; on the CPU torchvision loops over it
        # anyway, and before 0.20 takes no list there.
        return [decode_jpeg(d, mode=ImageReadMode.RGB, device=device) for d in data]
    return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def decode(raw: bytes, *, device: torch.device | str = "cpu") -> Tensor:
    """uint8 RGB CHW: JPEGs by torchvision's decoder, anything else by PIL (on the CPU)."""
    if raw[:2] == _JPEG_MAGIC:
        data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        return _decode_jpeg(data, device=device)
    with Image.open(io.BytesIO(raw)) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).to(device)


def decode_batch(raws: list[bytes], *, device: torch.device) -> list[Tensor]:
    """Many images decoded at once: JPEGs in one `decode_jpeg` call on `device` (batched nvJPEG
    on CUDA), the rest one by one. Where the batched call refuses a file (nvJPEG takes no CMYK
    JPEG, of which ImageNet's train split holds a few), that batch's JPEGs are decoded one by
    one on the CPU, as the CPU path decodes them, instead of stopping the run."""
    jpegs = [i for i, r in enumerate(raws) if r[:2] == _JPEG_MAGIC]
    decoded: dict[int, Tensor] = {}
    if jpegs:
        data = [torch.frombuffer(bytearray(raws[i]), dtype=torch.uint8) for i in jpegs]
        try:
            decoded = dict(zip(jpegs, _decode_on_device(data, device), strict=True))
        except RuntimeError:
            decoded = {i: decode(raws[i]).to(device) for i in jpegs}
    return [decoded[i] if i in decoded else decode(r).to(device) for i, r in enumerate(raws)]


_DECODE_STREAMS: dict[torch.device, torch.cuda.Stream] = {}


def _decode_on_device(data: list[Tensor], device: torch.device) -> list[Tensor]:
    """`_decode_jpeg` on a stream of its own on CUDA. torchvision allocates the outputs on the
    current stream but nvJPEG writes them on a private one that does not wait for it, so with
    the training step queued on the current stream a freed block could be written while a
    queued kernel still reads it (pytorch/vision#9606). The decode stream has no work of its
    own, and each output is marked as used by the current stream before it is handed over."""
    if device.type != "cuda":
        return _decode_jpeg(data, device=device)
    current = torch.cuda.current_stream(device)
    if device not in _DECODE_STREAMS:
        _DECODE_STREAMS[device] = torch.cuda.Stream(device=device)
    stream = _DECODE_STREAMS[device]
    with torch.cuda.stream(stream):
        images = _decode_jpeg(data, device=device)
    current.wait_stream(stream)
    for image in images:
        image.record_stream(current)
    return images
