"""The fast training step: no host read in the hot loop, the device-side lr schedule against
its reference, the device part of the run key, the step choice, stopping at a deadline, the
compiled step's static shapes, the graph step's warm-up and Adam flag; and, on a GPU, the CUDA
graph against the eager step and CUDA's own sync detector."""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import sys

import pandas as pd
import pytest
import torch

from ablations.config import TrainConfig, resolve_config
from ablations.data import load_dataset
from ablations.data.prepare import prepare_data
from ablations.recipes import RECIPES, resolve_recipe
from ablations.registry import AblationsError
from ablations.train import trainer as runner
from ablations.train.run import Trainer, train
from ablations.train.schedule import WARMUP_WINDOW, Schedule, lr_at
from ablations.train.steps import (
    GRAPH_WARMUP,
    InferStep,
    TrainStep,
    resolve_step,
    step_of_kind,
    timed_warmup,
    use_device,
)

CPU = torch.device("cpu")
HOST_READS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


class HostRead(AssertionError):
    pass


def _forbid_host_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way Python code reads a tensor's value on the host, and CUDA synchronisation,
    raise: on a GPU each would stall the pipeline once per iteration."""

    def refuse(name: str):
        def raiser(*args, **kwargs):
            raise HostRead(f"host read in the hot loop: Tensor.{name}")

        return raiser

    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, refuse(name))
    monkeypatch.setattr(torch.cuda, "synchronize", refuse("cuda.synchronize"))


def _trainer(tmp_path, data, *, device=CPU, **overrides) -> Trainer:
    config = resolve_config("resnet20", profile="smoke", device=device.type, **overrides)
    dataset = load_dataset(config.dataset, data=data)
    prepared = prepare_data(config, dataset, device)
    return Trainer(config, prepared, directory=tmp_path, device=device, show_progress=False)


# A deep net's warm-up with a threshold these tiny random-label runs cross, across a window
# boundary and an epoch boundary (16 batches of 32 per epoch of 512 images).
WARMUP = {"warmup_lr": 0.01, "warmup_until_error": 0.93, "iterations": 45, "eval_every": 45}
FAST = {"input_size": 8}  # the loop's logic, not the net's arithmetic, is under test


@pytest.mark.parametrize(
    ("fused", "precision", "optimizer"),
    [(False, "fp32", "sgd"), (True, "fp16", "sgd"), (True, "fp32", "adam")],
    ids=["cpu-sgd", "fused-sgd-fp16-scaler", "fused-adam"],
)
def test_hot_loop_reads_nothing_from_the_device(
    tmp_path, tiny_cifar, monkeypatch, fused, precision, optimizer
):
    """The loop between two evaluations (batch sampling and augmentation, lr selection, the
    step, the running sums, the warm-up judgement) under a ban on every host read. `fused`:
    the optimizer a GPU uses (fused kernels reading lr from a tensor, the GradScaler's inf
    check on the device), here on the CPU; the CPU's own for-loop SGD passes too. (The CPU's
    for-loop Adam reads its step count with .item(): a CPU has no device to wait for.)"""
    monkeypatch.setattr(runner, "fused_optimizer", lambda device: fused)
    trainer = _trainer(
        tmp_path, tiny_cifar, precision=precision, optimizer=optimizer, **WARMUP, **FAST
    )
    assert trainer.train_step.fused is fused
    batches = trainer.data.train.batches(0)
    with monkeypatch.context() as banned:
        _forbid_host_reads(banned)
        with pytest.raises(HostRead):  # the ban works
            float(torch.ones(()))
        trainer.advance(batches, until=22)  # past a warm-up judgement and an epoch's end
    assert trainer.state.iteration == 22
    loss, error = trainer.tally.read()  # at an evaluation the host reads, once
    assert 0 < loss < 10 and 0 <= error <= 1


def _reference_lrs(config, milestones, errors, batch):
    """The schedule as the host loop computed it before: lr_at with the warm-up judged on the
    host every WARMUP_WINDOW iterations."""
    lrs, warmup_end, window = [], None, [0, 0]
    for i, wrong in enumerate(errors):
        lrs.append(lr_at(config, i, warmup_end, milestones))
        if config.warmup_lr is not None and warmup_end is None:
            window = [window[0] + wrong, window[1] + batch]
            if (i + 1) % WARMUP_WINDOW == 0:
                if window[0] / window[1] < config.warmup_until_error:
                    warmup_end = i + 1
                window = [0, 0]
    return lrs, warmup_end


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("warmup", [True, False])
def test_device_schedule_gives_the_reference_lr_sequence(seed, warmup):
    config = resolve_config("resnet110" if warmup else "resnet56", profile="paper", device="cpu")
    milestones, batch, n = (150, 250), 125, 300  # 80% of 125 is a whole number
    rng = random.Random(seed)
    # Errors fall from ~90% so that the window error crosses 80% at a seed-dependent point;
    # one window lands exactly on the threshold (0.8 is not below 0.8).
    errors = [max(0, min(batch, round(batch * (0.95 - i / 250) + rng.randint(-8, 8))))
              for i in range(n)]  # fmt: skip
    errors[:WARMUP_WINDOW] = [100] * WARMUP_WINDOW
    expected, end = _reference_lrs(config, milestones, errors, batch)
    schedule = Schedule(config, milestones, device=CPU, dtype=torch.float64)
    got = []
    for i, wrong in enumerate(errors):
        schedule.prepare(i)
        schedule.select()
        got.append(schedule.lr.clone())
        schedule.observe(torch.tensor(wrong))
        schedule.after_step(i + 1, batch)
        if i == 140:  # an evaluation in between: the host reads, and the result is the same
            schedule.read()
    assert [float(v) for v in got] == expected  # exact, not approximate
    warmup_end, _ = schedule.read()
    assert warmup_end == end
    if warmup:
        assert end is not None and WARMUP_WINDOW < end < milestones[0]
        assert expected[0] == 0.01 and expected[end] == 0.1
    assert [schedule.lr_of(i, warmup_end) for i in range(n)] == expected
    f32 = Schedule(config, milestones, device=CPU, dtype=torch.float32)
    f32.prepare(200)
    f32.select()
    assert f32.lr.dtype == torch.float32 and float(f32.lr) == pytest.approx(expected[200])


def test_run_curves_record_the_reference_lr(tmp_path, tiny_cifar):
    settings = {**WARMUP, **FAST, "eval_every": 5, "lr_milestones": (30, 40)}
    config = resolve_config("resnet20", profile="smoke", device="cpu", **settings)
    record = train(config, out=tmp_path, data=tiny_cifar, device="cpu", show_progress=False)
    end = record.summary["warmup_end"]
    assert end is not None and end % WARMUP_WINDOW == 0
    lrs = record.curves[record.curves["metric"] == "lr"]
    _, milestones, _ = config.schedule(16)
    for row in lrs.itertuples():
        before = end if end <= row.iteration - 1 else None
        assert row.value == lr_at(config, row.iteration - 1, before, milestones)
    assert {0.01, 0.1} <= set(lrs["value"])  # warmed up, then the scheduled rate
    [start] = json.loads((record.run_dir / "env.json").read_text())
    assert start["step"] == "eager" and start["fused_optimizer"] is False


def test_device_is_part_of_the_key_where_it_differs_from_cpu():
    cpu = resolve_config("resnet20", profile="cpu", device="cpu")
    cuda = resolve_config("resnet20", profile="cpu", device="cuda:1")
    assert cuda.device == "cuda" and cpu.device == "cpu"
    assert cuda.key != cpu.key and cuda.run_id != cpu.run_id
    # A CPU key is what it was before the field existed (the smoke profile's, pinned from the
    # commit before it), so runs made before the field stay found.
    smoke = resolve_config("resnet20", profile="smoke", device="cpu")
    assert smoke.run_id == "resnet20_cifar10_smoke_s0_06bf4ea0"
    legacy = {k: v for k, v in cpu.to_json().items() if k not in ("device", "step")}
    assert TrainConfig.from_json(legacy) == cpu
    assert resolve_config("resnet56", profile="paper", device="cuda").precision == "bf16"
    with pytest.raises(AblationsError, match="device 'cuda:0' must be a device type"):
        TrainConfig(variant="resnet20", device="cuda:0")


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipes_run_fast_on_a_gpu_and_keep_their_cpu_keys(name):
    cpu = resolve_recipe(name, profile="cpu", device="cpu")
    gpu = resolve_recipe(name, profile="cpu", device="cuda")
    assert (cpu.precision, cpu.channels_last) == ("fp32", False)
    assert (gpu.precision, gpu.channels_last, gpu.device) == ("bf16", True, "cuda")
    assert gpu.run_id != cpu.run_id
    pinned = TrainConfig(**{**cpu.to_json(), "precision": "fp32"})
    assert pinned.key == cpu.key  # fp32 is the default: recorded, not hashed, on the CPU


def test_step_is_execution_only_and_resolves_per_device():
    base = resolve_config("resnet20", profile="cpu", device="cuda")
    for step in ("eager", "graph"):
        assert TrainConfig(**{**base.to_json(), "step": step}).key == base.key
    gpu = torch.device("cuda")
    assert resolve_step("auto", device=gpu, precision="bf16", compile=False) == ("graph", "")
    assert resolve_step("auto", device=CPU, precision="fp32", compile=False) == ("eager", "")
    kind, note = resolve_step("graph", device=gpu, precision="fp16", compile=False)
    assert kind == "eager" and "fp16" in note
    assert resolve_step("auto", device=gpu, precision="bf16", compile=True)[0] == "eager"
    with pytest.raises(AblationsError, match="needs a CUDA device"):
        resolve_step("graph", device=CPU, precision="fp32", compile=False)
    kind, note = resolve_step("auto", device=gpu, precision="bf16", compile=False, ddp=True)
    assert kind == "eager" and "DDP" in note


def test_a_cpu_run_never_imports_the_cuda_graph_machinery():
    """ablations.gpu.graph is imported only where a graph step is built: the trainer, the
    throughput child and an eager training step taken on the CPU leave it unloaded."""
    code = (
        "import sys, torch\n"
        "import ablations.train.trainer\n"
        "from ablations.measure.throughput import Setting, make_step\n"
        "make_step(Setting(variant='resnet20'), 2, torch.device('cpu'))()\n"
        "assert 'ablations.gpu.graph' not in sys.modules, 'graph machinery imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_run_trains_only_on_the_device_kind_of_its_key(tmp_path, tiny_cifar):
    config = resolve_config("resnet20", profile="smoke", device="cuda")
    with pytest.raises(AblationsError, match="is a cuda run"):
        train(config, out=tmp_path, data=tiny_cifar, device="cpu", show_progress=False)
    assert not (tmp_path / config.run_id).exists()


def test_deadline_stops_at_a_checkpoint_and_resumes_to_the_same_result(tmp_path, tiny_cifar):
    config = resolve_config("resnet20", profile="smoke", device="cpu")
    reference = train(config, out=tmp_path / "ref", data=tiny_cifar, show_progress=False)
    stopped = train(config, out=tmp_path / "run", data=tiny_cifar, show_progress=False,
                    deadline=0.0)  # fmt: skip
    assert stopped.status == "stopped" and stopped.summary["iterations"] == config.eval_every
    assert (stopped.run_dir / "checkpoint.pt").exists()
    assert not (stopped.run_dir / "summary.json").exists()
    resumed = train(config, out=tmp_path / "run", data=tiny_cifar, show_progress=False)
    timing = ["images_per_s", "train_s"]
    pd.testing.assert_frame_equal(
        resumed.curves[~resumed.curves["metric"].isin(timing)].reset_index(drop=True),
        reference.curves[~reference.curves["metric"].isin(timing)].reset_index(drop=True),
    )


def test_cli_time_limit_exits_zero_with_a_resume_line(tmp_path, tiny_cifar, capsys):
    from ablations.cli import main

    argv = ["train", "resnet20", "--profile", "smoke", "--device", "cpu", "--data",
            str(tiny_cifar), "--out", str(tmp_path), "--step", "eager"]  # fmt: skip
    assert main([*argv, "--time-limit", "0s"]) == 0
    assert "stopped by --time-limit at iteration 4 of 12" in capsys.readouterr().out
    assert main(argv) == 0  # resumes, with the same run id (the step is execution-only)
    assert "complete: train error" in capsys.readouterr().out


def test_a_gpu_named_by_index_becomes_current_where_work_starts(monkeypatch, tmp_path, tiny_cifar):
    made_current = []
    monkeypatch.setattr(torch.cuda, "set_device", made_current.append)
    use_device(torch.device("cuda", 1))
    use_device(torch.device("cuda"))  # the current one: left as it is
    use_device(CPU)
    assert made_current == [torch.device("cuda", 1)]
    monkeypatch.setattr(runner.steps, "use_device", made_current.append)
    _trainer(tmp_path, tiny_cifar, **FAST)
    assert made_current[-1] == CPU  # a run makes its device current when it opens


# --- on a GPU ----------------------------------------------------------------------------------


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("precision", "optimizer"), [("bf16", "sgd"), ("fp32", "sgd"), ("bf16", "adam")]
)  # adam: the tutorials' recipes, fused and capturable in the graph
def test_graph_step_replays_the_eager_step_exactly(tmp_path, tiny_cifar, precision, optimizer):
    gpu = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    results = {}
    for step in ("eager", "graph", "eager"):
        trainer = _trainer(tmp_path / step, tiny_cifar, device=gpu, precision=precision,
                           step=step, optimizer=optimizer, **WARMUP)  # fmt: skip
        assert trainer.step_kind == step
        trainer.advance(trainer.data.train.batches(0), until=40)
        torch.cuda.synchronize()
        results.setdefault(step, []).append((_weights(trainer), trainer.tally.read(),
                                             trainer.schedule.read()))  # fmt: skip
    ((graph, graph_tally, graph_warm),) = results["graph"]
    (eager, eager_tally, eager_warm), (again, _, _) = results["eager"]
    deterministic = all(torch.equal(eager[k], again[k]) for k in eager)
    if deterministic:  # cuDNN may pick non-deterministic kernels; then compare within them
        assert all(torch.equal(graph[k], eager[k]) for k in eager)
        assert graph_tally == eager_tally and graph_warm == eager_warm
    else:
        for k in eager:
            spread = (eager[k].double() - again[k].double()).abs().max()
            assert (graph[k].double() - eager[k].double()).abs().max() <= 4 * spread + 1e-6, k


@pytest.mark.gpu
def test_gpu_hot_loop_never_synchronises(tmp_path, tiny_cifar):
    """CUDA's own detector: any synchronising call in the loop raises. Turned on after the
    graph is captured (capture itself synchronises once); the loop crosses an epoch."""
    gpu = torch.device("cuda")
    trainer = _trainer(tmp_path, tiny_cifar, device=gpu, precision="bf16", **WARMUP)
    assert trainer.step_kind == "graph"
    batches = trainer.data.train.batches(0)
    trainer.advance(batches, until=6)
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer.advance(batches, until=40)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.step_kind == "graph", trainer.step_note
    assert trainer.state.iteration == 40


@pytest.mark.parametrize(
    ("options", "device", "expected"),
    [
        ({"fused": True}, CPU, "SGD fused"),
        ({"foreach": True}, CPU, "SGD foreach"),
        ({}, CPU, "SGD for-loop"),  # torch's default on a CPU
        ({}, torch.device("cuda"), "SGD foreach"),  # and on a GPU (decided without one here)
    ],
)
def test_the_optimizer_implementation_is_named(options, device, expected):
    from ablations.train.steps import optimizer_kind

    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, **options)
    assert optimizer_kind(sgd, device) == expected


# --- torch.compile, the timed warm-up, Adam's capturable flag -----------------------------------


def test_a_compiled_step_has_static_shapes_and_a_recompile_limit_that_raises(monkeypatch):
    """Static shapes: a second batch size recompiles for that size, as in a fresh process, not
    with a dynamic batch dimension; past the recompile limit dynamo raises, not runs eagerly."""
    import torch._dynamo.config as dynamo

    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: calls.append(kwargs) or model)
    model = torch.nn.Linear(2, 2)
    # dynamo's own patch restores the flag (pytest's monkeypatch would delete a config entry);
    # torch releases without the flag run past the limit as they must.
    strict = hasattr(dynamo, "fail_on_recompile_limit_hit")
    with dynamo.patch(fail_on_recompile_limit_hit=False) if strict else contextlib.nullcontext():
        TrainStep(model, device=CPU, compile=True)
        InferStep(model, device=CPU, compile=True)
        assert calls == [{"dynamic": False}] * 2
        assert not strict or dynamo.fail_on_recompile_limit_hit is True
    TrainStep(model, device=CPU)  # not compiled: torch.compile is not called
    assert len(calls) == 2


def test_a_graph_step_warms_up_past_its_capture():
    assert [timed_warmup("graph", w) for w in (0, 3, 4, 30)] == [GRAPH_WARMUP + 1] * 3 + [30]
    assert [timed_warmup("eager", w) for w in (0, 3, 30)] == [0, 3, 30]


def _adam(*, capturable_graph: bool, monkeypatch) -> TrainStep:
    torch.manual_seed(0)
    train = TrainStep(torch.nn.Linear(4, 3), device=CPU, optimizer="adam", fused=True)
    if capturable_graph:  # the graph step's setting, with the CUDA graph itself left out
        monkeypatch.setattr("ablations.gpu.graph.GraphStep", lambda step, device: step)
        step_of_kind(train, "graph", train=train)
    return train


def test_only_a_graph_step_makes_adam_capturable_and_its_numbers_stay_the_same(monkeypatch):
    eager, graph = (_adam(capturable_graph=g, monkeypatch=monkeypatch) for g in (False, True))
    assert [g["capturable"] for g in eager.optimizer.param_groups] == [False]
    assert [g["capturable"] for g in graph.optimizer.param_groups] == [True]
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    for _ in range(3):
        eager(x, y)
        graph(x, y)
    for mine, theirs in zip(eager.model.parameters(), graph.model.parameters(), strict=True):
        assert torch.equal(mine, theirs)  # the fused kernel ignores the flag
    # A checkpoint carries the optimizer's state, not how the step that saved it ran.
    eager.load_state(graph.optimizer.state_dict(), graph.scaler.state_dict())
    assert [g["capturable"] for g in eager.optimizer.param_groups] == [False]
    graph.load_state(eager.optimizer.state_dict(), eager.scaler.state_dict())
    assert [g["capturable"] for g in graph.optimizer.param_groups] == [True]
