from __future__ import annotations

import argparse
import ast
import io
import json
from pathlib import Path

import pandas as pd
import pytest

import ablations.cli
from ablations.cli import main
from ablations.cli.parser import build_parser
from ablations.measure import complexity
from ablations.profiles import PROFILES
from ablations.results import schemas
from ablations.results.table import read_table


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_table_has_the_documented_columns(capsys, tmp_path):
    code, out, _ = run(capsys, "list", "resnet20", "plain20", "--results", str(tmp_path / "x.csv"))
    assert code == 0
    header, columns = out.splitlines()[:2]
    assert header.startswith("# macs = fvcore count")
    for column in ["name", "family", "depth", "block", "residual", "shortcut", "stem", "width",
                   "input_size", "params", "macs"]:  # fmt: skip
        assert column in columns.split()
    assert "269,722" in out and "40,551,040" in out


def test_list_csv_and_json(capsys, tmp_path):
    missing = str(tmp_path / "x.csv")
    code, out, _ = run(
        capsys, "list", "resnet2*", "--exclude", "*-k7", "--format", "csv", "--results", missing
    )
    df = pd.read_csv(io.StringIO(out))
    assert code == 0 and list(df["name"]) == ["resnet20", "resnet20-b", "resnet20-c"]
    code, out, _ = run(capsys, "list", "resnet18", "--format", "json", "--results", missing)
    [row] = json.loads(out)
    assert row["params"] == 11_689_512 and row["macs"] == 1_814_073_344


def test_list_reuses_up_to_date_results(capsys, tmp_path, monkeypatch):
    path = tmp_path / "complexity.csv"
    complexity.update(path, ["resnet20"])
    monkeypatch.setattr(complexity, "complexity_row", lambda v: pytest.fail("recomputed"))
    code, out, _ = run(capsys, "list", "resnet20", "--results", str(path))
    assert code == 0 and "269,722" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["list", "resnet57"], "no registered variant matches 'resnet57'; closest: resnet56"),
        (["list", "resnet20", "--exclude", "*"], "loosen --exclude"),
        (["run", "--experiments", "bogus"], "unknown experiment 'bogus'; choose from: complexity"),
        (["complexity", "plain20-b"], "closest"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, expected):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ablate: error: ")
    assert expected in err


def test_corrupt_results_file_is_named_and_kept(capsys, tmp_path):
    path = tmp_path / "complexity.csv"
    path.write_text("not,a,complexity,table\n1,2,3,4\n")
    code, _, err = run(capsys, "complexity", "resnet20", "--out", str(path))
    assert code == 2 and str(path) in err
    assert path.read_text() == "not,a,complexity,table\n1,2,3,4\n"  # nothing lost


def test_complexity_then_report(capsys, tmp_path):
    results, reports = tmp_path / "results", tmp_path / "reports"
    out_csv = results / schemas.COMPLEXITY_FILE
    names = ["resnet20", "resnet56", "plain20", "plain56", "resnet18", "resnet34", "plain18"]
    code, _, _ = run(capsys, "complexity", *names, "--out", str(out_csv))
    assert code == 0
    table = read_table(out_csv, schemas.COMPLEXITY)
    assert len(table) == 7 and set(table["machine"]) and set(table["git_commit"])
    code, _, _ = run(capsys, "report", "--results", str(results), "--out", str(reports))
    assert code == 0
    for name in ("complexity.png", "complexity.svg", "README.md"):
        assert (reports / name).stat().st_size > 0
    readme = (reports / "README.md").read_text()
    assert "![Params and MACs against depth](complexity.png)" in readme
    assert "| resnet18 | 11,689,512 | 11,689,512 | 1.814 | 1.814 |" in readme


def test_report_without_results_says_what_to_run(capsys, tmp_path):
    code, _, _ = run(
        capsys, "report", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "r")
    )
    assert code == 0
    assert "run `ablate complexity`" in Path(tmp_path / "r" / "README.md").read_text()


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "resnet20", "--precision", "fp8"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and "invalid choice: 'fp8'" in err and "--help" in err


def test_help_describes_ablate_as_the_package_docstring_does():
    assert build_parser().description == ablations.cli.__doc__.splitlines()[0]


