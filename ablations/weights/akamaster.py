"""akamaster/pytorch_resnet_cifar10 checkpoints (resnet20.th ... resnet1202.th) as our weights.

Their files: `torch.save({"state_dict": model.state_dict(), "best_prec1": ...})` of a
`nn.DataParallel(resnet20())`, so every key starts with "module."; the head is `linear`; the
files predate BatchNorm's `num_batches_tracked`. Their net is the paper's CIFAR ResNet with the
option-A shortcut written as

    F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))

which puts the old channels in the middle of the wider stream, with zeros before and after;
ours (ablations.models.resnet.ZeroPadShortcut) keeps them first and appends the zeros. The two
nets compute the same function up to a relabelling of the residual stream's channels: stage
s's stream channel i in ours is channel perm_s[i] in theirs. So the conversion permutes the
channels of every tensor that writes to or reads from the stream (the stem's conv and BN, each
block's conv2/bn2 outputs and conv1 inputs, the linear layer's inputs); the block-internal
channels are untouched. Logits are then equal, and our architecture is unchanged.

They trained with per-channel ImageNet mean/std on 32x32 CIFAR-10 (their trainer.py:
`transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])`).
"""

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
    return (
        bool(keys)
        and all(k.startswith(PREFIX) for k in keys)
        and (f"{PREFIX}linear.weight" in keys)
    )


def stream_permutations(variant: Variant) -> list[Tensor]:
    """perm[s][i]: which of their channels our stage-s stream channel i is. Stage 1 is the
    identity; at each widening their old channels sit after `pad` zeros (pad = new width // 4,
    on each side), ours first, and the new channels (zeros at the shortcut) follow in order."""
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
    if (
        variant.family != "cifar"
        or not variant.residual
        or variant.shortcut != "a"
        or (variant.block != "basic")
    ):
        raise AblationsError(
            f"akamaster checkpoints are option-A CIFAR ResNets (resnet20 ... resnet1202); "
            f"{variant.name} is not one: pass --weights to a checkpoint of {variant.name}"
        )


def convert(saved: Mapping[str, object], variant: Variant) -> dict[str, Tensor]:
    """Our state_dict (keys of ablations.models.ResNet, BN's num_batches_tracked set to 0) of
    their checkpoint `saved`, for `variant`."""
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
    unused = sorted(set(theirs) - _their_names(ours))
    if unused:
        raise AblationsError(
            f"the akamaster checkpoint has {len(unused)} tensors a {variant.name} does not "
            f"(first: {unused[0]}): is it a deeper net?"
        )
    return ours


def _their_names(ours: Mapping[str, Tensor]) -> set[str]:
    return {
        "linear." + k.removeprefix("fc.") if k.startswith("fc.") else k
        for k in ours
        if not k.endswith("num_batches_tracked")
    }
