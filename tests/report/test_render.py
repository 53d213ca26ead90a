"""The rendered reports/ from synthetic results: the training figures, each profile's block (its
sections: tests/report/test_training.py; its claims: tests/report/test_claims.py), and the
summary the report opens with."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from report_rows import (
    CPU_ERRORS,
    MACHINE,
    PAPER_ERRORS,
    curve_rows,
    render_readme,
    response_rows,
    run_rows,
    section,
    write_results,
)

from ablations.experiments import EXPERIMENTS
from ablations.references import TABLE6
from ablations.report import figures, profile_results, render, training
from ablations.results import schemas
from ablations.results.table import write_table

# --- figures ----------------------------------------------------------------------------------


def test_two_panel_curves_figure_has_plain_and_residual_panels_on_the_same_axes():
    runs = run_rows(PAPER_ERRORS, profile="paper")
    fig = figures.curves_figure(runs, curve_rows(runs), kinds=(False, True))
    plain, residual = fig.axes
    assert (plain.get_title(), residual.get_title()) == ("plain nets", "residual nets")
    assert plain.get_ylim() == residual.get_ylim() and plain.get_xlim() == residual.get_xlim()
    assert plain.get_ylim()[0] == 0 and plain.get_ylabel() == "error (%)"
    # Per net: a dashed training curve, a solid validation curve, the test error as a point.
    curves = [line for line in plain.get_lines() if len(line.get_xdata()) > 1]
    assert sorted(line.get_linestyle() for line in curves) == ["-", "-", "--", "--"]
    points = [line for line in plain.get_lines() if len(line.get_xdata()) == 1]
    assert [p.get_xdata()[0] for p in points] == [1000, 1000]
    assert sorted(round(p.get_ydata()[0], 1) for p in points) == [8.2, 13.5]
    # The same depth has the same colour in both panels.
    colour = {ax: {ln.get_color() for ln in ax.get_lines() if len(ln.get_xdata()) > 1}
              for ax in fig.axes}  # fmt: skip
    assert colour[plain] == colour[residual] and len(colour[plain]) == 2
    labels = [t.get_text() for t in plain.get_legend().get_texts()]
    assert labels == ["plain-20", "plain-56", "training", "validation", "min-max over seeds",
                      "test (final)"]  # fmt: skip
    assert "mean of 2 seeds per net" in fig.get_suptitle()
    assert "validation error (bold, held-out split)" in fig.get_suptitle()
    assert "final test error (point)" in fig.get_suptitle()
    # The spread over seeds: one band per curve (training and validation) per net.
    assert len(plain.collections) == 4


def test_two_panel_curves_figure_labels_test_curves_as_test():
    # The paper profile evaluates the test set during training (Fig. 6): the bold curves are
    # "test", there is no validation curve and no separate final point.
    runs = run_rows(PAPER_ERRORS, profile="paper")
    curves = curve_rows(runs)
    curves = curves[~(curves["split"] == "test")].assign(
        split=lambda c: c["split"].replace({"val": "test"})
    )
    fig = figures.curves_figure(runs, curves, kinds=(False, True))
    plain, _ = fig.axes
    labels = [t.get_text() for t in plain.get_legend().get_texts()]
    assert labels == ["plain-20", "plain-56", "training", "test", "min-max over seeds"]
    assert all(len(line.get_xdata()) > 1 for line in plain.get_lines())
    assert "test error (bold)" in fig.get_suptitle() and "validation" not in fig.get_suptitle()
    assert set(figures.held_out_split(curves)) == {"test"}


def test_two_panel_curves_figure_averages_seeds_and_survives_an_empty_panel():
    runs = run_rows({"resnet20": [0.2, 0.4]}, profile="cpu")
    fig = figures.curves_figure(runs, curve_rows(runs), kinds=(False, True))
    plain, residual = fig.axes
    assert [t.get_text() for t in plain.texts] == ["no runs"]
    training = next(ln for ln in residual.get_lines() if ln.get_linestyle() == "--")
    assert training.get_ydata()[-1] == pytest.approx(30 + 0.6 * math.exp(-5) * 100)


def test_two_panel_curves_figure_without_curves_still_shows_the_test_errors():
    runs = run_rows(CPU_ERRORS, profile="cpu")
    fig = figures.curves_figure(runs, schemas.CURVES.empty(), kinds=(False, True))
    points = [ln for ax in fig.axes for ln in ax.get_lines() if len(ln.get_xdata()) == 1]
    assert len(points) == 4 and fig.axes[0].get_ylim()[1] > 88.5


def test_curves_figure_draws_any_set_of_nets_one_panel_per_kind_present():
    runs = run_rows({"resnet56": [0.3, 0.32], "resnet56-b": [0.28], "resnet56-c": [0.27]},
                    profile="cpu", experiments="shortcuts")  # fmt: skip
    fig = figures.curves_figure(runs, curve_rows(runs))
    [panel] = fig.axes
    assert panel.get_title() == "residual nets"
    labels = [t.get_text() for t in panel.get_legend().get_texts()]
    assert labels[:3] == ["ResNet-56", "ResNet-56-b", "ResNet-56-c"]
    colours = {ln.get_color() for ln in panel.get_lines() if len(ln.get_xdata()) > 1}
    assert len(colours) == 3  # one per net: they differ in the shortcut, not the depth
    both = figures.curves_figure(run_rows(PAPER_ERRORS, profile="paper"), schemas.CURVES.empty())
    assert [ax.get_title() for ax in both.axes] == ["plain nets", "residual nets"]


def test_depth_figure_draws_seed_spread_only_for_several_seeds():
    runs = run_rows({"plain20": [0.5, 0.6], "plain56": [0.8], "resnet20": [0.4],
                     "resnet56": [0.3, 0.35]}, profile="cpu")  # fmt: skip
    fig = figures.depth_figure(runs)
    train_ax, test_ax = fig.axes
    assert train_ax.get_ylabel() == "final training error (%)"
    assert test_ax.get_ylabel() == "test error (%)"
    assert train_ax.get_ylim() == test_ax.get_ylim()
    assert [t.get_text() for t in train_ax.get_legend().get_texts()] == ["plain", "residual"]
    # One error bar per line, at the depth with two seeds: plain at 20, residual at 56.
    bars = [c for c in train_ax.collections if c.get_segments()]
    spans = sorted((s[0][0], round(s[0][1], 1), round(s[1][1], 1))
                   for c in bars for s in c.get_segments())  # fmt: skip
    assert spans == [(20, 50.0, 60.0), (56, 30.0, 35.0)]


def test_tradeoff_figure_labels_a_point_per_variant():
    runs = run_rows(PAPER_ERRORS, profile="paper")
    fig = figures.tradeoff_figure(runs)
    macs_ax, speed_ax = fig.axes
    assert macs_ax.get_xscale() == "log" and speed_ax.get_xscale() == "log"
    assert "MACs" in macs_ax.get_xlabel() and "images/s" in speed_ax.get_xlabel()
    assert sorted(t.get_text() for t in macs_ax.texts) == sorted(PAPER_ERRORS)
    assert sum(len(c.get_offsets()) for c in macs_ax.collections) == 4


def test_responses_figure_is_fig7():
    runs = run_rows(CPU_ERRORS, profile="cpu")
    fig = figures.responses_figure(response_rows(runs))
    top, bottom = fig.axes
    assert top.get_xlabel() == "layer index (original)"
    assert bottom.get_xlabel() == "layer index (sorted by magnitude)"
    styles = {ln.get_label(): ln.get_linestyle() for ln in top.get_lines()}
    assert styles == {"plain-20": "--", "plain-56": "--", "ResNet-20": "-", "ResNet-56": "-"}
    for line in bottom.get_lines():
        ys = list(line.get_ydata())
        assert ys == sorted(ys, reverse=True)


def test_responses_figure_shows_the_spread_over_seeds():
    runs = run_rows({"plain20": [0.5, 0.5, 0.5], "resnet20": [0.4, 0.4, 0.4]}, profile="cpu")
    responses = response_rows(runs)
    responses["std"] *= 1 + 0.1 * responses["run_id"].str.contains("_s1_")  # seeds differ
    fig = figures.responses_figure(responses)
    top, bottom = fig.axes
    assert len(top.collections) == len(bottom.collections) == 2  # a band per net and panel
    assert "3 runs per net; band: min-max over runs" in fig.get_suptitle()
    one = figures.responses_figure(response_rows(run_rows(CPU_ERRORS, profile="cpu")))
    assert not one.axes[0].collections and "1 run per net" in one.get_suptitle()


# --- the rendered report ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_profiles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    runs = pd.concat([
        run_rows(PAPER_ERRORS, profile="paper", iterations=64_000),
        run_rows(CPU_ERRORS, profile="cpu"),
        run_rows({"plain20": [0.565]}, profile="cpu", machine="Other CPU", first_seed=1),
    ])  # fmt: skip
    return render_readme(tmp_path_factory.mktemp("two"), runs)


def test_report_writes_figures_per_profile(two_profiles):
    out, _ = two_profiles
    for profile in ("paper", "cpu"):
        for figure in ("degradation", "depth", "tradeoff", "responses"):
            for fmt in ("png", "svg"):
                assert (out / f"{figure}_{profile}.{fmt}").stat().st_size > 0


def test_report_is_ordered_paper_first_with_a_summary_on_top(two_profiles):
    _, readme = two_profiles
    assert readme.index("## Training: profile `paper`") < readme.index("## Training: profile `cpu`")
    assert readme.index("## Training: profile `cpu`") < readme.index("## Complexity")
    assert readme.index("## Complexity") < readme.index("## Throughput")
    top = readme[: readme.index("## Training")]
    assert "Generated by `ablate report` from `results/` alone" in top
    assert "| `paper` | 8 | 1: Test CPU (2 cores) |" in top
    assert "| `cpu` | 5 | 2: Other CPU, Test CPU (2 cores) |" in top


def test_reduced_profile_says_so_first(two_profiles):
    _, readme = two_profiles
    cpu = section(readme, "## Training: profile `cpu`")
    first = cpu.splitlines()[2]
    assert first.startswith(
        "**Profile `cpu` is a reduced budget: its numbers are not comparable to the paper's; "
        "only the trends are.**"
    )
    assert "iterations of batch 128" in first  # the profile's description
    paper = section(readme, "## Training: profile `paper`")
    assert "reduced budget" not in paper


def test_table6_side_by_side_only_under_the_paper_profile(two_profiles):
    _, readme = two_profiles
    paper = section(readme, "## Training: profile `paper`")
    cpu = section(readme, "## Training: profile `cpu`")
    table6 = section(paper, "#### Table 6 side by side")
    header = next(line for line in table6.splitlines() if line.startswith("| net |"))
    assert header == ("| net | He et al. 2016, Table 6 | akamaster/pytorch_resnet_cifar10 | "
                      "ours: best of N | ours: mean ± std |")  # fmt: skip
    # The paper's ResNet-110: best of 5 and mean ± std, as Table 6 gives it.
    resnet110 = next(line for line in table6.splitlines() if line.startswith("| ResNet-110 |"))
    assert "| 6.43% (best of 5; 6.61 ± 0.16%) | 6.32% |  |  |" in resnet110
    resnet56 = next(line for line in table6.splitlines() if line.startswith("| ResNet-56 |"))
    assert f"| {TABLE6.test_error['resnet56']:.2f}% |" in resnet56
    assert "| 5.00% (N=2) | 5.10 ± 0.14% |" in resnet56  # test error = train error + 2 points
    assert not any(line.startswith("| plain-") for line in table6.splitlines())
    assert "akamaster/pytorch_resnet_cifar10: 200 epochs" in table6  # the protocol, cited
    assert "sha256 5bbd2193f3b9" in table6  # which data our numbers come from
    # The degradation table gives best-of-N beside mean ± std.
    resnet56 = next(line for line in paper.splitlines() if line.startswith("| ResNet-56 |"))
    assert "| 5.1 ± 0.1% |" in resnet56 and "| 5.00% (of 2) | 2 |" in resnet56
    assert "Table 6 side by side" not in cpu
    assert "The paper's numbers (Table 6)" in cpu and "not comparable at this budget" in cpu


def test_paper_profile_heading_states_the_choices_the_paper_leaves_open(two_profiles):
    _, readme = two_profiles
    paper = section(readme, "## Training: profile `paper`")
    assert "Where the paper is silent, this suite chose:" in paper
    assert "- padding value: zeros" in paper and "- BatchNorm batch: the whole batch" in paper


def test_report_states_the_claims_per_profile(two_profiles):
    _, readme = two_profiles
    paper = section(readme, "## Training: profile `paper`")
    cpu = section(readme, "## Training: profile `cpu`")
    assert "Rule: Welch's t-test" in paper
    # Two seeds per net under paper, one or two under cpu: no verdict, and it says why.
    assert ("- not resolved at this budget: deeper residual nets train better: final training "
            "error ResNet-20 5.1 ± 0.1% (2 seeds) vs ResNet-56 3.1 ± 0.1% (2 seeds); difference "
            "+2.0 points; all 2 seeds agree (fewer than 3 seeds per net)") in paper  # fmt: skip
    assert ("- not resolved at this budget: plain nets degrade with depth: final training error "
            "plain-56 88.5% (1 seed) vs plain-20 56.0 ± 0.7% (2 seeds)") in cpu  # fmt: skip
    assert "residual responses are smaller than plain ones: mean std" in cpu


def test_report_judges_the_claims_in_every_replicate(tmp_path):
    tight = {"plain20": [0.30, 0.31, 0.29], "plain56": [0.60, 0.62, 0.61],
             "resnet20": [0.25, 0.26, 0.24], "resnet56": [0.15, 0.16, 0.14]}  # fmt: skip
    loose = {"plain20": [0.40, 0.60, 0.50], "plain56": [0.45, 0.65, 0.52],
             "resnet20": [0.30, 0.50, 0.40], "resnet56": [0.35, 0.55, 0.42]}  # fmt: skip
    results = tmp_path / "results"
    write_results(results, run_rows(tight, profile="cpu"))
    replicate = run_rows(loose, profile="cpu").assign(cpu_kernels="aten AVX2, onednn AVX2")
    write_results(results / schemas.REPLICATES_DIR / "avx2", replicate)
    [profile] = profile_results.load_profiles(results)  # the degradation section's words only
    cpu = training.replication_words(profile, EXPERIMENTS["degradation"])
    assert "Replication: a verdict stands only where every replicate reaches it" in cpu
    assert ("- not resolved at this budget: plain nets degrade with depth: the replicates "
            "disagree (holds in the committed runs (p = ") in cpu  # fmt: skip
    assert "| runs | setting | seeds |" in cpu
    assert (
        f"| replicate avx2 | {MACHINE}; aten AVX2, onednn AVX2; torch 2.15.0 | 3 per net |" in cpu
    )


def test_report_says_when_runs_mix_machines(two_profiles):
    _, readme = two_profiles
    cpu = section(readme, "### What was run")  # the first: paper's
    assert "machines" not in cpu
    cpu = section(readme[readme.index("## Training: profile `cpu`") :], "### What was run")
    assert "**runs from 2 machines: Test CPU (2 cores) (4 runs), Other CPU (1 run); figures " \
           "mix them.**" in cpu  # fmt: skip
    assert "seeds per variant: 1-2 (seeds 0, 1)" in cpu
    assert "sha256 5bbd2193f3b9" in cpu and "git commit: abc123" in cpu


def test_report_with_ablations_and_a_partial_profile(tmp_path):
    runs = pd.concat([
        run_rows({"resnet56": [0.3], "resnet56-b": [0.28], "resnet56-c": [0.27]},
                 profile="cpu", experiments="degradation,shortcuts"),
        run_rows({"resnet18": [0.4]}, profile="cpu", experiments="stems"),
        run_rows({"plain20": [0.6]}, profile="smoke", iterations=12),
        run_rows({"resnet20": [0.5]}, profile="cpu", dataset="fashion-mnist"),
    ])  # fmt: skip
    out, readme = render_readme(tmp_path, runs, responses=False)
    cpu = section(readme, "## Training: profile `cpu`")
    assert "### Shortcut options" in cpu and "### Stems" in cpu  # tests/report/test_training.py
    assert "1 runs on other datasets (fashion-mnist) are left out" in cpu
    assert "not checked: plain nets degrade with depth" in cpu
    assert "`ablate run --experiments responses --profile cpu`" in cpu
    smoke = section(readme, "## Training: profile `smoke`")
    assert smoke.splitlines()[2].startswith("**Profile `smoke` is a reduced budget")
    assert (out / "degradation_smoke.png").exists() and not (out / "responses_cpu.png").exists()


def test_report_without_runs_says_how_to_produce_them(tmp_path):
    out = tmp_path / "reports"
    render.render(results=tmp_path / "none", out=out)
    readme = (out / "README.md").read_text()
    lines = [line for line in readme.splitlines() if "nox -s ablate" in line]
    assert len(lines) == 1 and "No training runs yet" in lines[0]
    assert "## Complexity" in readme and "## Throughput" in readme
    assert "## Training" not in readme


def test_report_with_an_empty_runs_table(tmp_path):
    results = tmp_path / "results"
    write_table(schemas.RUNS.empty(), results / schemas.RUNS_FILE, schemas.RUNS)
    render.render(results=results, out=tmp_path / "reports")
    assert "No training runs yet" in (tmp_path / "reports" / "README.md").read_text()


def test_report_keeps_diverged_runs_out_of_the_numbers(tmp_path):
    runs = run_rows(CPU_ERRORS, profile="cpu")
    runs.loc[runs["variant"] == "plain56", ["status", "diverged_at"]] = ["diverged", 300]
    _, readme = render_readme(tmp_path, runs)
    assert "1 diverged" in readme
    assert "diverged (left out of the tables, figures and claims): plain56 seed 0 at " \
           "iteration 300" in readme  # fmt: skip
    assert "| plain-56 |" not in readme
    assert "not checked: plain nets degrade with depth" in readme


def test_the_readme_shows_the_paper_replica_once_its_runs_are_committed(two_profiles, tmp_path):
    """The README's first figure: the cpu budget's until paper-profile runs exist, then the
    paper's protocol with what its runs are, and it names a figure the report wrote."""
    from ablations.report import readme_blocks

    out, _ = two_profiles
    shown = readme_blocks.replica(out.parent / "results")
    assert "](reports/degradation_paper.png)" in shown and (out / "degradation_paper.png").exists()
    assert "64,000 iterations" in shown and "cpu budget" not in shown
    write_results(tmp_path, run_rows(CPU_ERRORS, profile="cpu"))
    assert "](reports/degradation_cpu.png)" in readme_blocks.replica(tmp_path)


