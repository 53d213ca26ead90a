from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torchvision
from torch import nn

from ablations import derive, get_variant, list_variants, references
from ablations.blocks import block_names, register_block, unregister_block
from ablations.measure import complexity
from ablations.measure.golden import differences
from ablations.models.blocks import Bottleneck
from ablations.results import schemas
from ablations.results.schemas import GOLDEN as GOLDEN_SCHEMA
from ablations.results.table import read_table

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = read_table(ROOT / "tests/golden/complexity.csv", GOLDEN_SCHEMA).set_index("name")
ALL = list_variants()


def test_golden_file_covers_exactly_the_registry():
    missing = sorted(set(ALL) - set(GOLDEN.index))
    stale = sorted(set(GOLDEN.index) - set(ALL))
    hint = "run `ablate golden --write` (or `nox -s golden`) and review the diff"
    assert not missing, f"variants without a golden entry: {missing}; {hint}"
    assert not stale, f"golden entries for unregistered variants: {stale}; {hint}"


@pytest.mark.parametrize("name", ALL)
def test_counts_match_the_golden_file(name):
    row = complexity.complexity_row(get_variant(name))
    expected = GOLDEN.loc[name]
    assert (row["input_size"], row["params"], row["macs"]) == (
        expected["input_size"], expected["params"], expected["macs"],
    )  # fmt: skip
    assert "batch_norm" in row["uncounted_ops"]  # the convention: conv + linear only


@pytest.mark.parametrize("name", sorted(references.PARAMS))
def test_published_parameter_counts(name):
    assert GOLDEN.loc[name, "params"] == references.PARAMS[name].value


@pytest.mark.parametrize("name", sorted(references.GMACS))
def test_published_gmacs(name):
    published, tolerance = references.GMACS[name]
    assert GOLDEN.loc[name, "macs"] / 1e9 == pytest.approx(published.value, rel=tolerance)


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_our_references_are_torchvisions_own_metadata(depth):
    weights = getattr(torchvision.models, f"ResNet{depth}_Weights").IMAGENET1K_V1
    assert references.PARAMS[f"resnet{depth}"].value == weights.meta["num_params"]
    assert references.GMACS[f"resnet{depth}"][0].value == weights.meta["_ops"]


@pytest.mark.parametrize("name", list_variants("plain*"))
def test_plain_nets_cost_what_their_option_a_twins_cost(name):
    # The golden rows are fvcore's counts (test_counts_match_the_golden_file recomputes each),
    # so a registered twin is compared by its row; only unregistered twins are traced here.
    twin = derive(name, residual=True, shortcut="a")
    plain = GOLDEN.loc[name]
    residual = (GOLDEN.loc[twin.name] if twin.name in GOLDEN.index
                else complexity.complexity_row(twin))  # fmt: skip
    assert (plain["params"], plain["macs"]) == (residual["params"], residual["macs"])


def test_committed_results_agree_with_the_golden_file():
    path = ROOT / "results" / schemas.COMPLEXITY_FILE
    if not path.exists():
        pytest.skip("no committed results/complexity.csv")
    committed = read_table(path, schemas.COMPLEXITY)
    assert not differences(GOLDEN.reset_index(), committed[list(GOLDEN_SCHEMA.columns)])


def test_update_saves_each_row_and_resumes(tmp_path, monkeypatch):
    path = tmp_path / "complexity.csv"
    complexity.update(path, ["resnet20", "plain20"])
    first = read_table(path, schemas.COMPLEXITY)
    assert list(first["name"]) == ["resnet20", "plain20"]

    def fail(variant):
        raise AssertionError(f"{variant.name} recomputed although up to date")

    monkeypatch.setattr(complexity, "complexity_row", fail)
    again = complexity.update(path, ["resnet20", "plain20"])
    pd.testing.assert_frame_equal(again, first)


def test_many_variants_are_counted_in_worker_processes(tmp_path, monkeypatch):
    """The registry-sized path (a worker per core, deepest first): the same rows as one
    process, each saved as it ends."""
    names = ["resnet20", "resnet110", "plain20"]
    one = complexity.update(tmp_path / "one.csv", names)
    monkeypatch.setattr(complexity, "POOL_MIN_VARIANTS", 2)
    monkeypatch.setattr(complexity.provenance, "available_cores", lambda: 2)
    many = complexity.update(tmp_path / "many.csv", names)
    counts = ["name", "params", "macs", "uncounted_ops", "fingerprint", "code_version"]
    pd.testing.assert_frame_equal(
        many.set_index("name").loc[names].reset_index()[counts], one[counts]
    )


