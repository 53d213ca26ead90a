"""One run across processes (torchrun, or a Slurm job's tasks): the process group, the rank
questions the trainer asks, each rank's shard of the global batch, and the DDP wrap with
synchronised BN. docs/clusters.md says why the step equals one process's."""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import replace
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ablations.config import TrainConfig
from ablations.registry import AblationsError

# The autograd-aware all-reduce GlobalBatchNorm2d needs has no non-deprecated public spelling yet.
warnings.filterwarnings("ignore", message="torch.distributed.nn.functional.all_reduce is")


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Only the main process writes (curves, checkpoints, summary, env, weights)."""
    return rank() == 0


def launched_world() -> int:
    """The world size torchrun (or a submitit job of several tasks) announced, before setup."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str | None = None) -> torch.device | None:
    """Join the process group torchrun announced; returns this rank's GPU (None on CPUs). A GPU
    named by index is refused: every rank would train on it, over gloo."""
    if launched_world() <= 1 or active():
        return None
    if device is not None and device.startswith("cuda:"):
        raise AblationsError(f"--device {device} under torchrun: each rank takes its GPU from "
                             "LOCAL_RANK; use --device cuda or auto")  # fmt: skip
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device in (None, "auto", "cuda")
    timeout = timedelta(minutes=30)
    if not cuda:  # gloo for CPUs (CI tests this path)
        dist.init_process_group("gloo", timeout=timeout)
        return None
    # This rank's GPU is current before the group exists (no rank opens a context on GPU 0),
    # and NCCL is told it: it binds its communicator to that GPU at once.
    gpu = torch.device("cuda", local)
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", timeout=timeout, device_id=gpu)
    return gpu


def teardown() -> None:
    if active():
        dist.destroy_process_group()


def for_world(config: TrainConfig, *, sync_bn: bool, world: int | None = None) -> TrainConfig:
    """The config a run of `world` processes trains: without --sync-bn, `bn_batch` records the
    per-rank BN batch (and the run key changes); with it, or for one process, `config` itself."""
    g = launched_world() if world is None else world
    if g <= 1 or sync_bn:
        return config
    _splits(config, g, choose="a --nproc-per-node")
    return replace(config, bn_batch=config.batch_size // g)


def _splits(config: TrainConfig, g: int, *, choose: str) -> None:
    if config.batch_size % g:
        raise AblationsError(f"batch size {config.batch_size} does not split over {g} processes; "
                             f"choose {choose} that divides it")  # fmt: skip


def check_world(config: TrainConfig) -> bool:
    """Whether this world must synchronise BN to train `config` (always for `bn_batch` None and
    several processes); refuses a world whose BN statistics are not those of the run key."""
    g = world_size()
    _splits(config, g, choose="a world size")
    if config.bn_batch is None:
        return g > 1
    if config.bn_batch * g != config.batch_size:
        need = config.batch_size // config.bn_batch
        raise AblationsError(
            f"{config.run_id} normalises BN over {config.bn_batch} images per process: run it "
            f"on {need} processes (torchrun --nproc-per-node {need}) without --sync-bn"
        )
    return False


def shard(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """This rank's contiguous slice of a global batch (the whole batch for one process)."""
    size = len(x) // world_size()
    lo = rank() * size
    return x[lo : lo + size], y[lo : lo + size]


def part() -> tuple[int, int]:
    """(rank, world size): which contiguous share of the evaluation images this rank takes."""
    return rank(), world_size()


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BN statistics) on every rank: the shares evaluate the model it saves."""
    if world_size() > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def wrap(model: nn.Module, *, sync_bn: bool, device: torch.device) -> nn.Module:
    """DistributedDataParallel over `model` (its BN synchronised first when asked), or `model`
    itself for one process. Checkpoints hold `model`'s state_dict, the same for any world.
    Synchronised BN keeps every rank's buffers equal, so DDP's broadcast of them at each forward
    is dropped then; per-rank BN keeps it."""
    if not active():
        return model
    if sync_bn:
        convert_sync_bn(model, device=device)
    ids = [device.index] if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel
    return ddp(model, device_ids=ids, **_forward_buffer_sync(ddp, on=not sync_bn))


def _forward_buffer_sync(ddp: type[nn.Module], *, on: bool) -> dict[str, Any]:
    """DDP's option to broadcast rank 0's buffers at every forward, by this torch's name for it:
    later releases call it `forward_sync_buffers` and deprecate `broadcast_buffers`."""
    later = "forward_sync_buffers" in inspect.signature(ddp).parameters
    return {"forward_sync_buffers" if later else "broadcast_buffers": on}


def convert_sync_bn(model: nn.Module, *, device: torch.device) -> None:
    """Synchronise every BatchNorm2d in place: nn.SyncBatchNorm on a GPU, else GlobalBatchNorm2d."""
    kind: type[_BatchNorm] = nn.SyncBatchNorm if device.type == "cuda" else GlobalBatchNorm2d
    for parent in list(model.modules()):
        for name, bn in list(parent.named_children()):
            if not isinstance(bn, nn.BatchNorm2d) or isinstance(bn, kind):
                continue
            new = kind(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
            if bn.affine:
                with torch.no_grad():
                    new.weight, new.bias = bn.weight, bn.bias
            new.running_mean, new.running_var = bn.running_mean, bn.running_var
            new.num_batches_tracked = bn.num_batches_tracked
            setattr(parent, name, new.train(bn.training))


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over the global batch (all-reduced sums, autograd-aware: the gradient is the
    global batch's too), running statistics as BatchNorm2d's; in eval mode, BatchNorm2d itself."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or world_size() == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = (0, 2, 3)
        count = x.numel() // x.shape[1] * world_size()
        mean = all_reduce(x.sum(dims)) / count
        centred = x - mean.view(1, -1, 1, 1)
        var = all_reduce((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            assert self.running_mean is not None
            assert self.running_var is not None
            assert self.num_batches_tracked is not None
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * count / (count - 1), m)
                self.num_batches_tracked.add_(1)
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out


def reduce_sum(value: Tensor) -> Tensor:
    """A device tensor summed over the ranks (no host read); the tensor itself for one process."""
    if world_size() == 1:
        return value
    total = value.clone()
    dist.all_reduce(total)
    return total


def sum_all(*values: Tensor | float) -> list[float]:
    """Sums over the ranks of device scalars or ints, as floats (at report time, never per step).
    The values are stacked where the tensors live and the host reads them once."""
    device = next((v.device for v in values if isinstance(v, Tensor)), torch.device("cpu"))
    stacked = torch.stack([_double(v, device) for v in values])
    if world_size() > 1:
        stacked = stacked.to(_collective_device())
        dist.all_reduce(stacked)
    return stacked.tolist()


def _double(value: Tensor | float, device: torch.device) -> Tensor:
    """A float64 scalar on `device`; a host number is filled in there, without a copy."""
    if isinstance(value, Tensor):
        return value.detach().to(device=device, dtype=torch.float64).reshape(())
    return torch.full((), float(value), dtype=torch.float64, device=device)


def max_all(value: int) -> int:
    """The largest of an int over the ranks (the value itself for one process)."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def _collective_device() -> str:
    """NCCL reduces on this rank's GPU, gloo on the CPU."""
    return f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
