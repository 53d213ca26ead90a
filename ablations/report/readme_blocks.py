"""The pages' generated blocks (ablations.report.readme), each a function of the results folder
built from the report's own functions, so the pages quote what the committed rows give."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from ablations.experiments import EXPERIMENTS, THROUGHPUT_QUICK
from ablations.report import planning, profile_results, tables, training
from ablations.report import throughput as report_throughput
from ablations.report.readme import BlockFn
from ablations.report.recipes import recipe_runs, recipe_table
from ablations.report.render import primary_setting, published_comparison
from ablations.report.tables import bullets, distinct, markdown_table
from ablations.results import schemas
from ablations.results.table import read_table

CPU = "cpu"
COMPLEXITY_SHOWN = ("resnet20", "resnet56", "resnet110", "resnet18", "resnet50",
                    "resnet50-v1", "resnet152-v1")  # fmt: skip
TIME_LIMITED = "[Time-limited GPUs](#time-limited-gpus)"  # to whichever page holds the heading


def _profile(results: Path, name: str) -> profile_results.ProfileResults | None:
    return next((p for p in profile_results.load_profiles(results) if p.profile == name), None)


def _cpu_degradation(results: Path) -> tuple[profile_results.ProfileResults, pd.DataFrame] | str:
    """The cpu profile and its complete degradation runs, or the line saying there are none."""
    p = _profile(results, profile_results.QUOTED)
    if p is None:
        return "No `cpu`-profile runs are committed yet: `nox -s ablate` makes them."
    runs, _ = p.experiment("degradation")
    if runs.empty:
        return "No complete `cpu`-profile degradation runs are committed yet."
    return p, runs


def replica(results: Path) -> str:
    """The Fig. 6 replica: the paper's protocol once its runs are committed, else the cpu one."""
    p = _profile(results, profile_results.PAPER)
    if p is None or (runs := p.experiment("degradation")[0]).empty:
        return (
            "![Fig. 6 replica at the cpu budget](reports/degradation_cpu.png)\n\n"
            "The `cpu` budget's replica, trends only: the paper's protocol (the `paper` profile, "
            f"64k iterations) needs a GPU and has not run yet ({TIME_LIMITED})."
        )
    took = "\n".join(planning.set_time_lines(None, runs))
    return (f"![Fig. 6 replica at the paper's protocol](reports/{p.name('degradation')}.png)"
            f"\n\n{bullets(tables.run_facts(runs))}\n{took}")  # fmt: skip


def cpu_verdicts(results: Path) -> str:
    """The verdict lines of the cpu profile's degradation runs, with the facts of those runs."""
    found = _cpu_degradation(results)
    if isinstance(found, str):
        return found
    p, runs = found
    words = training.replication_words(p, EXPERIMENTS["degradation"])
    facts = bullets(tables.run_facts(runs))
    return f"The degradation claims.{words}\n\nFrom the committed runs:\n\n{facts}"


def cpu_runs(results: Path) -> str:
    """The cpu profile's degradation nets: errors as mean ± std over seeds, training time."""
    found = _cpu_degradation(results)
    if isinstance(found, str):
        return found
    _, runs = found
    table = tables.degradation_table(runs)
    cost = runs.groupby("variant", sort=False)[["train_s", "images_per_s"]].median()
    by_net = cost.rename(index=lambda v: tables.paper_name(str(v)))
    table["training s (median)"] = table["net"].map(by_net["train_s"]).map("{:,.0f}".format)
    table["images/s (median)"] = table["net"].map(by_net["images_per_s"]).map("{:,.0f}".format)
    return markdown_table(table)


def complexity_table(results: Path) -> str:
    df = read_table(results / schemas.COMPLEXITY_FILE, schemas.COMPLEXITY)
    if df.empty:
        return "No complexity rows yet: `ablate complexity`."
    shown = published_comparison(df[df["name"].isin(COMPLEXITY_SHOWN)])
    order = {name: i for i, name in enumerate(COMPLEXITY_SHOWN)}
    shown = shown.sort_values("variant", key=lambda s: s.map(order)).reset_index(drop=True)
    return (f"{markdown_table(shown)}\n(`results/complexity.csv`: {distinct(df['machine'])}; "
            f"commit {distinct(df['git_commit'])})")  # fmt: skip


def cpu_throughput(results: Path) -> str:
    """Inference and training images/s of a few nets on a CPU, with the protocol measured."""
    df = read_table(results / schemas.THROUGHPUT_FILE, schemas.THROUGHPUT)
    cpu = df[(df["device"] == "cpu") & (df["status"] == "ok")
             & (df["reference"] == "ours") & df["variant"].isin(THROUGHPUT_QUICK)]  # fmt: skip
    if cpu.empty:
        return "No CPU throughput rows yet: `ablate bench`."
    nchw = ~cpu["channels_last"]  # the CPU default; channels_last rows where only those exist
    # One setting and machine, as the report's throughput section picks it: a table re-measured
    # on another CPU holds both machines' rows, and a median across them describes neither.
    cpu = primary_setting(cpu[nchw] if nchw.any() else cpu)
    rows = []
    for variant in (v for v in THROUGHPUT_QUICK if v in set(cpu["variant"])):
        mine = cpu[cpu["variant"] == variant]
        infer, train = mine[mine["mode"] == "infer"], mine[mine["mode"] == "train"]
        rows.append({
            "variant": variant, "batch": int(mine["batch_size"].iloc[0]),
            "inference images/s": _median(infer, "images_per_s", "{:,.0f}"),
            "training images/s": _median(train, "images_per_s", "{:,.1f}"),
            "training step ms (IQR)": _median(train, "step_ms", "{:,.0f}")
            + f" ({_median(train, 'step_ms_iqr', '{:,.0f}')})",
            "training TFLOP/s": _median(train, "tflops", "{:.2f}"),
        })  # fmt: skip
    env = (f"{distinct(cpu['machine'])}; torch {distinct(cpu['torch'])}; commit "
           f"{distinct(cpu['git_commit'])}; protocol: {distinct(cpu['protocol'])}")  # fmt: skip
    return f"{markdown_table(pd.DataFrame(rows))}\n({env})"