@pytest.mark.parametrize(
    "module", ["options", "report_commands", "speed_commands", "train_commands"]
)
def test_handlers_never_import_the_parser(module):
    """The parser imports the handlers (set_defaults(func=...)); the other way would be a cycle."""
    tree = ast.parse((Path(ablations.cli.__file__).parent / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):  # `from ablations import cli` names ablations.cli
            imported |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    assert not {"ablations.cli", "ablations.cli.parser"} & imported


def test_report_shows_throughput_without_mixing_settings(capsys, tmp_path):
    from ablations.measure import throughput

    results = tmp_path / "results"
    quick = {"device": "cpu", "modes": ["infer"], "warmup": 1, "repeats": 1, "steps": 1}
    settings = throughput.grid(["resnet20", "plain20"], **quick)
    settings += throughput.grid(["resnet20"], channels_last=(True,), **quick)  # another setting
    throughput.run(settings, out=results / schemas.THROUGHPUT_FILE, show_progress=False)
    assert run(capsys, "report", "--results", str(results), "--out", str(tmp_path / "r"))[0] == 0
    readme = (tmp_path / "r" / "README.md").read_text()
    assert "## Throughput" in readme and "Measured on a CPU" in readme
    assert "1 other rows in the file" in readme
    assert (tmp_path / "r" / "throughput.png").exists()


def _options():
    """(subcommand, option action) for every option of every `ablate` subcommand."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [(name, action) for name, p in sub.choices.items() for action in p._actions
            if action.option_strings]  # fmt: skip


def test_every_number_option_has_a_range():
    # A bare int lets 0 or -1 through, where `args.steps or 10` reads 0 as unset and a row of
    # nonsense gets recorded; every count takes options.at_least instead.
    bare = [f"{name} {a.option_strings[-1]}" for name, a in _options() if a.type in (int, float)]
    assert not bare


COUNTS = [(name, a.option_strings[-1], a.type.minimum) for name, a in _options()
          if hasattr(a.type, "minimum")]  # fmt: skip


@pytest.mark.parametrize(("command", "option", "minimum"), COUNTS, ids=str)
def test_a_count_below_its_minimum_is_a_one_line_usage_error(command, option, minimum, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, option, str(minimum - 1)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{option}: must be >= {minimum}" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "resnet20", "--steps", "0"],  # refused, not read as the default steps
        ["train-speed", "resnet20", "--warmup", "-1"],  # refused, no row recorded
        ["run", "--profile", "smoke", "--seeds", "0"],  # refused, not read as the profile's seeds
        ["loader-speed", "--paths", "cpu-decode,bogus"],
        ["loader-speed", "--workers", "1,x"],
    ],
)
def test_bad_counts_and_lists_are_refused_before_anything_is_written(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and not any(tmp_path.iterdir())


# --- where `ablate run` reports --------------------------------------------------------------

BLOCK = "<!-- ablate:runs-summary -->\nold\n<!-- /ablate:runs-summary -->\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder (README.md with a generated block, a committed reports/) as the working
    directory, and `ablate run` with nothing left to run."""
    from ablations import pipeline

    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text(BLOCK)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "kept.txt").write_text("committed")
    done = {"ran": 0, "done": 0, "left": 0, "recorded": 0}
    monkeypatch.setattr(pipeline, "execute", lambda tasks, ctx, **options: done)
    return tmp_path


def _run(*argv):
    return main(["run", "--experiments", "degradation", "--device", "cpu", *argv])


@pytest.mark.parametrize(
    ("argv", "report"),
    [
        (["--profile", "smoke"], "results/report"),  # the project's results/, a scratch profile
        (["--profile", "cpu", "--results", "scratch"], "scratch/report"),  # another folder
        (["--profile", "smoke", "--reports", "mine"], "mine"),  # asked for
    ],
)
def test_a_scratch_run_reports_beside_its_results(project, capsys, argv, report):
    assert _run(*argv) == 0
    assert (project / report / "README.md").exists()
    assert (project / "README.md").read_text() == BLOCK
    assert [p.name for p in (project / "reports").iterdir()] == ["kept.txt"]
    assert f"[ablate] report: {Path(report) / 'README.md'}" in capsys.readouterr().err


def test_a_committed_run_renders_reports_and_the_readme(project, capsys):
    assert _run("--profile", "cpu") == 0
    assert (project / "reports" / "README.md").exists()
    assert "old" not in (project / "README.md").read_text()  # the block is regenerated
    assert "[ablate] report:" not in capsys.readouterr().err


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_built_in_profile_but_the_smoke_tests_is_committed(profile):
    assert PROFILES[profile].committed == ("smoke" not in profile)
