"""Plugins: the README's snippet as a plugin file, entry points of an installed distribution,
ABLATE_PLUGINS, `ablate --plugin`, what a broken plugin prints, and that the processes `ablate`
starts see the same variants."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from readme_snippets import snippet_and_command

from ablations import plugins
from ablations.cli import main, plugin_options
from ablations.profiles import PROFILES
from ablations.registry import list_variants

ROOT = Path(__file__).resolve().parents[1]


def adding_a_variant() -> tuple[str, str, str]:
    """The README's "Adding a variant" snippet, the name it registers, and its `ablate` line."""
    snippet, command = snippet_and_command("### Adding a variant")
    name = re.search(r'name="([^"]+)"', snippet)
    assert name, "the snippet names its variant"
    return snippet, name[1], command


def ablate(*argv: str, cwd: Path, env: dict[str, str] | None = None, path: str = "") -> (
    subprocess.CompletedProcess[str]
):  # fmt: skip
    """`ablate ARGV` in a fresh interpreter, with `path` before the project on PYTHONPATH."""
    full = {k: v for k, v in os.environ.items() if k != plugins.ENV}  # only what `env` says
    full.update(env or {})
    full["PYTHONPATH"] = os.pathsep.join(p for p in (path, str(ROOT)) if p)
    return subprocess.run([sys.executable, "-m", "ablations", *argv], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def registering(name: str, *, base: str = "resnet20", width: int = 32) -> str:
    return (
        "from ablations.registry import derive, register_variant\n"
        f"register_variant(derive({base!r}, name={name!r}, width={width}))\n"
    )


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, scratch_registry: list[str]) -> Iterator[None]:
    """No plugin loaded and none named in the environment; what a test loads is forgotten
    afterwards (its variants, modules and profiles)."""
    monkeypatch.setattr(plugins, "_loaded", [])
    monkeypatch.setenv(plugins.ENV, "")
    modules, profiles = set(sys.modules), set(PROFILES)
    yield
    for name in set(sys.modules) - modules:
        if name.startswith("_ablate_plugin_") or name.startswith("plugin_test_"):
            del sys.modules[name]
    for name in set(PROFILES) - profiles:
        del PROFILES[name]


# --- the README ------------------------------------------------------------------------------