TRAIN_SPEED_MISSING = {
    CPU: "No CPU rows of `ablate train-speed` are committed yet.",
    "cuda": "Not measured on a GPU yet (the target: at least 5x on ResNet-20 and ResNet-56): "
    f"`ablate train-speed resnet20 resnet56` on a GPU ({TIME_LIMITED}).",
}


def train_speed(results: Path, *, device: str) -> str:
    """This suite's training loop against the conventional one on `device` (`ablate
    train-speed`), or the line saying how to measure it."""
    table = read_table(results / schemas.TRAIN_SPEED_FILE, schemas.TRAIN_SPEED)
    mine = table[table["device"] == device]
    if text := report_throughput.loop_speed(mine):
        return f"{text}(commit {distinct(mine['git_commit'])})"
    return TRAIN_SPEED_MISSING[device]


def gpu_timm(results: Path) -> str:
    """Ours against timm's benchmark.py on a GPU and the run-to-run spread, or how to measure."""
    table = read_table(results / schemas.REFERENCE_FILE, schemas.THROUGHPUT)
    cuda = table[table["device"] == "cuda"]
    text = "\n".join(t for t in (report_throughput.against_timm(cuda),
                                 report_throughput.fidelity(cuda)) if t)  # fmt: skip
    return text or (
        "Not measured on a GPU yet (the targets: ours at least 1.0x timm's, a spread under 2% "
        "over `--runs 3` for resnet50 training at batch 256): `ablate bench resnet50 --mode both "
        "--precision bf16 --channels-last on --batch-size 256 --runs 3 --reference timm` on a "
        f"GPU ({TIME_LIMITED})."
    )


def gpu_throughput(results: Path) -> str:
    """Images/s of each net and mode under every precision and memory layout, on the GPU that
    measured the most."""
    df = read_table(results / schemas.THROUGHPUT_FILE, schemas.THROUGHPUT)
    cuda = df[(df["device"] == "cuda") & (df["status"] == "ok") & (df["reference"] == "ours")]
    if cuda.empty:
        return (
            "No GPU rows yet: `ablate run --profile paper --experiments throughput` on a GPU "
            f"(both families, bf16/tf32, channels_last on/off; {TIME_LIMITED})."
        )
    machine = cuda["machine"].value_counts().index[0]
    cuda = cuda[cuda["machine"] == machine]
    setting = cuda["precision"] + ", " + cuda["channels_last"].map(tables.memory_format)
    table = (cuda.assign(setting=setting)
             .pivot_table(index=["variant", "mode"], columns="setting", values="images_per_s",
                          aggfunc="median", sort=False)
             .map(lambda v: "" if v != v else f"{v:,.0f}").reset_index())  # fmt: skip
    env = (f"{machine}; images/s, median over runs; torch {distinct(cuda['torch'])}; commit "
           f"{distinct(cuda['git_commit'])}")  # fmt: skip
    return f"{markdown_table(table)}\n({env})"


def planning_block(results: Path) -> str:
    """The report's planning section, without its title."""
    return planning.planning_section(results).markdown.removeprefix(planning.TITLE).strip()


def _median(rows: pd.DataFrame, column: str, spec: str) -> str:
    return spec.format(rows[column].median()) if len(rows) else ""


def runs_summary(results: Path) -> str:
    """One line per profile: how many training runs are committed, on which machines."""
    runs = read_table(results / schemas.RUNS_FILE, schemas.RUNS)
    runs = runs[~recipe_runs(runs)]
    if runs.empty:
        return "No training runs are committed yet."
    lines = []
    for profile in profile_results.profile_order(runs["profile"]):
        mine = runs[runs["profile"] == profile]
        lines.append(f"- `{profile}`: {len(mine)} runs on {distinct(mine['machine'])}")
    return "\n".join(lines)


def cpu_recipes(results: Path) -> str:
    """The recipes at the cpu budget: the report's recipes table, those rows only."""
    runs = read_table(results / schemas.RUNS_FILE, schemas.RUNS)
    table = recipe_table(runs[runs["profile"] == CPU])
    if table.empty:
        return "No `cpu`-budget recipe runs are committed yet."
    columns = ["recipe", "budget run", "test accuracy (final)", "claimed", "verdict",
               "training time", "machine"]  # fmt: skip
    return markdown_table(table[columns])


BLOCKS: dict[str, BlockFn] = {
    "replica": replica,
    "cpu-recipes": cpu_recipes,
    "cpu-verdicts": cpu_verdicts,
    "cpu-runs": cpu_runs,
    "complexity": complexity_table,
    "cpu-throughput": cpu_throughput,
    "cpu-train-speed": partial(train_speed, device=CPU),
    "runs-summary": runs_summary,
    "planning": planning_block,
    "gpu-throughput": gpu_throughput,
    "gpu-timm": gpu_timm,
    "gpu-train-speed": partial(train_speed, device="cuda"),
}
