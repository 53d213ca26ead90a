"""Layer responses, He et al. (2016), Fig. 7: the population std (ddof 0, images, channels and
positions pooled) of each 3x3 conv's output after its BN, before ReLU or addition (the conv's own
output where no BN follows, as in pre-activation nets; `ResNet.responses` names them), over a
run's test images prepared as the run prepared them, BN in eval mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
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
from ablations.train.steps import autocast, tf32_for, use_device


def response_modules(model: ResNet) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every response, in forward order (`ResNet.responses`)."""
    return [(name, model.get_submodule(name)) for name in model.responses()]


def layer_responses(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, precision: str = "fp32"
) -> pd.DataFrame:
    """One row per response module: layer (1-based, forward order), module (qualified name),
    std. BN runs in eval mode, TF32 as training set it (PyTorch's default would make fp32 convs
    TF32); the modules' training flags, the TF32 flags and the hooks are restored, also on error."""
    if not isinstance(model, ResNet):
        raise TypeError(f"layer responses are defined for ResNet models; got {type(model)}")
    modules = response_modules(model)
    # Per module: (sum, sum of squares) in float64 and the element count. The sums stay on the
    # device (no host sync per batch): the one host read is at the end.
    sums: dict[int, Tensor] = {}
    counts = [0] * len(modules)

    def hook(i: int, module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> None:
        # Read before the in-place ReLU that follows overwrites it. float32 sums: a float64 copy
        # of every response cost a fifth of the measurement on a CPU. (Not vector_norm for the
        # squares: its float32 accumulation is off by 1e-4.)
        x = output.detach().float()
        batch = torch.stack([x.sum(), (x * x).sum()]).double()
        sums[i] = sums[i] + batch if i in sums else batch
        counts[i] += output.numel()

    handles = [m.register_forward_hook(partial(hook, i)) for i, (_, m) in enumerate(modules)]
    modes = [(m, m.training) for m in model.modules()]  # they may differ
    model.eval()
    try:
        with tf32_for(precision), torch.inference_mode():
            for x, _ in batches:
                with autocast(x.device, precision):
                    model(x)
    finally:
        for module, training in modes:
            module.training = training
        for handle in handles:
            handle.remove()
    if len(sums) < len(modules) or 0 in counts:
        raise AblationsError("no images reached the response layers; nothing to measure")
    moments = torch.stack([sums[i] for i in range(len(modules))]).cpu()
    total = torch.tensor(counts, dtype=torch.float64)
    mean = moments[:, 0] / total
    # E[x^2] - E[x]^2 in float64: exact enough for BN outputs, whose mean is of the order of
    # their std; the clamp only guards rounding of a (near-)constant response.
    var = (moments[:, 1] / total - mean * mean).clamp_min(0)
    names = [name for name, _ in modules]
    return pd.DataFrame(
        {"layer": range(1, len(names) + 1), "module": names, "std": var.sqrt().tolist()}
    )


def responses_for_run(
    run_dir: Path,
    *,
    data: str | Path | None = None,
    device: str | torch.device | None = None,
    dataset: ArrayDataset | None = None,
    images: int | None = None,
) -> pd.DataFrame:
    """The RESPONSES rows of a finished run directory, its final weights measured on its test
    images (all, or a fixed random subset of `images`). `dataset`, loaded already, saves
    decoding the data once per run; otherwise it is loaded from `data`."""
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
    use_device(dev)
    prepared = prepare_data(config, dataset or load_dataset(config.dataset, data=data), dev)
    weights = torch.load(rundir.weights(run_dir), map_location="cpu", weights_only=True)
    model = ResNet(variant)  # the exact architecture trained (variant.json)
    model.load_state_dict(weights)
    model = model.to(dev)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
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
    table = layer_responses(model, batches, precision=config.precision)
    provenance.warn_if_dirty("measuring layer responses")
    trained_by = versions.run_trainer_version(rundir.starts(run_dir))
    rows = table.assign(
        run_id=run_dir.name, variant=config.variant, profile=config.profile,
        residual=variant.residual, depth=variant.depth, images=len(x), precision=config.precision,
        **provenance_row(provenance.environment(dev), prepared.record, trainer_version=trained_by),
    )  # fmt: skip
    return RESPONSES.validate(rows[list(RESPONSES.columns)])
