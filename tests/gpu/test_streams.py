"""Several runs trained at once in one process (ablations.gpu.streams) end exactly as each
does alone: on a CPU the runs take turns, which is the CPU path of the GPU's one-stream-per-run
training. Also: slots are refilled in order, finished runs are not retrained, the deadline
stops runs at a checkpoint and a second call resumes them, TF32 runs never fly beside others,
compiled runs never fly together, and a run's first and last work runs alone."""

from __future__ import annotations

import contextlib
import json
import time

import pandas as pd
import pytest
import torch

from ablations import gpu
from ablations.config import resolve_config
from ablations.gpu import streams
from ablations.registry import AblationsError
from ablations.train.run import train

TIMING = {"images_per_s", "train_s"}  # wall-clock metrics differ between identical runs


def _smoke(variant: str, **overrides):
    return resolve_config(variant, profile="smoke", device="cpu", **overrides)


def _deterministic(curves: pd.DataFrame) -> pd.DataFrame:
    return curves[~curves["metric"].isin(TIMING)].reset_index(drop=True)


def _weights(record) -> dict[str, torch.Tensor]:
    return torch.load(record.run_dir / "model.pt", weights_only=True)


def _together(configs, out, data, **kwargs):
    return streams.train_together(configs, out=out, data=data, device="cpu",
                                   show_progress=False, **kwargs)  # fmt: skip


@pytest.mark.slow
def test_runs_at_once_end_as_each_alone(tmp_path, tiny_cifar):
    # Different depths (so intervals interleave unevenly), two seeds of one net, and a run
    # whose evaluation interval differs from the others'.
    configs = [_smoke("resnet20"), _smoke("plain20"), _smoke("resnet20", seed=1),
               _smoke("resnet32", eval_every=3)]  # fmt: skip
    seen: list[str] = []
    records = _together(configs, tmp_path / "together", tiny_cifar, jobs=3,
                        on_record=lambda r: seen.append(r.config.run_id))  # fmt: skip
    assert sorted(r.config.run_id for r in records) == sorted(c.run_id for c in configs)
    assert seen == [r.config.run_id for r in records]  # handed over as each ended
    for record in records:
        assert record.status == "complete"
        alone = train(record.config, out=tmp_path / "alone", data=tiny_cifar, device="cpu",
                      show_progress=False)  # fmt: skip
        pd.testing.assert_frame_equal(_deterministic(record.curves), _deterministic(alone.curves))
        mine, theirs = _weights(record), _weights(alone)
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
        starts = json.loads((record.run_dir / "env.json").read_text())
        assert starts[-1]["runs_at_once"] == 3
        assert json.loads((alone.run_dir / "env.json").read_text())[-1]["runs_at_once"] == 1
    # The fourth run took the first slot that freed: it ended after the others had begun to end.
    assert records[-1].config.run_id == configs[3].run_id


def test_finished_runs_are_returned_not_retrained(tmp_path, tiny_cifar, monkeypatch):
    config = _smoke("resnet20")
    first = train(config, out=tmp_path, data=tiny_cifar, device="cpu", show_progress=False)
    monkeypatch.setattr("ablations.train.run.prepare_data",
                        lambda *a, **k: pytest.fail("retrained"))  # fmt: skip
    [again] = _together([config], tmp_path, tiny_cifar, jobs=2)
    assert again.summary == first.summary


