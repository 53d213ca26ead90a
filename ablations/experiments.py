"""Named experiments, declared as data: which runs each one needs under a given profile.

A training task is a `TrainConfig`; the complexity, throughput and layer-response experiments are
tables whose rows are tasks of their own. `parse` checks a list of experiments against a profile;
ablations.tasks plans their tasks and ablations.pipeline runs the missing ones."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ablations.claims import VAL_TOP1, Contrast, GapGrows, Lower, Nets
from ablations.profiles import PROFILES, dataset_of, get_profile
from ablations.registry import AblationsError, get_variant

PLAIN_AND_RESIDUAL = ("plain20", "plain32", "plain44", "plain56",
                      "resnet20", "resnet32", "resnet44", "resnet56", "resnet110")  # fmt: skip
FOUR_NETS = ("plain20", "plain56", "resnet20", "resnet56")
FIG7_NETS = (*FOUR_NETS, "resnet110")  # the paper's Fig. 7
SHORTCUTS_CIFAR = ("resnet56", "resnet56-b", "resnet56-c")
SHORTCUTS_K3 = tuple(f"resnet{d}{s}-k3" for d in (18, 34) for s in ("-a", "", "-c"))
RECIPES_EXPERIMENT = "recipes"  # its runs are reported on their own, not in a profile
# The quick CPU table: the nets the cpu profile trains, plus one ImageNet-style net. ResNet-110
# and ResNet-50 cost half its time on 2 cores (`nox -s ablate` must end within 15 minutes);
# `ablate bench resnet110 resnet50` measures them.
THROUGHPUT_QUICK = (*FOUR_NETS, "resnet18")
THROUGHPUT_FULL = (*PLAIN_AND_RESIDUAL, "plain110", "resnet18", "resnet34", "resnet50",
                   "resnet101", "resnet152", "plain18", "plain34")  # fmt: skip
# ImageNet, He et al. 2016: Table 2's ResNets use option A (identity, zero-padding), which is
# why its ResNet-34 (25.03%) is Table 3's ResNet-34 A; Table 3's bottleneck nets use option B
# with the stride on the first 1x1 conv (-v1), torchvision's put it on the 3x3 (v1.5).
IMAGENET_DEGRADATION = ("plain18", "plain34", "resnet18-a", "resnet34-a")
IMAGENET_SHORTCUTS = ("resnet34-a", "resnet34", "resnet34-c")
IMAGENET_BOTTLENECK = tuple(f"resnet{d}{v}" for v in ("-v1", "") for d in (50, 101, 152))


def _better(statement: str, better: str, worse: str) -> Lower:
    """ImageNet's claims: one net has a lower val top-1 error than another (Tables 2-3)."""
    lower, higher = Nets(where={"variant": better}), Nets(where={"variant": worse})
    return Lower(statement, lower=lower, higher=higher, metric=VAL_TOP1)


IMAGENET_DEGRADATION_CLAIMS = (
    _better("plain-34 has a higher error than plain-18 (degradation)", "plain18", "plain34"),
    _better("ResNet-34 has a lower error than ResNet-18 (option A)", "resnet34-a", "resnet18-a"),
    _better("ResNet-34 has a lower error than plain-34", "resnet34-a", "plain34"),
)
IMAGENET_SHORTCUTS_CLAIMS = (
    _better("option B is better than A (ResNet-34)", "resnet34", "resnet34-a"),
    _better("option C is better than B (ResNet-34)", "resnet34-c", "resnet34"),
)
IMAGENET_BOTTLENECK_CLAIMS = (
    _better("ResNet-101 is better than ResNet-50", "resnet101-v1", "resnet50-v1"),
    _better("ResNet-152 is better than ResNet-101", "resnet152-v1", "resnet101-v1"),
)

