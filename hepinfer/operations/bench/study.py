"""What a benchmark study declares; :mod:`.harness` runs every study the same way.

A :class:`Study` says what it varies (``params``: every parameter with its full-size default;
``quick``: the overrides of ``--quick``; ``options``: the parameters the command line sets), the
measurements that make it (``points``: one :class:`Point` per row, each naming the embedded server
it needs), how one point is measured (``measure``), its table (``columns``), its plot, its summary
lines and, optionally, a check whose failure makes ``hepinfer bench`` exit 1.  The harness does the
rest: artefacts, servers (one kept for as long as consecutive points ask for the same options),
Scorers, toy inputs, the closed loop, CSV / markdown / PNG files, printing.

A new study is one module with one ``STUDY = Study(...)``, listed in :data:`hepinfer.operations.bench.studies.STUDIES`;
its options appear on ``hepinfer bench`` by themselves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

Params = SimpleNamespace  # a study's parameters, as attributes (``p.models``, ``p.duration_s``)
MODEL_PARAMS = ("model", "models")  # the parameters that name models: resolved into ModelSpecs


@dataclass(frozen=True)
class Option:
    """A parameter the command line sets: ``hepinfer bench STUDY FLAG VALUE``.  Studies may share a
    flag (same type, nargs and choices); each keeps its own default."""

    flag: str
    help: str = ""
    type: Callable = str
    nargs: str | None = None
    choices: tuple | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Point:
    """One measurement.  ``row``: the columns that name it (``measure`` adds the measured ones);
    ``server``: keyword arguments of :func:`hepinfer.serving.server.serve` for the embedded server it
    needs (``models`` included, by name), or None for none; ``model``: the
    :class:`~hepinfer.models.spec.ModelSpec` it measures, if any (the row names it)."""

    row: dict
    server: dict | None = None
    model: Any = None


@dataclass(frozen=True)
class Study:
    """A benchmark study.  ``output`` (the stem of the CSV / markdown / PNG files) and ``title`` are
    format strings over the parameters (``"load_{model}"``: a model by its name).  Callables get the
    parameters ``p``, where ``p.model`` / ``p.models`` hold :class:`~hepinfer.models.spec.ModelSpec` s:

    * ``points(p)`` -> the :class:`Point` s, in order;
    * ``measure(run, point)`` -> the measured columns of one row (``run``: :class:`.harness.Run`);
    * ``prepare(p)``: checks the parameters and sets what every point shares (files, a binary), once;
    * ``plot(rows, path, p)``: draws ``path`` with :mod:`hepinfer.figures`;
    * ``summary(rows, p)`` -> lines printed under the table;
    * ``check(rows, p)`` -> None when the study passed, else the reason (printed; exit code 1).

    ``table`` / ``headers``: the markdown table's columns (default ``columns``) and their titles.
    """

    name: str
    help: str
    columns: tuple[str, ...]
    params: dict
    points: Callable[[Params], Iterable[Point]]
    measure: Callable[[Any, Point], dict]
    output: str
    title: str
    quick: dict = field(default_factory=dict)
    options: dict[str, Option] = field(default_factory=dict)
    prepare: Callable[[Params], None] | None = None
    plot: Callable[[list[dict], Path, Params], Any] | None = None
    summary: Callable[[list[dict], Params], Iterable[str]] | None = None
    check: Callable[[list[dict], Params], str | None] | None = None
    table: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)

    def resolve(self, quick: bool = False, **given) -> Params:
        """The parameters of one run: the defaults, then the quick overrides, then ``given``; the
        models they name (``model``, ``models``) looked up once, as ModelSpecs."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            from hepinfer.errors import ConfigError

            raise ConfigError(f"bench {self.name}: unknown parameter(s) {', '.join(unknown)}")
        p = {**self.params, **(self.quick if quick else {}), **given}
        return Params(**{k: _specs(v, many=k == "models") if k in MODEL_PARAMS else v for k, v in p.items()})

    def stem(self, p: Params) -> str:
        return self.output.format(**named(p))

    def heading(self, p: Params) -> str:
        return self.title.format(**named(p))


def _specs(models, many: bool):
    """A model's name (or ModelSpec) as its ModelSpec, a tuple of them when ``many``; None as None."""
    from hepinfer.models.resolved import resolve

    if models is None:
        return None
    if many:
        return tuple(resolve(m).spec for m in ((models,) if isinstance(models, str) else models))
    return resolve(models).spec


def named(p: Params) -> dict:
    """The parameters with each ModelSpec as its name (for format strings)."""
    from hepinfer.models.spec import ModelSpec

    def name(v):
        if isinstance(v, ModelSpec):
            return v.name
        if isinstance(v, tuple) and v and all(isinstance(m, ModelSpec) for m in v):
            return tuple(m.name for m in v)
        return v

    return {k: name(v) for k, v in vars(p).items()}


def cores() -> int:
    """Server instances for the studies that give the server every core."""
    return os.cpu_count() or 1