# --- the summary the report opens with --------------------------------------------------------

TIGHT = {"plain20": [0.30, 0.31, 0.29], "plain56": [0.60, 0.62, 0.61],
         "resnet20": [0.25, 0.26, 0.24], "resnet56": [0.35, 0.36, 0.34]}  # fmt: skip


def opening(readme: str) -> list[str]:
    """The report's lines between its title and the line saying how it was made."""
    head = readme[: readme.index("Generated by `ablate report`")]
    title, *lines = [line for line in head.splitlines() if line.strip()]
    assert title == "# resnet-ablations: reports"
    return lines


def test_the_report_opens_with_its_answer(tmp_path):
    """Right under the title: the quoted budget's claims grouped by outcome, with the budget,
    then the methodology page linked from the report's folder, in five lines at most."""
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "docs" / "methodology.md").write_text("# Methodology\n")
    runs = pd.concat([run_rows(TIGHT, profile="cpu"),
                      run_rows({"plain20": [0.5]}, profile="smoke")])  # fmt: skip
    write_results(project / "results", runs)
    render.render(results=project / "results", out=project / "reports")
    lines = opening((project / "reports" / "README.md").read_text())
    assert len(lines) <= 5
    cpu, how = lines
    assert cpu.startswith(
        "- Profile `cpu`: 3 seeds per net, 1,000 iterations, a reduced "
        "budget (trends only). **Holds:** plain nets degrade with depth; "
    )
    assert "**Fails:** deeper residual nets train better." in cpu
    assert cpu.index("**Holds:**") < cpu.index("**Fails:**")
    assert "smoke" not in cpu  # a scratch budget is not the answer
    link = how.split("](")[1].rstrip(").")
    assert link == "../docs/methodology.md"
    assert (project / "reports" / link).resolve() == project / "docs" / "methodology.md"


