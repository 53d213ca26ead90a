"""Layer responses: the measurement of He et al. (2016), Fig. 7.

The paper: "Standard deviations (std) of layer responses on CIFAR-10. The responses are the
outputs of each 3x3 layer, after BN and before nonlinearity (ReLU/addition)."

What is measured here, per trained run:
  - the layers: every 3x3 conv in forward order -- the stem conv when it is 3x3 (the k3 stem;
    the 7x7 k7 stem has none), then each 3x3 conv of each residual branch (both convs of a
    basic block, the middle conv of a bottleneck). Projection shortcuts and 1x1 convs are not
    layers here;
  - the response of a layer: the output of the BatchNorm right after its conv, i.e. before the
    ReLU, or before the shortcut addition for a branch's last 3x3 conv. In a pre-activation
    net a 3x3 conv may meet no BN before the addition (a block's last conv, the stem conv): its
    response is the conv's own output. The model names these modules (`ResNet.responses`);
    nothing here reads module names;
  - the images: the run's test images, prepared exactly as the run prepared them (same
    resizing and normaliser, no augmentation), BN in eval mode (running statistics), in the
    run's precision; all of them, or a fixed random subset of `images` of them (the profile's
    `response_images`), recorded in each row;
  - the number: the population standard deviation (ddof 0) over every element of the
    response -- images, channels and positions pooled into one set. The paper does not spell
    out the reduction; this pooled std is the definition used. It differs from, e.g., the mean
    of per-channel stds: it also counts the spread of the channel means (the BN shifts).

Each batch's sum and sum of squares are taken by forward hooks in float32 (PyTorch's cascade
summation: relative error about 1e-7) and accumulated in float64 on the device, read once at the
end, so the measurement runs at about evaluation speed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from ablations import rundir, versions
from ablations.config import TrainConfig, resolve_device
from ablations.data import ArrayDataset, load_dataset
from ablations.data.loader import eval_batches, random_subset
from ablations.data.prepare import prepare_data
from ablations.models import ResNet
from ablations.registry import AblationsError, Variant
from ablations.results import provenance
from ablations.results.collect import provenance_row
from ablations.results.schemas import RESPONSES
from ablations.train.steps import autocast, set_tf32


def response_modules(model: ResNet) -> list[tuple[str, nn.Module]]:
    """(qualified module name, module) of every response, in forward order, as the model names
    them (`ResNet.responses`: the stem's, then each block's `Block.responses`). Projection
    shortcuts and 1x1 convs have none."""
    return [(name, model.get_submodule(name)) for name in model.responses()]


class _Moments:
    """A forward hook: count, sum and sum of squares of its module's output elements. The sums
    stay on the device (no host sync per batch); the count is shape metadata, kept on the host.
    The sums are taken when the hook runs, before the in-place ReLU that follows overwrites the
    output."""

    def __init__(self) -> None:
        self.count = 0
        self.sums: Tensor | None = None  # (sum, sum of squares), float64

    def __call__(self, module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> None:
        # float32 sums: a float64 copy of every response cost a fifth of the measurement on a
        # CPU. (Not vector_norm for the squares: its float32 accumulation is off by 1e-4.)
        x = output.detach().float()
        batch = torch.stack([x.sum(), (x * x).sum()]).double()
        self.sums = batch if self.sums is None else self.sums + batch
        self.count += output.numel()


def layer_responses(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, precision: str = "fp32"
) -> pd.DataFrame:
    """One row per response module (`response_modules`): layer (1-based, forward order),
    module (qualified name), std (population std over every output element of every batch).

    Runs in eval mode under inference_mode and autocast per `precision`; every module's
    training flag is restored and the hooks are removed afterwards, also on error."""
    if not isinstance(model, ResNet):
        raise TypeError(f"layer responses are defined for ResNet models; got {type(model)}")
    modules = response_modules(model)
    moments = [_Moments() for _ in modules]
    handles = [
        module.register_forward_hook(m) for (_, module), m in zip(modules, moments, strict=True)
    ]
    try:
        with _eval_mode(model), torch.inference_mode():
            for x, _ in batches:
                with autocast(x.device, precision):
                    model(x)
    finally:
        for handle in handles:
            handle.remove()
    return _table([name for name, _ in modules], moments)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; each module's own flag back afterwards (they may differ)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _table(names: list[str], moments: list[_Moments]) -> pd.DataFrame:
    """The std of each layer from its moments: the one host read of the whole measurement."""
    if any(m.sums is None or m.count == 0 for m in moments):
        raise AblationsError("no images reached the response layers; nothing to measure")
    sums = torch.stack([m.sums for m in moments if m.sums is not None]).cpu()
    counts = torch.tensor([m.count for m in moments], dtype=torch.float64)
    mean = sums[:, 0] / counts
    # E[x^2] - E[x]^2 in float64: exact enough for BN outputs, whose mean is of the order of
    # their std; the clamp only guards rounding of a (near-)constant response.
    var = (sums[:, 1] / counts - mean * mean).clamp_min(0)
    return pd.DataFrame({
        "layer": range(1, len(names) + 1),
        "module": names,
        "std": var.sqrt().tolist(),
    })  # fmt: skip


def responses_for_run(
    run_dir: Path,
    *,
    data: str | Path | None = None,
    device: str | torch.device | None = None,
    dataset: ArrayDataset | None = None,
    images: int | None = None,
) -> pd.DataFrame:
    """The RESPONSES rows of a finished run directory: its final weights measured on its test
    images (all, or a fixed random subset of `images`), prepared as the run prepared them.
    `dataset` (already loaded) saves decoding the data once per run; otherwise it is loaded from
    `data` as `load_dataset` does."""
    run_dir = Path(run_dir)
    if not rundir.weights(run_dir).exists():
        raise AblationsError(
            f"{run_dir} has no model.pt (an unfinished or diverged run, or one whose weights were "
            "not kept: results/ commits none); move that run directory aside and rerun to "
            "retrain it"
        )
    config = TrainConfig.from_json(rundir.config(run_dir))
    variant = Variant.from_axes(rundir.variant_axes(run_dir))
    if dataset is not None and dataset.name != config.dataset:
        raise AblationsError(f"{run_dir} was trained on {config.dataset}, not {dataset.name}")
    dev = resolve_device(device)
    prepared = prepare_data(config, dataset or load_dataset(config.dataset, data=data), dev)
    model = _load_model(run_dir, variant, dev, channels_last=config.channels_last)
    x, y = prepared.test
    if images is not None:  # the split seed: every run of a profile sees the same images
        if images < 1:
            raise AblationsError(f"response images must be >= 1, not {images}")
        keep = torch.from_numpy(random_subset(len(x), images, seed=config.split_seed))
        x, y = x[keep], y[keep]
    batches = eval_batches(
        x, y, batch_size=config.eval_batch_size, device=dev, normalizer=prepared.normalizer,
        channels_last=config.channels_last,
    )  # fmt: skip
    with _tf32(config.precision):
        table = layer_responses(model, batches, precision=config.precision)
    provenance.warn_if_dirty("measuring layer responses")
    trained_by = versions.run_trainer_version(rundir.starts(run_dir))
    rows = table.assign(
        run_id=run_dir.name, variant=config.variant, profile=config.profile,
        residual=variant.residual, depth=variant.depth, images=len(x), precision=config.precision,
        **provenance_row(provenance.environment(dev), prepared.record, trainer_version=trained_by),
    )  # fmt: skip
    return RESPONSES.validate(rows[list(RESPONSES.columns)])


def _load_model(
    run_dir: Path, variant: Variant, device: torch.device, *, channels_last: bool
) -> ResNet:
    """The run's final weights in the exact architecture trained (variant.json)."""
    model = ResNet(variant)
    weights = torch.load(rundir.weights(run_dir), map_location="cpu", weights_only=True)
    model.load_state_dict(weights)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


@contextmanager
def _tf32(precision: str) -> Iterator[None]:
    """The run's TF32 setting, as training set it (PyTorch's default would make "fp32" convs
    TF32 on a GPU); the caller's flags back afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    set_tf32(precision)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
