"""Layer responses (paper Fig. 7): which modules, the statistic, and the run-directory wrapper."""

from __future__ import annotations

import math
import re
import shutil

import pandas as pd
import pytest
import torch
from torch import nn

from ablations import create_model
from ablations.config import resolve_config
from ablations.data import load_dataset
from ablations.measure.responses import layer_responses, response_modules, responses_for_run
from ablations.registry import AblationsError, list_variants
from ablations.results.schemas import RESPONSES
from ablations.train.run import train

COUNTS = {"resnet20": 19, "plain20": 19, "resnet20-k7": 18, "resnet50": 16, "preresnet20": 19,
          "preresnet164": 55}  # fmt: skip


def _traced(model: nn.Module) -> list[str]:
    """The response of every 3x3 conv in forward order, read off the traced graph (an independent
    route to the answer: data flow, not module names): the BN the conv's output feeds when that is
    its only use (BN before ReLU or addition), else the conv itself (pre-activation)."""
    modules = dict(model.named_modules())
    found = []
    for node in torch.fx.symbolic_trace(model).graph.nodes:
        conv = modules.get(node.target) if node.op == "call_module" else None
        if not (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3)):
            continue
        users = list(node.users)
        bn = modules.get(users[0].target) if users[0].op == "call_module" else None
        found.append(users[0].target if len(users) == 1 and isinstance(bn, nn.BatchNorm2d)
                     else node.target)  # fmt: skip
    return found


@pytest.mark.parametrize(("name", "count"), COUNTS.items())
def test_response_modules_are_the_3x3_convs_outputs(name, count):
    model = create_model(name)
    found = response_modules(model)
    assert len(found) == count
    assert [n for n, _ in found] == _traced(model)
    named = dict(model.named_modules())
    for qualified, module in found:
        assert named[qualified] is module
        assert "downsample" not in qualified


@pytest.mark.parametrize("name", list_variants())
def test_every_variant_names_its_responses_as_its_graph_does(name):
    with torch.device("meta"):  # shapes only: tracing runs no arithmetic
        model = create_model(name)
    assert [n for n, _ in response_modules(model)] == _traced(model)


def test_existing_names_are_kept():
    """Stored response rows name their modules; the post-activation nets' names stay theirs."""
    names = [n for n, _ in response_modules(create_model("resnet20"))]
    assert names[:4] == ["bn1", "layer1.0.bn1", "layer1.0.bn2", "layer1.1.bn1"]
    assert [n for n, _ in response_modules(create_model("resnet50"))][:2] == [
        "layer1.0.bn2", "layer1.1.bn2",
    ]  # fmt: skip
    preact = [n for n, _ in response_modules(create_model("preresnet20"))]
    assert preact[:3] == ["conv1", "layer1.0.bn2", "layer1.0.conv2"]


def test_plain_and_residual_nets_share_response_names():
    assert [n for n, _ in response_modules(create_model("plain20"))] == [
        n for n, _ in response_modules(create_model("resnet20"))
    ]


@pytest.mark.parametrize("name", ["resnet20-c", "resnet18", "resnet50-v1", "resnet18-k3"])
def test_projection_and_1x1_bns_are_not_responses(name):
    model = create_model(name)
    assert [n for n, _ in response_modules(model)] == _traced(model)


def _batches(n=2, size=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 16, 16, generator=g), torch.zeros(size, dtype=torch.long))
            for _ in range(n)]  # fmt: skip


def _direct_std(model, batches):
    """The definition, computed the obvious way: keep every response, pool, take the std."""
    modules = response_modules(model)
    kept: dict[str, list[torch.Tensor]] = {name: [] for name, _ in modules}

    def keep(name):
        # A copy: the in-place ReLU after a BN overwrites its output.
        return lambda module, inputs, output: kept[name].append(output.detach().clone())

    handles = [m.register_forward_hook(keep(name)) for name, m in modules]
    model.eval()
    with torch.no_grad():
        for x, _ in batches:
            model(x)
    for h in handles:
        h.remove()
    return [torch.cat([t.flatten() for t in kept[n]]).double().std(unbiased=False).item()
            for n, _ in modules]  # fmt: skip


def _trained_like(name):
    """The net with non-trivial BN statistics and affine parameters, so that eval-mode BN is
    not the identity-like init and the test would see a train-mode or wrong-module slip."""
    torch.manual_seed(0)
    model = create_model(name)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for t in (m.weight.data, m.bias.data, m.running_mean):
                t.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture
def trained_like():
    return _trained_like("resnet20")


@pytest.mark.parametrize("name", ["resnet20", "preresnet20"])
def test_layer_responses_equal_the_direct_computation(name):
    model = _trained_like(name)
    batches = _batches()
    got = layer_responses(model, batches)
    assert list(got.columns) == ["layer", "module", "std"]
    assert got["layer"].tolist() == list(range(1, 20))
    assert got["module"].tolist() == [n for n, _ in response_modules(model)]
    expected = _direct_std(model, batches)
    assert got["std"].tolist() == pytest.approx(expected, rel=1e-6)


def test_batch_order_does_not_matter(trained_like):
    batches = _batches(n=3)
    a = layer_responses(trained_like, batches)
    b = layer_responses(trained_like, batches[::-1])
    assert b["std"].tolist() == pytest.approx(a["std"].tolist(), rel=1e-9)