def test_the_summary_has_the_paper_profile_first_and_unresolved_claims(two_profiles):
    _, readme = two_profiles
    paper, cpu, how = opening(readme)
    assert paper.startswith("- Profile `paper`: 2 seeds per net, 64,000 iterations. "
                            "**Not resolved at this budget:** plain nets degrade with depth; "
                            "deeper residual nets train better;")  # fmt: skip
    assert cpu.startswith("- Profile `cpu`: 1-2 seeds per net, 1,000 iterations, a reduced")
    assert "**Holds:**" not in readme[: readme.index("Generated by")]
    # Rendered outside a project: the page is named, not linked.
    assert how.endswith(": the project's docs/methodology.md.") and "](" not in how


def test_the_summary_follows_the_replication_rule(tmp_path):
    results = tmp_path / "results"
    write_results(results, run_rows(TIGHT, profile="cpu"))
    loose = {name: [e + d for e, d in zip(errors, (-0.2, 0.0, 0.2), strict=True)]
             for name, errors in TIGHT.items()}  # fmt: skip
    write_results(results / schemas.REPLICATES_DIR / "other", run_rows(loose, profile="cpu"))
    [line] = training.summary(results)
    assert "**Holds:** plain nets degrade" not in line
    assert "**Not resolved at this budget:** plain nets degrade with depth" in line


def test_without_runs_the_summary_says_so(tmp_path):
    render.render(results=tmp_path / "none", out=tmp_path / "reports")
    lines = opening((tmp_path / "reports" / "README.md").read_text())
    assert lines[0] == "No claims are judged yet: no complete training runs."


def test_a_throughput_setting_that_never_ran_is_reported_without_a_figure(tmp_path):
    from ablations.report.render import throughput_section
    from ablations.results import schemas
    from ablations.results.table import write_table

    defaults = {"str": "", "int": 0, "float": float("nan"), "bool": False}
    row = {c: defaults[kind] for c, kind in schemas.THROUGHPUT.columns.items()}
    rows = [
        {
            **row,
            "variant": v,
            "mode": "train",
            "batch_size": 256,
            "requested_batch_size": 256,
            "status": "oom",
            "machine": "m",
            "device": "cuda",
        }
        for v in ("resnet50", "resnet101")
    ]
    write_table(pd.DataFrame(rows), tmp_path / schemas.THROUGHPUT_FILE, schemas.THROUGHPUT)
    section = throughput_section(tmp_path)
    assert section.figures == {} and "throughput.png" not in section.markdown
    assert "2 setting(s) did not run: resnet50 train batch 256 (oom)" in section.markdown