def test_the_readme_snippet_works_as_a_plugin_file(tmp_path):
    snippet, name, command = adding_a_variant()
    assert name not in list_variants(), "the example's name is no built-in's"
    owners = [p.name for p in (ROOT / "tests").rglob("*.py") if f'"{name}"' in p.read_text()]
    assert not owners, f"a user who pastes the snippet would clash with {owners}"
    assert name in command.split()
    words = shlex.split(command)
    [file] = [w for w in words if w.endswith(".py")]
    write(tmp_path / file, snippet)
    done = ablate(*words[1:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert name in done.stdout.split()


def test_the_readme_snippet_works_pasted_at_the_end_of_variants_py(tmp_path):
    snippet, name, _ = adding_a_variant()
    copy = tmp_path / "src" / "ablations"
    shutil.copytree(ROOT / "ablations", copy, ignore=shutil.ignore_patterns("__pycache__"))
    variants = copy / "variants.py"
    variants.write_text(variants.read_text() + "\n" + snippet)
    probe = f"import ablations; print(ablations.get_variant({name!r}).name)"
    env = {**os.environ, "PYTHONPATH": str(copy.parent)}
    env.pop(plugins.ENV, None)
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [name]


# --- where plugins come from -----------------------------------------------------------------


def test_entry_points_of_an_installed_distribution_are_loaded(tmp_path):
    site = tmp_path / "site"
    write(site / "plugin_test_dist-1.0.dist-info" / "METADATA",
          "Metadata-Version: 2.1\nName: plugin-test-dist\nVersion: 1.0\n")  # fmt: skip
    write(site / "plugin_test_dist-1.0.dist-info" / "entry_points.txt", """\
        [ablations.plugins]
        mine = plugin_test_module
        called = plugin_test_setup:register
        """)  # fmt: skip
    write(site / "plugin_test_module.py", registering("resnet20-from-module"))
    write(
        site / "plugin_test_setup.py",
        f"def register():\n    exec({registering('resnet20-called')!r})\n",
    )
    done = ablate("list", "resnet20-from-module", "resnet20-called", "--format", "csv",
                  cwd=tmp_path, path=str(site))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [line.split(",")[0] for line in done.stdout.splitlines()[1:]] == [
        "resnet20-from-module", "resnet20-called",
    ]  # fmt: skip


def test_ablate_plugins_names_modules_and_files(tmp_path):
    module = write(tmp_path / "lib" / "plugin_test_env.py", registering("resnet20-env-module"))
    file = write(tmp_path / "elsewhere" / "loose.py", registering("resnet20-env-file"))
    env = {plugins.ENV: f"{module.stem}, {file}"}
    done = ablate("list", "resnet20-env-*", "--format", "csv", cwd=tmp_path, env=env,
                  path=str(module.parent))  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = [line.split(",")[0] for line in done.stdout.splitlines()[1:]]
    assert names == ["resnet20-env-module", "resnet20-env-file"]


def test_a_plugin_file_registers_a_profile_before_the_parser_is_built(tmp_path, fresh, capsys):
    file = write(tmp_path / "budget.py", """\
        from dataclasses import replace
        from ablations.profiles import PROFILES
        PROFILES["plugin-budget"] = replace(PROFILES["smoke"], name="plugin-budget")
        """)  # fmt: skip
    argv = ["--plugin", str(file), "plan", "--profile", "plugin-budget", "--experiments",
            "degradation", "--device", "cpu", "--results", str(tmp_path / "results")]  # fmt: skip
    assert main(argv) == 0
    assert "ablate train plain20 --profile plugin-budget" in capsys.readouterr().out


def test_leading_plugin_options_are_found_before_parsing():
    words = ["--plugin", "a.py", "--plugin=b.py", "list", "--plugin", "c.py"]
    assert plugin_options(words) == ["a.py", "b.py"]  # after the subcommand: a usage error


# --- loading once, and errors ----------------------------------------------------------------


def test_loading_a_plugin_twice_registers_nothing_twice(tmp_path, fresh, capsys, monkeypatch):
    file = write(tmp_path / "plugin_test_twice.py", registering("resnet20-twice"))
    missing = str(tmp_path / "none.csv")
    argv = ["--plugin", str(file), "--plugin", str(file), "list", "resnet20-twice", "--results",
            missing]  # fmt: skip
    assert main(argv) == 0 and main(argv) == 0
    assert "resnet20-twice" in capsys.readouterr().out
    assert os.environ[plugins.ENV] == str(file.resolve())  # what a child process loads
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.load_item("plugin_test_twice")  # the same file by its module name
    plugins.load_environment()
    assert list_variants("resnet20-twice") == ["resnet20-twice"]


def test_a_broken_plugin_is_one_line_naming_it_and_the_cause(tmp_path, fresh, capsys):
    file = write(tmp_path / "broken.py", "width = 32\nratio = width / 0\n")
    assert main(["--plugin", str(file), "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"ablate: error: plugin '{file}' (--plugin) failed at line 2: ")
    assert "ZeroDivisionError: division by zero" in err
    assert main(["--plugin", str(tmp_path / "absent.py"), "list"]) == 2
    assert "absent.py' (--plugin): no such file" in capsys.readouterr().err


def test_a_plugin_that_registers_a_taken_name_says_so(tmp_path, fresh, capsys):
    file = write(tmp_path / "taken.py", registering("resnet20"))
    assert main(["--plugin", str(file), "list"]) == 2
    assert "variant name 'resnet20' is already registered" in capsys.readouterr().err


def test_a_broken_module_in_ablate_plugins_exits_2_in_one_line(tmp_path):
    done = ablate("list", cwd=tmp_path, env={plugins.ENV: "plugin_test_absent"})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "ablate: error: plugin 'plugin_test_absent' (ABLATE_PLUGINS) failed: "
        "ModuleNotFoundError: No module named 'plugin_test_absent'"
    ]


# --- child processes -------------------------------------------------------------------------


def test_a_spawned_process_loads_the_plugins_of_its_parent(tmp_path):
    """What a worker pool, a spawned trainer or a submitit job does: a new interpreter imports
    `ablations`, and ABLATE_PLUGINS (written when the parent loaded its plugins) names them."""
    file = write(tmp_path / "child.py", registering("resnet20-child"))
    script = write(tmp_path / "parent.py", """\
        import multiprocessing, sys
        from ablations import plugins, registry

        if __name__ == "__main__":
            plugins.load([sys.argv[1]])
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                print(pool.apply(registry.list_variants, ("resnet20-child",)))
        """)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != plugins.ENV}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, str(script), str(file)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['resnet20-child']"