# The paper's CIFAR nets: plain, and residual with option A (the family's default), so that a
# projection shortcut never stands in for the identity one.
PLAIN = Nets(where={"family": "cifar", "residual": False}, label="plain")
RESIDUAL = Nets(where={"family": "cifar", "residual": True, "shortcut": "a"}, label="residual")
# He et al. 2016b: the same nets with BN-ReLU before each conv and nothing after the addition.
PREACT_NETS = tuple(
    f"{kind}{depth}" for kind in ("resnet", "preresnet") for depth in (20, 32, 44, 56, 110)
)
PREACT_QUICK = ("resnet20", "resnet56", "preresnet20", "preresnet56")
POST = Nets(where={"block": "basic"}, label="post-activation")
PRE = Nets(where={"block": "preact"}, label="pre-activation")
# He et al. 2016b find the gain in deep nets (110 layers and more), so the first two claims
# compare the deepest nets run; the third asks whether the gain grows with depth.
PREACT_CLAIMS: tuple[Contrast, ...] = (
    Lower("the deepest pre-activation net trains better", lower=PRE.at("max"),
          higher=POST.at("max")),
    Lower("the deepest pre-activation net tests better", lower=PRE.at("max"),
          higher=POST.at("max"), metric="test_error"),
    GapGrows("the pre-activation gain grows with depth", lower=PRE, higher=POST,
             metric="test_error"),
)  # fmt: skip
# Fig. 6 and Fig. 7's claims, judged on the final training error (Fig. 7: the layer responses).
DEGRADATION_CLAIMS: tuple[Contrast, ...] = (
    Lower("plain nets degrade with depth", lower=PLAIN.at("min"), higher=PLAIN.at("max")),
    Lower("deeper residual nets train better", lower=RESIDUAL.at("max"),
          higher=RESIDUAL.at("min")),
    GapGrows("the shortcut's benefit grows with depth", lower=RESIDUAL, higher=PLAIN),
    Lower("residual responses are smaller than plain ones", lower=RESIDUAL, higher=PLAIN,
          metric="response_std"),
)  # fmt: skip


@dataclass(frozen=True)
class Experiment:
    """A named set of runs; a "train" experiment's report section shows its nets, their curves
    and a verdict on each claim it declares (ablations.claims)."""

    name: str
    kind: str  # "train" | "complexity" | "throughput" | "responses" | "recipes"
    description: str
    # Variants by profile name; "*" is used for profiles not listed.
    variants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dataset: str = "cifar10"  # what a "train" experiment trains on (its profile's dataset)
    title: str = ""  # the report's heading (the name where empty)
    claims: tuple[Contrast, ...] = ()  # what its runs are judged on, in the report's order

    @property
    def heading(self) -> str:
        return self.title or self.name

    def variants_for(self, profile: str) -> tuple[str, ...]:
        """The variants under `profile`; a full-budget profile not listed (paper-val) runs the
        paper's sets."""
        known = PROFILES.get(profile)
        if known is not None and not known.reduced and profile not in self.variants:
            profile = "paper"
        return self.variants.get(profile, self.variants.get("*", ()))


def _imagenet(
    name: str, description: str, nets: tuple[str, ...], claims: tuple[Lower, ...]
) -> Experiment:
    """A training experiment on ImageNet: the same nets under every profile."""
    return Experiment(
        name=name,
        kind="train",
        description=description,
        variants={"*": nets},
        dataset="imagenet",
        claims=claims,
    )


