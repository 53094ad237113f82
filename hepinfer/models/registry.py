"""The model registry: every model hepinfer can score, by name, and where its declaration came from.

:class:`Registry` is a read-only mapping of name -> :class:`~hepinfer.models.spec.ModelSpec`
(``hepinfer.SPECS`` is the one of the process) with :meth:`Registry.register` to add models.  A
model comes from one of these sources (:meth:`Registry.source_of` names it):

``built-in``
    the models hepinfer declares (``hepinfer/models/builtin_specs.py``); listed first.
``python``
    registered in code: ``hepinfer.register_model(spec)`` (:func:`register`).
a TOML file's path
    declared in a TOML file (:mod:`hepinfer.models.declare`) named by the ``HEPINFER_MODELS``
    environment variable (files, or folders of ``*.toml`` files, separated by ``os.pathsep``), or
    loaded with :func:`load_file`.
``entry point <name> (<distribution>)``
    an installed package's entry point of the group ``hepinfer.models``: a callable returning
    ModelSpecs (or one ModelSpec).
``server <url>``
    read from a Triton server's model metadata (:func:`hepinfer.runtime.discovery.spec_from_server`)
    by ``Scorer(name, mode="remote", url=...)`` for a model declared nowhere else.

Entry points and ``HEPINFER_MODELS`` are read lazily: entry points on the first lookup of a name not
known yet or on listing (iterating, ``len``), the variable's files at the first lookup, and again
whenever its value changes (the models of files it no longer names go), so Dask workers and
``hepinfer serve`` started with it see the same user models as the analysis.  Every declaration
passes :func:`hepinfer.models.checks.check_declaration` before it is registered; a name is declared
once (``replace=True`` replaces it).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path

from hepinfer.errors import ConfigError
from hepinfer.logs import get_logger
from hepinfer.models.builtin_specs import BUILTIN_SPECS
from hepinfer.models.checks import check_declaration, declaration_error
from hepinfer.models.spec import ModelSpec

log = get_logger(__name__)

BUILTIN = "built-in"
PYTHON = "python"
ENV_VAR = "HEPINFER_MODELS"
GROUP = "hepinfer.models"


def env_files(value: str, variable: str = ENV_VAR) -> list[str]:
    """The TOML files a ``HEPINFER_MODELS`` value names (folders give their ``*.toml``, sorted)."""
    files = []
    for item in filter(None, (p.strip() for p in value.split(os.pathsep))):
        path = Path(item).expanduser()
        if path.is_dir():
            files += [str(p.resolve()) for p in sorted(path.glob("*.toml"))]
        elif path.is_file():
            files.append(str(path.resolve()))
        else:
            raise ConfigError(f"{variable}: {item} is neither a TOML file nor a folder")
    return list(dict.fromkeys(files))


def _entry_point_specs(ep) -> list[ModelSpec]:
    dist = getattr(ep.dist, "name", None) or "unknown distribution"
    source = f"entry point {ep.name} ({dist})"
    try:
        obj = ep.load()
        found = obj() if callable(obj) and not isinstance(obj, ModelSpec) else obj
    except Exception as err:  # noqa: BLE001 - a plug-in's own error, named with its entry point
        raise ConfigError(f"{source}: cannot be loaded: {type(err).__name__}: {err}") from err
    found = [found] if isinstance(found, ModelSpec) else list(found or ())
    for spec in found:
        if not isinstance(spec, ModelSpec):
            raise ConfigError(f"{source}: gave {type(spec).__name__} {spec!r}, not a hepinfer ModelSpec")
    return [dataclasses.replace(spec, source=source) for spec in found]


class Registry(Mapping[str, ModelSpec]):
    """Models by name: the built-ins given here, then what is registered, loaded from TOML files
    (``HEPINFER_MODELS``) or from entry points (group ``hepinfer.models``), in that order of arrival."""

    def __init__(self, builtins: Iterable[ModelSpec] = (), *, env_var: str = ENV_VAR, group: str = GROUP):
        self.env_var = env_var
        self.group = group
        self._specs: dict[str, ModelSpec] = {}
        self._lock = threading.RLock()
        self._entry_points_read = False
        self._env_value: str | None = None
        self._env_files: dict[str, list[str]] = {}  # file -> the names it declared
        for spec in builtins:
            self._specs[spec.name] = dataclasses.replace(spec, source=BUILTIN)

    # -- the mapping -----------------------------------------------------------------------------
    def __getitem__(self, name: str) -> ModelSpec:
        if os.environ.get(self.env_var, "") != self._env_value:
            with self._lock:
                self._sync_env()
        spec = self._specs.get(name)
        if spec is None:
            self.load_lazy()
            spec = self._specs[name]
        return spec

    def __contains__(self, name) -> bool:
        try:
            self[name]
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        self.load_lazy()
        return iter(list(self._specs))

    def __len__(self) -> int:
        self.load_lazy()
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Registry({', '.join(f'{n} ({s.source})' for n, s in self._specs.items())})"

    def source_of(self, name: str) -> str:
        """Where the declaration of ``name`` came from (see the module's docstring)."""
        return self[name].source

    def servable(self) -> tuple[str, ...]:
        """The models with an artefact to serve (all but those that only a server has)."""
        return tuple(name for name, spec in self.items() if not spec.remote_only)

    # -- declaring -------------------------------------------------------------------------------
    def register(self, spec: ModelSpec, *, source: str = PYTHON, replace: bool = False) -> ModelSpec:
        """Check ``spec`` (:func:`~hepinfer.models.checks.check_declaration`) and register it under
        its name; return the registered spec (its ``source`` set).  Registering a spec equal to the
        one registered under its name does nothing; another spec under a known name is a
        ConfigError unless ``replace``."""
        if not isinstance(spec, ModelSpec):
            raise ConfigError(f"register: expected a hepinfer ModelSpec, got {type(spec).__name__}")
        spec = check_declaration(dataclasses.replace(spec, source=str(source)))
        with self._lock:
            self._add(spec, replace)
        log.debug("model %s registered (%s)", spec.name, spec.source)
        return self._specs[spec.name]

    def _add(self, spec: ModelSpec, replace: bool = False) -> None:
        known = self._specs.get(spec.name)
        if known is not None and not replace:
            if known == spec:
                return
            raise declaration_error(
                spec, f"the name is already declared ({known.source}); give it another (or register with replace=True)"
            )
        self._specs[spec.name] = spec

    def unregister(self, name: str) -> ModelSpec:
        """Remove ``name`` from the registry and return its spec."""
        with self._lock:
            try:
                return self._specs.pop(name)
            except KeyError:
                raise KeyError(name) from None

    def load_file(self, path: str | os.PathLike, *, replace: bool = False) -> list[ModelSpec]:
        """Register the models a TOML file declares (:func:`hepinfer.models.declare.load_toml`)."""
        from hepinfer.models.declare import load_toml

        specs = load_toml(path)
        with self._lock:
            for spec in specs:
                self._add(spec, replace)
        return [self._specs[s.name] for s in specs]

    # -- lazy sources ----------------------------------------------------------------------------
    def load_lazy(self) -> None:
        """Read the entry points (once) and the files of ``HEPINFER_MODELS`` (when it changed)."""
        with self._lock:
            if not self._entry_points_read:
                for ep in entry_points(group=self.group):
                    for spec in _entry_point_specs(ep):
                        self._add(check_declaration(spec))
                self._entry_points_read = True
            self._sync_env()

    def _sync_env(self) -> None:
        value = os.environ.get(self.env_var, "")
        if value == self._env_value:
            return
        from hepinfer.models.declare import load_toml

        files = env_files(value, self.env_var)
        new = {f: load_toml(f) for f in files if f not in self._env_files}  # all checked before any is added
        for gone in [f for f in self._env_files if f not in files]:
            for name in self._env_files.pop(gone):
                if self._specs.get(name) is not None and self._specs[name].source == gone:
                    del self._specs[name]
        for path, specs in new.items():
            for spec in specs:
                self._add(spec)
            self._env_files[path] = [s.name for s in specs]
        self._env_value = value

    def reload(self) -> None:
        """Forget what came from entry points and ``HEPINFER_MODELS`` and read them again."""
        with self._lock:
            for name in [n for n, s in self._specs.items() if s.source.startswith("entry point ")]:
                del self._specs[name]
            for names in self._env_files.values():
                for name in names:
                    self._specs.pop(name, None)
            self._env_files.clear()
            self._entry_points_read = False
            self._env_value = None
        self.load_lazy()


# this process' registry: the built-in models, then the user's (``hepinfer.SPECS``)
SPECS = Registry(BUILTIN_SPECS)


def _registry() -> Registry:
    return SPECS


def register(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Register ``spec`` in this process' registry (``hepinfer.SPECS``), source ``python``."""
    return _registry().register(spec, source=PYTHON, replace=replace)


def load_file(path: str | os.PathLike, *, replace: bool = False) -> list[ModelSpec]:
    """Register the models of a TOML file in this process' registry."""
    return _registry().load_file(path, replace=replace)


def source_of(name: str) -> str:
    """Where the declaration of model ``name`` came from."""
    return _registry().source_of(name)


__all__ = ["BUILTIN", "ENV_VAR", "GROUP", "PYTHON", "Registry", "load_file", "register", "source_of"]