def test_deadline_stops_runs_at_a_checkpoint_and_a_second_call_resumes(tmp_path, tiny_cifar):
    configs = [_smoke("resnet20"), _smoke("plain20"), _smoke("resnet20", seed=1)]
    stopped = _together(configs, tmp_path, tiny_cifar, jobs=2, deadline=time.monotonic() - 1)
    # Past the deadline from the start: only the first run starts (every call makes progress),
    # and it stops at its first checkpoint; the others are not started.
    assert [(r.config.run_id, r.status) for r in stopped] == [(configs[0].run_id, "stopped")]
    assert stopped[0].summary["iterations"] == configs[0].eval_every
    assert (tmp_path / configs[0].run_id / "checkpoint.pt").exists()
    assert not (tmp_path / configs[1].run_id).exists()
    resumed = _together(configs, tmp_path, tiny_cifar, jobs=2)
    assert {r.status for r in resumed} == {"complete"} and len(resumed) == 3
    alone = train(configs[0], out=tmp_path / "alone", data=tiny_cifar, device="cpu",
                  show_progress=False)  # fmt: skip
    [first] = [r for r in resumed if r.config.run_id == configs[0].run_id]
    pd.testing.assert_frame_equal(_deterministic(first.curves), _deterministic(alone.curves))


def test_tf32_runs_never_fly_beside_others(tmp_path, tiny_cifar, monkeypatch):
    """TF32 is a process-wide flag: a tf32 run waits until the runs in flight have ended, and
    the runs after it wait for it. (CPU configs cannot be tf32, so the grouping is checked on
    the open/end order with tf32_group patched to read the seed instead.)"""
    monkeypatch.setattr(streams, "tf32_group", lambda config: config.seed == 1)
    events: list[str] = []
    opened = streams.open_run

    def logged_open(config, **kwargs):
        events.append(f"open {config.seed}")
        return opened(config, **kwargs)

    monkeypatch.setattr(streams, "open_run", logged_open)
    configs = [_smoke("resnet20", seed=s) for s in (0, 2, 1, 3)]
    _together(configs, tmp_path, tiny_cifar, jobs=4,
              on_record=lambda r: events.append(f"end {r.config.seed}"))  # fmt: skip
    assert events.index("open 1") > max(events.index("end 0"), events.index("end 2"))
    assert events.index("open 3") > events.index("end 1")


def test_compiled_runs_never_fly_together_and_each_starts_from_an_empty_cache(
    tmp_path, tiny_cifar, monkeypatch, dynamo_resets
):
    """Every ResNet runs one `forward`, so a process's compiled runs share dynamo's cache: a
    compiled run waits for the compiled run in flight to end, and dynamo is reset as it
    opens. (torch.compile is patched to leave the model eager: the order is under test.)"""
    events = dynamo_resets
    opened = streams.open_run

    def logged_open(config, **kwargs):
        events.append(f"open {config.seed}")
        return opened(config, **kwargs)

    monkeypatch.setattr(streams, "open_run", logged_open)
    configs = [_smoke("resnet20", seed=0, compile=True), _smoke("resnet20", seed=1),
               _smoke("resnet20", seed=2, compile=True)]  # fmt: skip
    _together(configs, tmp_path, tiny_cifar, jobs=3,
              on_record=lambda r: events.append(f"end {r.config.seed}"))  # fmt: skip
    assert events[:3] == ["open 0", "reset", "open 1"]  # an eager run flies beside a compiled one
    assert events.index("open 2") > events.index("end 0")
    assert events[events.index("open 2") + 1] == "reset" and events.count("reset") == 2


class RecordedStream:
    """A run's stream on a CPU: it records where the run waited for it."""

    device = torch.device("cuda", 0)

    def __init__(self, events: list[tuple[str, int]], trainer) -> None:
        self.events, self.trainer = events, trainer

    def synchronize(self) -> None:
        self.events.append(("alone until", self.trainer.state.iteration))