def test_uses_running_statistics_and_restores_modes_and_hooks(trained_like):
    model = trained_like.train()
    model.layer2.eval()  # a mixed state must come back as it was
    modes = {n: m.training for n, m in model.named_modules()}
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    layer_responses(model, _batches())
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert all(torch.equal(v, stats[k]) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks for m in model.modules())


HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def test_no_host_reads_while_batches_run(trained_like, monkeypatch):
    """The sums stay on the device until the last batch: on a GPU a host read per batch would
    stall the pipeline (this CPU check catches a read slipped into the hook)."""
    running = False

    def guard(name):
        original = getattr(torch.Tensor, name)

        def method(self, *args, **kwargs):
            if running:
                raise AssertionError(f"Tensor.{name} called while batches run")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, method)

    def batches():
        nonlocal running
        running = True
        yield from _batches(n=3)
        running = False

    for name in HOST_READS:
        guard(name)
    assert len(layer_responses(trained_like, batches())) == 19


class Boom(Exception):
    pass


def test_hooks_and_mode_are_restored_on_error(trained_like):
    model = trained_like.train()

    def failing():
        yield _batches(n=1)[0]
        raise Boom

    with pytest.raises(Boom):
        layer_responses(model, failing())
    assert all(m.training for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())


def test_no_batches_is_an_error():
    with pytest.raises(AblationsError, match="no images"):
        layer_responses(create_model("resnet20"), [])


def test_bf16_autocast_is_close_to_fp32(trained_like):
    batches = _batches()
    fp32 = layer_responses(trained_like, batches)["std"]
    bf16 = layer_responses(trained_like, batches, precision="bf16")["std"]
    assert bf16.tolist() == pytest.approx(fp32.tolist(), rel=0.1)


def test_plain_and_residual_nets_at_init_both_measure():
    # The paper's finding (smaller responses with shortcuts) needs trained nets; only check
    # that both kinds are measured on the same input.
    batches = _batches()
    for name in ("plain20", "resnet20"):
        torch.manual_seed(0)
        table = layer_responses(create_model(name), batches)
        assert len(table) == 19
        assert all(math.isfinite(s) and s > 0 for s in table["std"])


# --- run directories ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, tiny_cifar):
    config = resolve_config("resnet20", profile="smoke", device="cpu")
    out = tmp_path_factory.mktemp("runs")
    return train(config, out=out, data=tiny_cifar, device="cpu", show_progress=False).run_dir


def test_responses_for_a_finished_run(smoke_run, tiny_cifar):
    rows = responses_for_run(smoke_run, data=tiny_cifar, device="cpu")
    pd.testing.assert_frame_equal(rows, RESPONSES.validate(rows))
    assert len(rows) == 19
    assert set(rows["run_id"]) == {smoke_run.name}
    assert set(rows["variant"]) == {"resnet20"} and set(rows["profile"]) == {"smoke"}
    assert rows["residual"].all() and set(rows["depth"]) == {20}
    assert rows["layer"].tolist() == list(range(1, 20))
    assert all(math.isfinite(s) and s > 0 for s in rows["std"])
    assert set(rows["data_source"]) == {tiny_cifar.name}  # provenance, by name, not path
    measured = rows.drop(columns="created_at")  # the measurement is deterministic, not its time
    again = responses_for_run(smoke_run, data=tiny_cifar, device="cpu")
    pd.testing.assert_frame_equal(measured, again.drop(columns="created_at"))
    # An already loaded dataset gives the same numbers.
    loaded = load_dataset("cifar10", data=tiny_cifar)
    same = responses_for_run(smoke_run, dataset=loaded, device="cpu")
    pd.testing.assert_frame_equal(measured, same.drop(columns="created_at"))


def test_a_subset_of_the_test_images(smoke_run, tiny_cifar):
    """`images` measures a fixed random subset (the profile's response_images): recorded in the
    rows, the same images every time, and not the whole set's numbers."""
    whole = responses_for_run(smoke_run, data=tiny_cifar, device="cpu")
    part = responses_for_run(smoke_run, data=tiny_cifar, device="cpu", images=100)
    again = responses_for_run(smoke_run, data=tiny_cifar, device="cpu", images=100)
    assert set(part["images"]) == {100} and set(whole["images"]) == {256}  # smoke's test_size
    assert part["std"].tolist() == again["std"].tolist()
    assert part["std"].tolist() != whole["std"].tolist()
    assert part["std"].sub(whole["std"]).abs().max() < 0.1 * whole["std"].min()
    with pytest.raises(AblationsError, match=">= 1"):
        responses_for_run(smoke_run, data=tiny_cifar, device="cpu", images=0)


def test_run_without_final_weights_is_refused(smoke_run, tmp_path, tiny_cifar):
    unfinished = tmp_path / smoke_run.name
    shutil.copytree(smoke_run, unfinished)
    (unfinished / "model.pt").unlink()
    with pytest.raises(AblationsError, match=re.escape(str(unfinished))) as err:
        responses_for_run(unfinished, data=tiny_cifar, device="cpu")
    assert "\n" not in str(err.value)


def test_dataset_of_another_kind_is_refused(smoke_run, tiny_fashion):
    fashion = load_dataset("fashion-mnist", data=tiny_fashion)
    with pytest.raises(AblationsError, match="fashion-mnist"):
        responses_for_run(smoke_run, dataset=fashion, device="cpu")