BUILTIN = (
    Experiment(
        name="complexity",
        kind="complexity",
        description="params and MACs of every registered variant",
    ),
    Experiment(
        name="degradation",
        kind="train",
        description="plain-20/32/44/56 vs ResNet-20/32/44/56/110 on CIFAR-10 "
        "(paper Fig. 6, Table 6)",
        variants={"paper": PLAIN_AND_RESIDUAL, "*": FOUR_NETS},
        title="Degradation (Fig. 6, Table 6)",
        claims=DEGRADATION_CLAIMS,
    ),
    Experiment(
        name="shortcuts",
        kind="train",
        description="shortcut options A/B/C at one depth (the analogue of the paper's "
        "Table 3): CIFAR ResNet-56 and, under the paper profile, ImageNet-style "
        "ResNet-18/34 with the k3 stem at 32x32",
        variants={"paper": SHORTCUTS_CIFAR + SHORTCUTS_K3, "*": SHORTCUTS_CIFAR},
        title="Shortcut options",
    ),
    Experiment(
        name="stems",
        kind="train",
        description="the k7 stem against the k3 stem on 32x32 inputs: ResNet-18 as for "
        "ImageNet and as CIFAR-style code writes it",
        variants={"*": ("resnet18", "resnet18-k3")},
        title="Stems",
    ),
    Experiment(
        name="preact",
        kind="train",
        description="pre-activation ResNets (He et al. 2016b: BN-ReLU before each conv, "
        "identity after the addition) against the original ones, block for block at the "
        "same depths, shortcut A",
        variants={"paper": PREACT_NETS, "*": PREACT_QUICK},
        title="Pre-activation (He et al. 2016b)",
        claims=PREACT_CLAIMS,
    ),
    Experiment(
        name="throughput",
        kind="throughput",
        description="images/s, step time and memory (a quick table on a CPU, the full "
        "settings grid on a GPU)",
        variants={"paper": THROUGHPUT_FULL, "*": THROUGHPUT_QUICK},
    ),
    Experiment(
        name=RECIPES_EXPERIMENT,
        kind="recipes",
        description="the classic ResNet tutorials' setups (`ablate recipes`), at the "
        "profile's budget (paper: the tutorials' own), beside the accuracy each claims",
    ),
    Experiment(
        name="responses",
        kind="responses",
        description="std of each 3x3 layer's response (after BN, before the addition and "
        "ReLU) on the test set, for the trained degradation nets of the paper's Fig. 7",
        variants={"paper": FIG7_NETS, "*": FOUR_NETS},
    ),
    _imagenet(
        "imagenet-degradation",
        "plain-18/34 vs ResNet-18/34 (option A) on ImageNet (paper Fig. 4, Table 2)",
        IMAGENET_DEGRADATION,
        IMAGENET_DEGRADATION_CLAIMS,
    ),
    _imagenet(
        "imagenet-shortcuts",
        "shortcut options A/B/C of ResNet-34 on ImageNet (paper Table 3)",
        IMAGENET_SHORTCUTS,
        IMAGENET_SHORTCUTS_CLAIMS,
    ),
    _imagenet(
        "imagenet-bottleneck",
        "bottleneck ResNet-50/101/152 on ImageNet (paper Table 3) with the paper's stride "
        "placement (first 1x1 conv, -v1) and torchvision's (3x3, v1.5)",
        IMAGENET_BOTTLENECK,
        IMAGENET_BOTTLENECK_CLAIMS,
    ),
)
EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in BUILTIN}


KINDS = ("train", "complexity", "throughput", "responses", "recipes")


def register_experiment(experiment: Experiment) -> Experiment:
    """Add `experiment`, so that `ablate plan/run --experiments NAME` run it and the report draws
    its section; returns it. Its variants must be registered first: a typo fails here, not
    halfway through a sweep."""
    if experiment.name in EXPERIMENTS:
        raise AblationsError(
            f"experiment name {experiment.name!r} is already registered; choose another name"
        )
    if experiment.kind not in KINDS:
        raise AblationsError(f"unknown experiment kind {experiment.kind!r}; one of: {KINDS}")
    for names in experiment.variants.values():
        for name in names:
            get_variant(name)  # raises UnknownVariantError with the closest names
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def unregister_experiment(name: str) -> None:
    """Remove an experiment added by `register_experiment` (tests, notebooks)."""
    if EXPERIMENTS.pop(name, None) is None:
        raise AblationsError(f"no experiment {name!r}; registered: {', '.join(EXPERIMENTS)}")


def parse(spec: str | None, *, profile: str) -> list[str]:
    """ "a,b" -> ["a", "b"], checked; None or "" -> the profile's default experiments."""
    if not spec:
        return list(get_profile(profile).experiments)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown or not names:
        raise AblationsError(
            f"unknown experiment {unknown[0] if unknown else spec!r}; "
            f"choose from: {', '.join(EXPERIMENTS)}"
        )
    trains = dataset_of(profile)
    for name in names:
        exp = EXPERIMENTS[name]
        if exp.kind in ("train", "responses") and exp.dataset != trains:
            fits = [p for p in PROFILES if dataset_of(p) == exp.dataset]
            raise AblationsError(
                f"experiment {name} trains on {exp.dataset} but profile {profile} on {trains}; "
                f"use --profile {' or '.join(fits)}"
            )
    return names