def test_a_runs_first_step_first_evaluation_and_final_evaluations_run_alone(
    tmp_path, tiny_cifar, monkeypatch
):
    """cuDNN autotunes each new shape: the first step, the first evaluation and the end of the
    last interval (the test split, 10-crop and multi-scale views) wait for the GPU to be idle
    and end before the other runs go on; the steps and evaluations in between do not."""
    events: list[tuple[str, int]] = []
    trainer = streams.open_run(_smoke("resnet20"), out=tmp_path, data=tiny_cifar,
                               device="cpu", show_progress=False)  # fmt: skip
    assert (trainer.iterations, trainer.eval_every) == (12, 4)
    trainer.begin(position=0)
    monkeypatch.setattr(streams, "on", lambda stream: contextlib.nullcontext())

    def idle(device=None) -> None:  # the other runs' queued work ends first
        events.append(("alone from", trainer.state.iteration))

    monkeypatch.setattr(torch.cuda, "synchronize", idle)
    run = streams._InFlight(trainer, RecordedStream(events, trainer), position=0)
    while run.step() is None:
        pass
    assert events == [("alone from", 0), ("alone until", 1), ("alone from", 4),
                      ("alone until", 4), ("alone from", 12), ("alone until", 12)]  # fmt: skip


def test_bad_jobs_is_refused():
    with pytest.raises(AblationsError, match="jobs must be >= 1"):
        streams.train_together([], jobs=0, out=None)  # type: ignore[arg-type]


@pytest.mark.gpu
def test_gpu_runs_at_once_on_their_streams_end_as_each_alone(tmp_path, tiny_cifar):
    """On a GPU each run's graph replays on its own stream: the runs must end where one alone
    does (exactly, where cuDNN's kernels are deterministic; else within alone's own spread)."""
    configs = [resolve_config(v, profile="smoke", device="cuda", precision="bf16",
                              channels_last=True) for v in ("resnet20", "plain20")]  # fmt: skip
    at_once = streams.train_together(configs, jobs=2, out=tmp_path / "together",
                                      data=tiny_cifar, show_progress=False)  # fmt: skip
    for record in at_once:
        starts = json.loads((record.run_dir / "env.json").read_text())
        assert starts[-1]["step"] == "graph" and starts[-1]["runs_at_once"] == 2
        alone, again = (train(record.config, out=tmp_path / name, data=tiny_cifar,
                              show_progress=False) for name in ("alone", "again"))  # fmt: skip
        mine, theirs, repeat = _weights(record), _weights(alone), _weights(again)
        for k in theirs:
            spread = (theirs[k].double() - repeat[k].double()).abs().max()
            assert (mine[k].double() - theirs[k].double()).abs().max() <= 4 * spread + 1e-6, k


# --- the process's streams (ablations.gpu.stream) ----------------------------------------------


class PooledStream:
    """torch.cuda.Stream as CUDA's pool hands it out: `pool` handles in turn."""

    made = 0
    pool = 4

    def __init__(self, device: torch.device | None = None) -> None:
        self.cuda_stream = PooledStream.made % PooledStream.pool
        PooledStream.made += 1

    def wait_stream(self, other: object) -> None:
        pass


@pytest.fixture
def pooled(monkeypatch):
    monkeypatch.setattr(gpu, "_STREAMS", {})
    monkeypatch.setattr(PooledStream, "made", 0)
    monkeypatch.setattr(torch.cuda, "Stream", PooledStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)


def test_each_role_and_slot_has_one_stream_for_the_process(pooled):
    cuda = torch.device("cuda", 0)
    slots = [streams.stream_for(cuda, slot=i) for i in range(3)]
    assert len({s.cuda_stream for s in slots}) == 3
    # Later runs in a slot, and later evaluations, take the streams made before.
    assert streams.stream_for(cuda, slot=1) is slots[1]
    assert gpu.stream(cuda, "prefetch") is gpu.stream(cuda, "prefetch")
    assert PooledStream.made == 4
    assert streams.stream_for(torch.device("cpu"), slot=0) is None


def test_a_stream_that_would_be_another_roles_is_refused(pooled):
    cuda = torch.device("cuda", 0)
    for i in range(PooledStream.pool):
        streams.stream_for(cuda, slot=i)
    with pytest.raises(AblationsError, match=r"'warm-up' would share 'run 0'.*fewer runs at once"):
        gpu.stream(cuda, "warm-up")