def test_stale_rows_are_recomputed(tmp_path):
    path = tmp_path / "complexity.csv"
    complexity.update(path, ["resnet20", "resnet32"])
    table = read_table(path, schemas.COMPLEXITY)
    table.loc[table["name"] == "resnet20", ["code_version", "params"]] = ["old-code", 1]
    table.to_csv(path, index=False)
    fresh = complexity.update(path, ["resnet20", "resnet32"])
    assert list(fresh["name"]) == ["resnet20", "resnet32"]  # replaced in place
    assert fresh.loc[0, "params"] == 269_722
    assert fresh.loc[0, "code_version"] == complexity.code_version(get_variant("resnet20"))


def test_measure_reuses_only_matching_rows(tmp_path):
    stored = complexity.measure(["resnet20"])
    stored.loc[0, "macs"] = 7  # a marker: reused rows keep it
    again = complexity.measure(["resnet20", "plain20"], stored=stored)
    assert again.loc[0, "macs"] == 7
    widened = derive("resnet20", name="resnet20", width=32)  # same name, other architecture
    assert complexity.measure([widened], stored=stored).loc[0, "macs"] != 7


def test_code_version_is_per_block():
    """A count depends on the builder, the counting code and its own block's code: variants of
    one block share a version, other blocks' variants have their own."""
    versions = {name: complexity.code_version(get_variant(name)) for name in ALL}
    by_block: dict[str, set[str]] = {}
    for name, version in versions.items():
        by_block.setdefault(get_variant(name).block, set()).add(version)
    assert all(len(found) == 1 for found in by_block.values())
    assert len({next(iter(found)) for found in by_block.values()}) == len(by_block)


class _Widened(Bottleneck):
    """A bottleneck of another block type, as a user would add one."""


class _WidenedEdited(Bottleneck):
    """The same block type after an edit to its class."""

    edited = True


def test_a_new_or_edited_block_leaves_every_other_row_valid():
    """Adding a block type or editing one changes no other block's version: the rows of the
    registry stay reusable, and only the block's own variants are counted again."""
    before = {name: complexity.code_version(get_variant(name)) for name in ALL}
    versions = []
    try:
        for cls in (_Widened, _WidenedEdited):
            register_block("widened", cls, layers=3, expansion=4)
            versions.append(complexity.code_version(derive("resnet50", block="widened")))
            assert {name: complexity.code_version(get_variant(name)) for name in ALL} == before
            unregister_block("widened")
    finally:
        if "widened" in block_names():
            unregister_block("widened")
    assert versions[0] != versions[1]


# He et al. (2016b), Table 4: parameters of the pre-activation CIFAR nets, in millions, rounded
# to 0.1M as the paper prints them.
PREACT_PUBLISHED = {"preresnet110": 1.7, "preresnet164": 1.7, "preresnet1001": 10.2}
# Our exact counts of the registered nets (shortcut A, every parameter, BN's included).
PREACT_PARAMS = {"preresnet110": 1_727_962, "preresnet164": 1_661_274,
                 "preresnet1001": 10_285_722}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PREACT_PARAMS))
def test_preactivation_parameter_counts(name):
    assert GOLDEN.loc[name, "params"] == PREACT_PARAMS[name]


def _conv_and_linear_weights(variant):
    model = complexity.uninitialised(variant)
    return sum(p.numel() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)
               for p in m.parameters())  # fmt: skip


@pytest.mark.parametrize("name", sorted(PREACT_PUBLISHED))
def test_preactivation_counts_against_the_paper(name):
    """110 and 164 layers have the paper's 1.7M. ResNet-1001 has 10.29M parameters (10.3M), the
    paper 10.2M; the paper's three counts are those of convs and the linear layer with projection
    shortcuts (B) where the shape changes, BN's scale and shift left out (1001: 10,178,490)."""
    published = PREACT_PUBLISHED[name]
    assert round(GOLDEN.loc[name, "params"] / 1e6, 1) == (10.3 if name.endswith("1001")
                                                           else published)  # fmt: skip
    assert round(_conv_and_linear_weights(derive(name, shortcut="b")) / 1e6, 1) == published
