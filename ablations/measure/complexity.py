"""Parameters and multiply-accumulates of a variant, measured, not derived: fvcore's count of
convolutions and linear layers, one multiply-add as one "flop" (the paper's Table 1 and
torchvision's GFLOPS), at the variant's `input_size`, batch 1. The ops left out (BatchNorm, ReLU,
pooling, the shortcut additions) are listed per variant in `uncounted_ops`."""

from __future__ import annotations

import hashlib
import inspect
import multiprocessing
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch
from torch import nn

from ablations.blocks import get_block
from ablations.models import ResNet, resnet
from ablations.models.resnet import block_class
from ablations.progress import progress
from ablations.registry import Variant, get_variant
from ablations.results import provenance, schemas
from ablations.results.schemas import COMPLEXITY
from ablations.results.table import read_table, upsert

# fvcore.nn scripts a loss function when imported, which torch >= 2.10 warns about.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis, jit_handles

COUNTED_OPS = {
    "aten::_convolution": jit_handles.conv_flop_jit,
    "aten::addmm": jit_handles.addmm_flop_jit,
    "aten::linear": jit_handles.linear_flop_jit,
    **dict.fromkeys(("aten::matmul", "aten::mm"), jit_handles.matmul_flop_jit),
}
POOL_MIN_VARIANTS = 16  # below this, starting worker processes costs more than it saves


def uninitialised(variant: Variant) -> ResNet:
    """The model with uninitialised CPU storage: counting needs shapes, not He init, and
    skipping init makes the 19M-parameter resnet1202 ten times faster to build."""
    with torch.device("meta"):
        model = ResNet(variant)
    return model.to_empty(device="cpu").eval()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, *, input_size: int, in_channels: int = 3) -> tuple[int, list[str]]:
    """fvcore's conv + linear count at batch 1; also the names of the ops it did not count."""
    x = torch.zeros(1, in_channels, input_size, input_size)
    analysis = FlopCountAnalysis(model, x).clear_op_handles().set_op_handle(**COUNTED_OPS)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow
        total = int(analysis.total())
    uncounted = sorted(op.removeprefix("aten::").rstrip("_") for op in analysis.unsupported_ops())
    return total, sorted(set(uncounted))


def model_cost(model: ResNet, *, input_size: int) -> dict[str, int]:
    """A trained model's params (all, and those its run trained) and the MACs per image of its
    variant at `input_size` (counted on an uninitialised twin, not on the trained weights)."""
    variant = model.variant
    macs, _ = count_macs(uninitialised(variant), input_size=input_size,
                         in_channels=variant.in_channels)  # fmt: skip
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params": count_params(model), "trainable_params": trainable, "macs": macs}


def code_version(variant: Variant) -> str:
    """Hash of the code a count depends on: the builder, the counting functions, and the
    variant's own block (declaration, class, bases), so another block's edit leaves it valid."""
    declared = get_block(variant.block)
    cls = block_class(declared)
    digest = hashlib.sha256()
    digest.update(provenance.source_hash(resnet, uninitialised, count_params, count_macs).encode())
    digest.update(declared.declared().encode())
    for klass in cls.__mro__[: cls.__mro__.index(nn.Module)]:
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # no source file: a class typed into an interpreter
            source = f"{klass.__module__}:{klass.__qualname__}"
        digest.update(source.encode())
    return digest.hexdigest()[:12]


def complexity_row(variant: Variant) -> dict[str, Any]:
    model = uninitialised(variant)
    macs, uncounted = count_macs(
        model, input_size=variant.input_size, in_channels=variant.in_channels
    )
    environment = provenance.environment()
    return {
        **variant.axes(),
        "params": count_params(model),
        "macs": macs,
        "uncounted_ops": " ".join(uncounted),
        "fingerprint": variant.fingerprint(),
        "code_version": code_version(variant),
        **{k: environment[k] for k in ("fvcore", "torch", "machine", "git_commit", "created_at",
                                       *schemas.MACHINE_HASHES)},
    }  # fmt: skip


def _resolve(variants: Iterable[str | Variant]) -> list[Variant]:
    return [get_variant(v) if isinstance(v, str) else v for v in variants]


def reusable(variants: Sequence[Variant], stored: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Stored rows of the same architecture, `code_version` and fvcore, by name."""
    fvcore = provenance.package_version("fvcore")
    one_per_block = {v.block: v for v in variants}  # one hash per block type, not per variant
    versions = {block: code_version(v) for block, v in one_per_block.items()}
    current = {v.name: (v.fingerprint(), versions[v.block]) for v in variants}
    records = cast(list[dict[str, Any]], stored.to_dict("records"))
    return {
        row["name"]: row
        for row in records
        if current.get(row["name"]) == (row["fingerprint"], row["code_version"])
        and row["fvcore"] == fvcore
    }


def measure(
    variants: Iterable[str | Variant], *, stored: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per variant: its axes, `params` and `macs`; `reusable` rows of `stored` reused."""
    resolved = _resolve(variants)
    reuse = reusable(resolved, stored) if stored is not None else {}
    fresh = {row["name"]: row for row in _rows([v for v in resolved if v.name not in reuse])}
    return COMPLEXITY.validate(pd.DataFrame([reuse.get(v.name) or fresh[v.name] for v in resolved]))


def update(
    path: str | Path, variants: Iterable[str | Variant], *, rerun: bool = False
) -> pd.DataFrame:
    """Count what the table at `path` lacks or has stale, saving each row as it is done."""
    resolved = _resolve(variants)
    stored = read_table(path, COMPLEXITY)
    reuse = {} if rerun else reusable(resolved, stored)
    for row in _rows([v for v in resolved if v.name not in reuse]):
        stored = upsert(path, pd.DataFrame([row]), COMPLEXITY)
    return stored


def _rows(todo: list[Variant]) -> Iterator[dict[str, Any]]:
    """complexity_row of each variant, in order of completion. Many are counted in a worker per
    core: tracing is single-threaded Python (the registry took 77 s in one process on 2 cores)."""
    workers = min(provenance.available_cores(), len(todo))
    if workers < 2 or len(todo) < POOL_MIN_VARIANTS:
        yield from map(complexity_row, progress(todo, desc="complexity", label=lambda v: v.name))
        return
    # The deepest first, so that no worker is left with a 1202-layer net at the end. Spawned,
    # not forked: a fork of a process whose OpenMP pool has started can hang.
    order = sorted(todo, key=lambda v: -sum(v.stage_blocks))
    context = multiprocessing.get_context("spawn")
    one_thread = partial(torch.set_num_threads, 1)  # one worker per core
    with ProcessPoolExecutor(workers, mp_context=context, initializer=one_thread) as pool:
        finished = as_completed([pool.submit(complexity_row, v) for v in order])
        # A row as each one ends.
        for _ in progress(order, desc="complexity", label=lambda v: v.name):
            yield next(finished).result()
