"""Provenance that travels: no absolute path of the producing machine and no "+dirty" commit in
what the code writes, machine hashes, trainer versions and stale runs set aside."""

import json
import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from report_rows import run_rows

from ablations import rundir, versions
from ablations.config import resolve_config
from ablations.data.arrays import DataError
from ablations.pipeline import is_done, state, status_table
from ablations.report.evaluations import evaluations_section, evaluations_table
from ablations.report.tables import provenance_notes
from ablations.results import collect, provenance, schemas
from ablations.results.table import Schema, read_table, write_table
from ablations.tasks import Context, Task
from ablations.train import records
from ablations.train.run import train

ROOT = Path(__file__).resolve().parents[2]
# The first directory of any absolute path: every one at the root of this machine (the paths a
# run here could write), those of the usual other machines (macOS homes, cluster filesystems),
# and the first component of this checkout's and the temp dir's own paths.
TOP_DIRS = sorted(
    {p.name for p in Path("/").iterdir() if p.is_dir()}
    | {"work", "usr", "root", "home", "tmp", "mnt", "opt", "var", "data", "Users", "Volumes",
       "scratch", "gpfs", "lustre", "nfs", "private", "srv"}
    | {Path(tempfile.gettempdir()).parts[1], ROOT.parts[1]}
)  # fmt: skip
# An absolute POSIX path under one of them, or a Windows drive path, inside a value: after a
# quote, comma, space, colon or at the start of a line (a URL's "//host" never matches).
ABSOLUTE = re.compile(
    r"(?:^|[\s\"',:=(\[])(/(?:" + "|".join(map(re.escape, TOP_DIRS)) + r")/[^\s\"',]*"
    r"|[A-Za-z]:\\[^\s\"',]+)", re.M,
)  # fmt: skip


def _leaks(text: str) -> list[str]:
    found = [m.group(1) for m in ABSOLUTE.finditer(text)]
    return found + (["+dirty"] if provenance.DIRTY in text else [])


def _scan(folder: Path) -> dict[str, list[str]]:
    leaks = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".csv", ".json", ".md", ".txt"):
            found = _leaks(path.read_text(errors="replace"))
            if found:
                leaks[str(path.relative_to(ROOT))] = found[:3]
    return leaks


@pytest.mark.committed_results
@pytest.mark.parametrize("folder", ["results", "reports"])
def test_committed_results_hold_no_machine_paths_or_dirty_commits(folder):
    """The committed results/ and reports/ travel: a reviewer's rerun must not meet this
    machine's paths, and every row comes from a clean commit. Fails until results are
    regenerated from a clean commit by this code."""
    leaks = _scan(ROOT / folder)
    assert not leaks, f"{len(leaks)} files leak paths or +dirty commits: {leaks}"


def test_the_scan_finds_paths_and_dirty_commits():
    assert _leaks('"source": "/home/alice/datasets/cifar10-jpeg.tar.gz"')
    assert _leaks("cifar10,/usr/share/datasets/fashion-mnist,idx")
    assert _leaks("git 54409fc263d8+dirty")
    assert not _leaks("cifar10-jpeg.tar.gz,imagefolder-tar,5bbd2193 see docs/a/b and run:x/y")
    assert not _leaks("see https://github.com/a/b, 1,096 images/s, 3.2 MB/s")


@pytest.mark.parametrize(
    "where",
    [
        ROOT,
        Path(tempfile.gettempdir()),
        Path.home(),
        *sorted(p for p in Path("/").iterdir() if p.is_dir()),
    ],
)
def test_the_scan_finds_a_path_under_any_directory_of_this_machine(where):
    # Not a fixed list: a run that wrote this checkout's, the temp dir's or $HOME's path, or
    # one under any top-level directory here, is caught wherever the machine keeps its files.
    path = f"{where.resolve() if where != Path('/') else where}/results/x.csv"
    assert _leaks(f'"source": "{path}"'), path


def test_machine_columns_hash_the_identity_never_the_raw_id(monkeypatch):
    columns = provenance.environment("cpu")
    assert {"machine", *schemas.MACHINE_HASHES} <= set(columns)
    raw = Path("/etc/machine-id")
    if raw.exists() and raw.read_text().strip():
        assert columns["machine_id"] and columns["machine_id"] not in raw.read_text()
        assert len(columns["machine_id"]) == 12
    if Path("/proc/cpuinfo").exists():
        assert re.fullmatch(r"[0-9a-f]{12}", columns["cpu_flags"])
    assert columns["trainer_version"] == versions.TRAINER_VERSION


def test_dirty_tree_warns_once(monkeypatch, capsys):
    monkeypatch.setattr(provenance, "git_commit", lambda: "abc123+dirty")
    provenance.warn_if_dirty.cache_clear()
    provenance.warn_if_dirty("training x")
    provenance.warn_if_dirty("training x")
    err = capsys.readouterr().err
    assert err.count("dirty tree (commit abc123+dirty)") == 1


