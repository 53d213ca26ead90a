"""akamaster/pytorch_resnet_cifar10's checkpoints (resnet20.th ... resnet1202.th) as our weights:
a DataParallel state_dict ("module." keys, a `linear` head, no `num_batches_tracked`) of the
paper's CIFAR ResNet, whose option-A shortcut pads planes//4 zero channels on each side where
ours appends them. Trained on 32x32 CIFAR-10 with ImageNet's per-channel mean and std."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ablations.registry import AblationsError, Variant

PREFIX = "module."


def is_akamaster(saved: object) -> bool:
    """Whether a loaded file looks like theirs: {"state_dict": {"module.…", "module.linear.…"}}."""
    if not isinstance(saved, Mapping) or not isinstance(saved.get("state_dict"), Mapping):
        return False
    keys = list(saved["state_dict"])
    return all(k.startswith(PREFIX) for k in keys) and f"{PREFIX}linear.weight" in keys


def stream_permutations(variant: Variant) -> list[Tensor]:
    """perm[s][i]: which of their channels our stage-s stream channel i is. The two nets compute
    the same function up to this relabelling of the residual stream: at each widening their old
    channels sit after `pad` zeros (pad = new width // 4), ours first."""
    perms = [torch.arange(variant.stage_widths[0])]
    for width in variant.stage_widths[1:]:
        old = perms[-1]
        pad = width // 4
        if len(old) + 2 * pad != width:
            raise AblationsError(
                f"{variant.name}: a {len(old)}->{width} channel stage is not the symmetric "
                "planes//4 padding of akamaster's option A"
            )
        new = torch.cat([torch.arange(pad), torch.arange(pad + len(old), width)])
        perms.append(torch.cat([old + pad, new]))
    return perms


def check_variant(variant: Variant) -> None:
    theirs = (variant.family, variant.residual, variant.shortcut, variant.block)
    if theirs != ("cifar", True, "a", "basic"):
        raise AblationsError(
            f"akamaster checkpoints are option-A CIFAR ResNets (resnet20 ... resnet1202); "
            f"{variant.name} is not one: pass --weights to a checkpoint of {variant.name}"
        )


def convert(saved: Mapping[str, object], variant: Variant) -> dict[str, Tensor]:
    """Our state_dict of their checkpoint `saved`, for `variant`: every tensor that writes to or
    reads from the residual stream permuted (num_batches_tracked: 0), so the logits are equal."""
    check_variant(variant)
    state = saved["state_dict"]
    assert isinstance(state, Mapping)
    theirs = {k.removeprefix(PREFIX): v for k, v in state.items()}
    perms = stream_permutations(variant)
    ours: dict[str, Tensor] = {}

    def take(ours_name: str, their_name: str, *, out: Tensor | None, inp: Tensor | None) -> None:
        if their_name not in theirs:
            raise AblationsError(
                f"the akamaster checkpoint has no {their_name}: is it a {variant.name}?"
            )
        value = theirs[their_name]
        if out is not None:
            value = value.index_select(0, out)
        if inp is not None:
            value = value.index_select(1, inp)
        ours[ours_name] = value.clone()

    def bn(ours_prefix: str, their_prefix: str, *, perm: Tensor | None) -> None:
        for part in ("weight", "bias", "running_mean", "running_var"):
            take(f"{ours_prefix}.{part}", f"{their_prefix}.{part}", out=perm, inp=None)
        ours[f"{ours_prefix}.num_batches_tracked"] = torch.tensor(0)

    take("conv1.weight", "conv1.weight", out=perms[0], inp=None)
    bn("bn1", "bn1", perm=perms[0])
    for s, blocks in enumerate(variant.stage_blocks):
        for b in range(blocks):
            name = f"layer{s + 1}.{b}"
            into = perms[s - 1] if b == 0 and s > 0 else perms[s]
            take(f"{name}.conv1.weight", f"{name}.conv1.weight", out=None, inp=into)
            bn(f"{name}.bn1", f"{name}.bn1", perm=None)
            take(f"{name}.conv2.weight", f"{name}.conv2.weight", out=perms[s], inp=None)
            bn(f"{name}.bn2", f"{name}.bn2", perm=perms[s])
    take("fc.weight", "linear.weight", out=None, inp=perms[-1])
    take("fc.bias", "linear.bias", out=None, inp=None)
    taken = {k.replace("fc.", "linear.", 1) for k in ours if not k.endswith("batches_tracked")}
    unused = sorted(set(theirs) - taken)
    if unused:
        raise AblationsError(
            f"the akamaster checkpoint has {len(unused)} tensors a {variant.name} does not "
            f"(first: {unused[0]}): is it a deeper net?"
        )
    return ours
