"""Plug-ins: solvers and problems from your own package or file, found at CLI or sweep start.

Three ways in, all loaded lazily (never when this module is imported):

* an installed distribution's entry points in the groups ``adpbench.solvers`` / ``adpbench.problems``
  (``ENTRY_POINT_GROUPS``): ``my_solver = "my_pkg.solver:MySolver"`` names a class, which is registered
  under its ``name``; an entry point naming a module registers on import;
* ``--plugin PATH.py`` (a plain file) or ``--plugin MODULE`` (an importable module), repeatable, on
  ``adpbench run/list/report/check-solver``; ``plugins = [...]`` in a TOML sweep (paths relative to it);
* a plug-in module registers what it brings with ``solvers.register_solver`` / ``problems.register_problem``.

Every loaded plug-in is described by a :class:`PluginSpec`: a file by its absolute path and the sha256 of its
bytes, a module or entry point by its name and its distribution's version. Sweep jobs carry the specs, and
each worker (a pool process, a Dask worker, a submitit job, a resumed sweep) loads them before it resolves a
name (:func:`ensure`); a file whose hash no longer matches fails the run with a line saying so. Every trace
records the specs (provenance column ``plugins``).

A name clash (with a built-in or between plug-ins), a plug-in that cannot be imported or that registers
nothing: :class:`PluginError`, one line naming the plug-in and what is valid (the CLI exits with status 2
before any run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import problems as problem_registry
import solvers as solver_registry
from problems.values import NameClash

#: entry-point group → the registry its entries go to
ENTRY_POINT_GROUPS = {"adpbench.solvers": "solver", "adpbench.problems": "problem"}
#: prefix of the module name a plug-in file is imported as (stable across processes, so it pickles)
FILE_MODULE_PREFIX = "adpbench_plugin_"
#: hex digits of a file hash shown in messages and reports (the record keeps all 64)
SHORT_HASH = 12


class PluginError(ValueError):
    """A plug-in that cannot be used: one line naming it and what is valid."""


@dataclass(frozen=True)
class PluginSpec:
    """How to load one plug-in again, in any process: ``kind`` is "file" (``target``: absolute path,
    ``digest``: sha256 of its bytes), "module" (``target``: module name, ``digest``: its version) or
    "entry_point" (``target``: ``group:name``, ``digest``: its distribution's version). ``registers``
    lists what it registered here (``solver:NAME`` / ``problem:NAME``)."""

    kind: str
    target: str
    digest: str
    label: str
    registers: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    #: the ``sys.path`` entry a module or entry point was found in here: a worker started with another
    #: path (a fork server started earlier, a Dask worker, a submitit job) looks there too
    location: str = dataclasses.field(default="", compare=False)

    def record(self) -> dict[str, Any]:
        """What provenance keeps: name, kind, version or file hash, and what it registered."""
        key = "sha256" if self.kind == "file" else "version"
        return {"name": self.label, "kind": self.kind, key: self.digest, "registers": list(self.registers)}

    def line(self) -> str:
        """One line for a report: ``name (sha256 0123abcd…)`` or ``name 1.2``."""
        if self.kind == "file":
            return f"{self.label} (sha256 {self.digest[:SHORT_HASH]})"
        return f"{self.label} {self.digest}"


#: loaded plug-ins by (kind, target), in load order
_LOADED: dict[tuple[str, str], PluginSpec] = {}
#: which plug-in registered each (registry, name); built-ins are absent
_ORIGIN: dict[tuple[str, str], str] = {}
_entry_points_done = False


def _registered() -> set[tuple[str, str]]:
    return {("solver", n) for n in solver_registry.solver_names()} | {
        ("problem", n) for n in problem_registry.problem_names()
    }


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _module_version(module: str) -> str:
    """The version of the distribution that provides ``module`` (or its ``__version__``; "unknown")."""
    top = module.split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    loaded = sys.modules.get(module)
    return str(getattr(loaded, "__version__", "unknown"))


def spec_of(text: str, base: Path | None = None) -> PluginSpec:
    """The spec of a ``--plugin`` value: a path ending in ``.py`` (relative to ``base``, default the
    working directory) or an importable module name; a one-line PluginError otherwise."""
    if text.endswith(".py") or "/" in text or "\\" in text:
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        path = path.resolve()
        if not path.is_file():
            raise PluginError(f"plug-in {text}: no such file (expected a .py file or an importable module)")
        return PluginSpec("file", str(path), file_digest(path), path.name)
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", text):
        raise PluginError(f"plug-in {text!r}: neither a .py file nor a module name")
    try:
        found = importlib.util.find_spec(text)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise PluginError(
            f"plug-in {text}: no module of that name (expected a .py file or an importable module)"
        )
    return PluginSpec("module", text, _module_version(text), text, location=_root_of(found, text))


def _root_of(found: Any, module: str) -> str:
    """The ``sys.path`` entry a module was found under ("" when it is not a file)."""
    origin = getattr(found, "origin", None)
    if not origin or not Path(origin).is_file():
        return ""
    root = Path(origin).parent
    depth = module.count(".") + (1 if Path(origin).name == "__init__.py" else 0)
    for _ in range(depth):
        root = root.parent
    return str(root)


def _entry_point(group: str, name: str) -> importlib.metadata.EntryPoint:
    for ep in importlib.metadata.entry_points(group=group):
        if ep.name == name:
            return ep
    raise PluginError(f"plug-in entry point {group}:{name} is not installed here")


def _entry_spec(ep: importlib.metadata.EntryPoint) -> PluginSpec:
    version = ep.dist.version if ep.dist is not None else "unknown"
    dist = ep.dist.name if ep.dist is not None else "?"
    location = str(ep.dist.locate_file("")) if ep.dist is not None else ""
    return PluginSpec("entry_point", f"{ep.group}:{ep.name}", version, f"{dist}:{ep.name}", location=location)


def _reach(spec: PluginSpec) -> None:
    """Put where the plug-in was found on ``sys.path`` when this process lacks it (a worker)."""
    if spec.location and spec.location not in sys.path and Path(spec.location).is_dir():
        sys.path.append(spec.location)
        importlib.invalidate_caches()


def entry_point_specs() -> list[PluginSpec]:
    """The installed entry points of ``ENTRY_POINT_GROUPS`` (not loaded)."""
    return [
        _entry_spec(ep) for group in ENTRY_POINT_GROUPS for ep in importlib.metadata.entry_points(group=group)
    ]


def _current_digest(spec: PluginSpec) -> str:
    if spec.kind == "file":
        path = Path(spec.target)
        if not path.is_file():
            raise PluginError(
                f"plug-in {spec.label}: {spec.target} is not there (this process cannot load it)"
            )
        return file_digest(path)
    if spec.kind == "module":
        return _module_version(spec.target)
    group, name = spec.target.split(":", 1)
    return _entry_spec(_entry_point(group, name)).digest


def _import(spec: PluginSpec) -> None:
    """Run the plug-in's code (which registers) — a file as module ``adpbench_plugin_<stem>``."""
    if spec.kind == "file":
        path = Path(spec.target)
        name = FILE_MODULE_PREFIX + re.sub(r"\W", "_", path.stem)
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # dataclasses and pickle look the module up by name
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    elif spec.kind == "module":
        importlib.import_module(spec.target)
    else:
        group, name = spec.target.split(":", 1)
        obj = _entry_point(group, name).load()
        if isinstance(obj, type):
            kind = ENTRY_POINT_GROUPS[group]
            if getattr(obj, "name", None) != name:
                raise PluginError(
                    f"plug-in {spec.label}: entry point {name!r} names class {obj.__qualname__}, "
                    f"whose name is {getattr(obj, 'name', None)!r}; the two must be equal"
                )
            (solver_registry.register_solver if kind == "solver" else problem_registry.register_problem)(obj)


def _valid(kind: str) -> str:
    names = solver_registry.solver_names() if kind == "solver" else problem_registry.problem_names()
    return ", ".join(sorted(names))


def load(spec: PluginSpec) -> PluginSpec:
    """Load one plug-in (once per process): check its hash or version against ``spec.digest``, run its
    code, record what it registered. A PluginError naming the plug-in for any failure."""
    key = (spec.kind, spec.target)
    _reach(spec)
    have = _current_digest(spec)
    if have != spec.digest:
        what = "sha256" if spec.kind == "file" else "version"
        shown = (lambda d: d[:SHORT_HASH]) if spec.kind == "file" else (lambda d: d)
        raise PluginError(
            f"plug-in {spec.label}: {what} {shown(have)} here, but the sweep started with "
            f"{shown(spec.digest)} ({spec.target} changed since; rerun the sweep)"
        )
    if key in _LOADED:
        return _LOADED[key]
    before = _registered()
    try:
        _import(spec)
    except NameClash as exc:
        origin = _ORIGIN.get((exc.kind, exc.name), "a built-in")
        raise PluginError(
            f"plug-in {spec.label}: {exc.kind} name {exc.name!r} is already registered by {origin}; "
            f"choose a name not in: {_valid(exc.kind)}"
        ) from None
    except PluginError:
        raise
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise PluginError(f"plug-in {spec.label}: cannot import it: {type(exc).__name__}: {text}") from None
    added = sorted(_registered() - before)
    if not added:
        raise PluginError(
            f"plug-in {spec.label}: registers no solver or problem (call solvers.register_solver or "
            f"problems.register_problem in it, or name a class in its entry point)"
        )
    for item in added:
        _ORIGIN[item] = f"plug-in {spec.label}"
    loaded = dataclasses.replace(spec, registers=tuple(f"{k}:{n}" for k, n in added))
    _LOADED[key] = loaded
    return loaded


def activate(extra: Iterable[str] = (), base: Path | None = None) -> tuple[PluginSpec, ...]:
    """At CLI or sweep start: load the installed entry points (once) and the ``--plugin`` values in
    ``extra`` (paths relative to ``base``); return every plug-in loaded in this process."""
    global _entry_points_done
    if not _entry_points_done:
        _entry_points_done = True
        for spec in entry_point_specs():
            load(spec)
    for text in extra:
        load(spec_of(text, base))
    return loaded()


def ensure(specs: Iterable[PluginSpec]) -> None:
    """In a worker: load what a job names (hash- or version-checked) before any name is resolved."""
    for spec in specs:
        load(spec)


def loaded() -> tuple[PluginSpec, ...]:
    """Plug-ins loaded in this process, in load order."""
    return tuple(_LOADED.values())


def origin(kind: str, name: str) -> str | None:
    """The plug-in that registered a solver or problem name (None for a built-in)."""
    return _ORIGIN.get((kind, name))


def provider(kind: str, name: str) -> PluginSpec | None:
    """The spec of the plug-in that registered a solver or problem name (None for a built-in)."""
    return next((s for s in _LOADED.values() if f"{kind}:{name}" in s.registers), None)


def records(specs: Iterable[PluginSpec] | None = None) -> str:
    """The provenance column: a JSON list of each plug-in's record (``[]`` without plug-ins)."""
    return json.dumps([s.record() for s in (loaded() if specs is None else specs)], sort_keys=True)


def reset() -> None:
    """Unload every plug-in from the registries (tests); the entry points are looked for again."""
    global _entry_points_done
    for (kind, name), _ in list(_ORIGIN.items()):
        (solver_registry.unregister_solver if kind == "solver" else problem_registry.unregister_problem)(name)
    modules = {s.target for s in _LOADED.values() if s.kind == "module"}
    for name in [m for m in sys.modules if m.startswith(FILE_MODULE_PREFIX) or m in modules]:
        del sys.modules[name]
    _ORIGIN.clear()
    _LOADED.clear()
    _entry_points_done = False