def test_an_older_table_without_the_new_columns_still_reads(tmp_path):
    schema = Schema(name="t", columns={"a": "str", "machine_id": "str", "trainer_version": "int"},
                    key=("a",), added={"machine_id": "", "trainer_version": 0})  # fmt: skip
    (tmp_path / "t.csv").write_text("a\nx\n")
    table = read_table(tmp_path / "t.csv", schema)
    assert table.to_dict("records") == [{"a": "x", "machine_id": "", "trainer_version": 0}]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cifar):
    """One smoke run of the current trainer, with its results tables."""
    results = tmp_path_factory.mktemp("results")
    config = resolve_config("resnet20", profile="smoke", seed=0, device="cpu")
    record = train(config, out=results / "runs", data=tiny_cifar, device="cpu",
                   show_progress=False)  # fmt: skip
    collect.record(record.run_dir, results)
    return results, config, tiny_cifar


def test_cpu_kernels_name_the_instruction_set_and_its_caps(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    aten = torch.backends.cpu.get_cpu_capability()
    assert provenance.cpu_kernels() == f"aten {aten}, onednn default"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert provenance.cpu_kernels() == f"aten {aten}, onednn AVX2"


def test_writers_record_names_not_paths(trained):
    """Every file a run writes, and runs.csv, names the data by file name, format and sha256;
    none holds the machine's path to it (the tiny data lies under /tmp here)."""
    results, config, data = trained
    run_dir = results / "runs" / config.run_id
    for path in run_dir.glob("*.json"):
        text = path.read_text()
        assert str(data) not in text and str(data.parent) not in text, path.name
    start = json.loads((run_dir / "env.json").read_text())[0]
    assert start["data"]["source"] == data.name
    assert start["trainer_version"] == versions.TRAINER_VERSION
    runs = read_table(results / "runs.csv", schemas.RUNS)
    row = runs.iloc[0]
    assert row["data_source"] == data.name and row["data_format"] == "cifar-pickle"
    assert row["trainer_version"] == versions.TRAINER_VERSION
    assert (
        row["cpu_flags"] == provenance.cpu_flags() and row["machine_id"] == provenance.machine_id()
    )
    assert row["cpu_kernels"] == start["cpu_kernels"] == provenance.cpu_kernels()
    assert not _leaks_path((results / "runs.csv").read_text(), data)


def _leaks_path(text: str, data: Path) -> bool:
    return str(data.parent) in text


def test_responses_rows_carry_the_provenance_columns(trained):
    from ablations.measure.responses import responses_for_run

    results, config, data = trained
    rows = responses_for_run(results / "runs" / config.run_id, data=data, device="cpu")
    assert set(schemas.PROVENANCE) <= set(rows.columns)
    assert set(rows["data_source"]) == {data.name}
    assert set(rows["trainer_version"]) == {versions.TRAINER_VERSION}
    assert all(rows["created_at"]) and all(rows["machine"])
    # Which kernels measured them and under which precision, as runs.csv says of a run.
    assert set(rows["cpu_kernels"]) == {provenance.cpu_kernels()}
    assert set(rows["torch_threads"]) == {torch.get_num_threads()}
    assert set(rows["precision"]) == {config.precision}


def test_a_stale_run_is_planned_again_and_set_aside(trained, tmp_path, monkeypatch, capsys):
    """A run made by an older trainer is not done: `plan` says "stale (trainer vN, now vM)", and
    training it moves the old directory to runs/.stale/<run_id>.v<N>/ (nothing is deleted)."""
    results, config, data = trained
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    ctx = Context(results=copy, data=data, device=__import__("torch").device("cpu"))
    task = Task("train", "x", ("degradation",), config=config)
    assert is_done(task, ctx) and state(task, ctx) == "done"
    monkeypatch.setattr(versions, "TRAINER_VERSION", versions.TRAINER_VERSION + 1)
    now = versions.TRAINER_VERSION
    assert not is_done(task, ctx)
    assert state(task, ctx) == f"stale (trainer v{now - 1}, now v{now})"
    table = status_table([task], ctx)
    assert table["state"].tolist() == [state(task, ctx)] and table["command"].iloc[0]
    old_summary = (copy / "runs" / config.run_id / "summary.json").read_text()
    assert records.load_current(copy / "runs" / config.run_id) is None
    assert (copy / "runs" / config.run_id / "summary.json").exists()  # untouched until trained
    with pytest.raises(DataError):  # bad data: the stale run stays where it was
        train(config, out=copy / "runs", data=tmp_path / "missing.tar.gz", show_progress=False)
    assert (copy / "runs" / config.run_id / "summary.json").read_text() == old_summary
    records.retire_stale(copy / "runs" / config.run_id)
    parked = copy / "runs" / versions.STALE_DIR / f"{config.run_id}.v{now - 1}"
    assert (parked / "summary.json").read_text() == old_summary
    assert not (copy / "runs" / config.run_id).exists()
    assert "moved to" in capsys.readouterr().err
    assert rundir.finished_runs(copy / "runs") == []  # a set-aside run is not collected


def test_report_marks_dirty_and_stale_rows():
    runs = pd.DataFrame({"run_id": ["a", "b"], "git_commit": ["abc", "abc+dirty"],
                         "trainer_version": [versions.TRAINER_VERSION, 0]})  # fmt: skip
    notes = provenance_notes({"training runs": runs}, runs=runs)
    assert "**1 of 2 training runs were produced from a dirty tree (commit abc+dirty)" in notes
    assert f"older trainer than v{versions.TRAINER_VERSION}" in notes
    assert "again: b (trainer v0)." in notes
    assert provenance_notes({"training runs": runs.iloc[:1]}, runs=runs.iloc[:1]) == ""


def test_evaluations_section_shows_our_runs_and_the_paper(tmp_path):
    row = {c: 0 if kind in ("int", "float") else "" for c, kind in
           schemas.EVALUATIONS.columns.items()}  # fmt: skip
    row |= {"variant": "resnet20", "weights": "resnet20-12fca82f.th", "weights_format":
            "akamaster", "preprocessing": "imagenet-mean-std@32", "dataset": "cifar10",
            "split": "test", "images": 10000, "top1_error": 0.0873, "top5_error": 0.003,
            "loss": 0.3, "data_source": "cifar10-jpeg.tar.gz", "data_format": "imagefolder-tar",
            "data_checksum": "5bbd2193f3b9aa", "git_commit": "abc+dirty",
            "crops": "center"}  # fmt: skip
    write_table(pd.DataFrame([row]), tmp_path / schemas.EVALUATIONS_FILE, schemas.EVALUATIONS)
    runs = run_rows({"resnet20": [0.42, 0.44]}, profile="cpu")  # test errors 0.44 and 0.46
    write_table(runs, tmp_path / schemas.RUNS_FILE, schemas.RUNS)
    text = evaluations_section(tmp_path).markdown
    assert "| resnet20 | resnet20-12fca82f.th (akamaster) | imagenet-mean-std@32 |" in text
    assert "8.73%" in text and "45.0 ± 1.4% (cpu, 2 seeds)" in text
    assert "8.75% (paper)" in text and "8.27% (akamaster README)" in text
    assert "cifar10-jpeg.tar.gz (imagefolder-tar, sha256 5bbd2193f3b9)" in text
    assert "**abc+dirty (dirty tree)**" in text and "produced from a dirty tree" in text
    (tmp_path / schemas.EVALUATIONS_FILE).unlink()
    assert evaluations_section(tmp_path).markdown == ""


def test_every_measurement_table_has_the_machine_hashes():

    for schema in (schemas.RUNS, schemas.COMPLEXITY, schemas.TRAIN_SPEED, schemas.THROUGHPUT):
        assert set(schemas.MACHINE_HASHES) <= set(schema.columns), schema.name
    for schema in (schemas.RESPONSES, schemas.EVALUATIONS):
        assert set(schemas.PROVENANCE) <= set(schema.columns), schema.name
    # Timings and trained numbers depend on the CPU kernels that made them (complexity does not).
    for schema in (
        schemas.RUNS,
        schemas.RESPONSES,
        schemas.EVALUATIONS,
        schemas.TRAIN_SPEED,
        schemas.THROUGHPUT,
    ):
        assert {*schemas.KERNELS, "precision"} <= set(schema.columns), schema.name


def test_only_centre_crop_evaluations_are_set_beside_torchvisions_numbers():
    row = {c: 0 if kind in ("int", "float") else "" for c, kind in
           schemas.EVALUATIONS.columns.items()}  # fmt: skip
    row |= {"variant": "resnet50", "weights": "torchvision:IMAGENET1K_V1", "weights_format":
            "torchvision", "preprocessing": "resize256-crop224-imagenet-mean-std",
            "dataset": "imagenet", "split": "val", "images": 50000, "top1_error": 0.2397,
            "top5_error": 0.0724, "git_commit": "abc"}  # fmt: skip
    rows = [row | {"crops": crops} for crops in ("center", "ten-crop", "multi-scale")]
    evaluations = schemas.EVALUATIONS.validate(pd.DataFrame(rows))
    table = evaluations_table(evaluations, schemas.RUNS.empty())
    assert list(table["preprocessing"]) == [
        "resize256-crop224-imagenet-mean-std",
        "resize256-crop224-imagenet-mean-std, ten-crop",
        "resize256-crop224-imagenet-mean-std, multi-scale",
    ]
    published = list(table["published"])
    assert "(torchvision V1, top-1 / top-5); ours +0.10 / +0.10 points" in published[0]
    assert published[1:] == ["", ""]  # torchvision publishes no 10-crop or multi-scale numbers
