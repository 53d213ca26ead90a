"""Plugins: code outside the package that registers variants, experiments or profiles.

`ablate` loads three kinds when it starts, in this order: the entry points of the group
`ablations.plugins` (installed packages), the items of ABLATE_PLUGINS (comma-separated module
names, `module:function`, or paths of .py files), and each `ablate --plugin PATH.py`. Importing a
plugin is what registers its variants; an entry point or `module:function` that names a callable
is called once as well.

Loading is idempotent: a plugin already loaded, under any of its names, is not run again, so that
nothing is registered twice. Every loaded plugin is written back into ABLATE_PLUGINS, and
`import ablations` loads what that variable names, so the processes `ablate` starts (worker
pools, spawned trainers, submitit jobs) hold the same registry as the process that started them.
"""

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
from types import ModuleType

from ablations.registry import AblationsError

GROUP = "ablations.plugins"
ENV = "ABLATE_PLUGINS"
NOT_IN_NAMES = re.compile(r"\W")

# Each loaded plugin, by the key it is known by, and the item that loads it again elsewhere (a
# module spec, or the absolute path of a file).
_loaded: dict[str, str] = {}


class PluginError(AblationsError):
    """A plugin that cannot be loaded: the message names the plugin and the cause."""


def split(text: str) -> list[str]:
    """The items of an ABLATE_PLUGINS value, in order, without blanks or repeats."""
    return list(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))


def is_file(item: str) -> bool:
    return item.endswith(".py")


def loaded() -> list[str]:
    """The loaded plugins, as ABLATE_PLUGINS names them."""
    return list(_loaded.values())


def load_item(item: str, *, origin: str = "") -> str:
    """Load one plugin: a path of a .py file, a module name, or `module:attribute` (called if
    callable). Returns the item that loads it again in another process. `origin` says where the
    item came from, for the error message."""
    if is_file(item):
        return _load_file(Path(item), origin=origin)
    return _load_module(item, origin=origin)


def load_entry_points() -> list[str]:
    """Load the entry points of the group `ablations.plugins`."""
    from importlib.metadata import entry_points  # reads installed metadata: only when asked

    done = []
    for point in entry_points(group=GROUP):
        item = point.module + (f":{point.attr}" if point.attr else "")
        done.append(load_item(item, origin=f"entry point {point.name!r}"))
    return done


def load_environment(*, defer: bool = False) -> list[str]:
    """Load the items of ABLATE_PLUGINS. With `defer`, a plugin that fails is skipped: `import
    ablations` must not fail, and `ablate` reports the error when it loads the same item."""
    done = []
    for item in split(os.environ.get(ENV, "")):
        try:
            done.append(load_item(item, origin=ENV))
        except PluginError:
            if not defer:
                raise
    return done


def load(files: Iterable[str | Path] = ()) -> list[str]:
    """What `ablate` loads when it starts: entry points, ABLATE_PLUGINS, then `files` (the
    --plugin options). The loaded plugins are passed on to child processes through the
    environment. Returns them, as ABLATE_PLUGINS names them."""
    load_entry_points()
    load_environment()
    for path in files:
        load_item(str(path), origin="--plugin")
    export()
    return loaded()


def export() -> None:
    """Name every loaded plugin in ABLATE_PLUGINS, for the processes started from here on."""
    # A file is named by its absolute path, which holds wherever the child starts.
    kept = [i for i in split(os.environ.get(ENV, "")) if not is_file(i)]
    value = ",".join(dict.fromkeys([*kept, *loaded()]))
    if value:
        os.environ[ENV] = value


# --- one plugin ----------------------------------------------------------------------------


def _described(item: str, origin: str) -> str:
    return f"plugin {item!r}" + (f" ({origin})" if origin else "")


def _failure(item: str, origin: str, err: BaseException, *, file: Path | None = None) -> str:
    """One line: the plugin, where in it the error arose (for a file), and the error."""
    cause = f"{type(err).__name__}: {err}".splitlines()[0]
    where = ""
    if file is not None and not isinstance(err, SyntaxError):  # a SyntaxError names its line
        lines = [f.lineno for f in traceback.extract_tb(err.__traceback__)
                 if f.filename == str(file)]  # fmt: skip
        where = f" at line {lines[-1]}" if lines else ""
    return f"{_described(item, origin)} failed{where}: {cause}"


def _imported_from(path: Path) -> ModuleType | None:
    """A module already imported from `path` (by its name, or as a plugin file)."""
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None)
        if source and os.path.basename(source) == path.name and Path(source).resolve() == path:
            return module
    return None


def _module_name(path: Path) -> str:
    """A module name for a plugin file, the same in every process (pickle finds classes a
    plugin defines by it)."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    return f"_ablate_plugin_{NOT_IN_NAMES.sub('_', path.stem)}_{digest}"


def _load_file(given: Path, *, origin: str) -> str:
    path = given.expanduser().resolve()
    key = str(path)
    if key in _loaded or _imported_from(path) is not None:
        _loaded.setdefault(key, key)
        return key
    if not path.is_file():
        raise PluginError(f"{_described(str(given), origin)}: no such file")
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{_described(str(given), origin)}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does: dataclasses and pickle look it up
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise PluginError(_failure(str(given), origin, err, file=path)) from err
    _loaded[key] = key
    return key


def _load_module(item: str, *, origin: str) -> str:
    if item in _loaded:
        return _loaded[item]
    name, _, attribute = item.partition(":")
    try:
        if name not in sys.modules and _file_already_loaded(name):
            _loaded[item] = item
            return item
        module = importlib.import_module(name)
        target = functools.reduce(getattr, attribute.split("."), module) if attribute else module
        if callable(target):
            target()
    except Exception as err:
        raise PluginError(_failure(item, origin, err)) from err
    _loaded[item] = item
    return item


def _file_already_loaded(name: str) -> bool:
    """Whether module `name` is a file already loaded as a plugin under another name: importing
    it again would register its variants twice."""
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    return origin is not None and str(Path(origin).resolve()) in _loaded
