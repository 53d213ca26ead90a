"""Plugins: code outside the package that registers variants, experiments or profiles, from the
entry points of the group `ablations.plugins`, from ABLATE_PLUGINS and from `ablate --plugin`.
Each loads once; `load` names them all in ABLATE_PLUGINS, which `import ablations` loads, so the
processes `ablate` starts hold the same registry. docs/variants.md#plugins has the details."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

from ablations.registry import AblationsError

GROUP = "ablations.plugins"
ENV = "ABLATE_PLUGINS"
NOT_IN_NAMES = re.compile(r"\W")

# The loaded plugins, each as the item that loads it again elsewhere: a module name (or
# `module:attribute`), or the absolute path of a file.
_loaded: list[str] = []


def split(text: str) -> list[str]:
    """The items of an ABLATE_PLUGINS value, in order, without blanks or repeats."""
    return list(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))


def load_item(item: str, *, origin: str = "") -> None:
    """Load one plugin: a path of a .py file, a module name, or `module:attribute` (called if
    callable). `origin` says where the item came from, for the error message."""
    described = f"plugin {item!r}" + (f" ({origin})" if origin else "")
    file = Path(item).expanduser().resolve() if item.endswith(".py") else None
    key = item if file is None else str(file)
    if key in _loaded:
        return
    if file is None:
        _load_module(item, described)
    elif not _imported(file):
        _load_file(file, described)
    _loaded.append(key)


def load_environment(*, defer: bool = False) -> None:
    """Load the items of ABLATE_PLUGINS. With `defer`, a plugin that fails is skipped: `import
    ablations` must not fail, and `ablate` reports the error when it loads the same item."""
    for item in split(os.environ.get(ENV, "")):
        try:
            load_item(item, origin=ENV)
        except AblationsError:
            if not defer:
                raise


def load(files: Iterable[str | Path] = ()) -> None:
    """What `ablate` loads when it starts: entry points, ABLATE_PLUGINS, then `files` (--plugin).
    Every loaded plugin is then named in ABLATE_PLUGINS, for child processes."""
    from importlib.metadata import entry_points  # reads installed metadata: only when asked

    for point in entry_points(group=GROUP):
        item = point.module + (f":{point.attr}" if point.attr else "")
        load_item(item, origin=f"entry point {point.name!r}")
    load_environment()
    for path in files:
        load_item(str(path), origin="--plugin")
    # A file is named by its absolute path, which holds wherever the child starts.
    kept = [item for item in split(os.environ.get(ENV, "")) if not item.endswith(".py")]
    value = ",".join(dict.fromkeys([*kept, *_loaded]))
    if value:
        os.environ[ENV] = value


def _failure(described: str, err: BaseException, *, file: Path | None = None) -> AblationsError:
    """One line: the plugin, where in it the error arose (for a file), and the error."""
    cause = f"{type(err).__name__}: {err}".splitlines()[0]
    where = ""
    if file is not None and not isinstance(err, SyntaxError):  # a SyntaxError names its line
        tb = traceback.extract_tb(err.__traceback__)
        lines = [frame.lineno for frame in tb if frame.filename == str(file)]
        where = f" at line {lines[-1]}" if lines else ""
    return AblationsError(f"{described} failed{where}: {cause}")


def _imported(path: Path) -> bool:
    """Whether a module was already imported from `path` (by its name, or as a plugin file)."""
    files = (getattr(module, "__file__", None) for module in list(sys.modules.values()))
    return any(f and Path(f).name == path.name and Path(f).resolve() == path for f in files)


def _load_file(path: Path, described: str) -> None:
    if not path.is_file():
        raise AblationsError(f"{described}: no such file")
    # The same module name in every process: pickle finds a plugin's classes by it.
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    name = f"_ablate_plugin_{NOT_IN_NAMES.sub('_', path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AblationsError(f"{described}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does: dataclasses and pickle look it up
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise _failure(described, err, file=path) from err


def _load_module(item: str, described: str) -> None:
    name, _, attribute = item.partition(":")
    try:
        # A module that is a file already loaded as a plugin: importing it again would
        # register its variants twice.
        spec = None if name in sys.modules else importlib.util.find_spec(name)
        if spec is not None and spec.origin and str(Path(spec.origin).resolve()) in _loaded:
            return
        module = importlib.import_module(name)
        target = functools.reduce(getattr, attribute.split("."), module) if attribute else module
        if callable(target):
            target()
    except Exception as err:
        raise _failure(described, err) from err
