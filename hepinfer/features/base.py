"""What a composable builder exposes besides being called, and the checks of its parameters.

A builder of ``hepinfer.features.BUILDERS`` is a function ``builder(jets, constituents, **params)``
with these attributes (a user's ``"package.module:function"`` may have them too; none is required):

* ``check_params(**params)``: the parameters checked and normalised (ConfigError naming the
  parameter and the valid values); called when a declaration is loaded;
* ``required_fields(**params)``: (jet fields, constituent fields) the builder reads;
* ``touched_fields(**params)``: the fields it touches on typetracers (the required ones, plus
  optional fields it reads when present, such as ``nConstituents``);
* ``output_shapes(**params)``: {tensor name: shape without the batch axis}.

:func:`instance` makes a built-in model's builder from one of these with some parameters fixed.
"""

from __future__ import annotations

import functools
import re

import awkward as ak
import numpy as np

from hepinfer.errors import ConfigError
from hepinfer.features.common import delta_phi, plain

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def touch(jets, jet_fields, constituents, constituent_fields) -> None:
    """Touch the data of the named fields present in ``jets`` / ``constituents`` (typetracers), so
    dask-awkward's column projection loads exactly them."""
    for array, fields in ((jets, jet_fields), (constituents, constituent_fields)):
        if array is None or not fields:
            continue
        array = plain(array)
        for field in fields:
            if field in ak.fields(array):
                ak.typetracer.touch_data(array[field])


def placeholder(shapes: dict, dtypes: dict | None = None) -> dict[str, np.ndarray]:
    """Empty arrays (no rows) of the given shapes (a -1 dimension becomes 0)."""
    dtypes = dtypes or {}
    return {
        name: np.zeros((0, *(max(d, 0) for d in shape)), dtype=dtypes.get(name, np.float32))
        for name, shape in shapes.items()
    }


def union(*groups) -> tuple[str, ...]:
    """The names of ``groups`` (iterables of names) in order of first appearance."""
    return tuple(dict.fromkeys(name for group in groups for name in group))


# ---- parameter checks: each raises ConfigError("builder_params.<name>: ...") ----


def names_from(param: str, value, catalogue, what: str, open_ended: bool = False) -> tuple[str, ...]:
    """``value`` as a non-empty tuple of names of ``catalogue`` (any identifier when ``open_ended``)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"builder_params.{param}: expected a non-empty list of {what} names, got {value!r}")
    for name in value:
        known = name in catalogue if not open_ended else isinstance(name, str) and _IDENTIFIER.fullmatch(name)
        if not isinstance(name, str) or not known:
            extra = " or a jet field's name" if open_ended else ""
            raise ConfigError(
                f"builder_params.{param}: unknown {what} {name!r}; valid names: {', '.join(catalogue)}{extra}"
            )
    if len(set(value)) != len(value):
        raise ConfigError(f"builder_params.{param}: names repeat ({', '.join(value)})")
    return tuple(value)


def positive_int(param: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"builder_params.{param}: expected an integer >= 1, got {value!r}")
    return value


def positive_number(param: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ConfigError(f"builder_params.{param}: expected a finite number > 0, got {value!r}")
    return value


def field_name(param: str, value) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ConfigError(f"builder_params.{param}: expected a field name, got {value!r}")
    return value


def tensor_names(params: dict, optional: bool = False) -> dict[str, str]:
    """{parameter: tensor name}: strings, distinct; "" leaves the tensor out when ``optional``."""
    for param, value in params.items():
        if not isinstance(value, str) or (not value and not optional):
            raise ConfigError(f"builder_params.{param}: expected a tensor name, got {value!r}")
    used = [v for v in params.values() if v]
    if not used:
        raise ConfigError(f"builder_params: {', '.join(params)} are all empty; the builder would output nothing")
    if len(set(used)) != len(used):
        raise ConfigError(f"builder_params: tensor names repeat ({', '.join(used)})")
    return dict(params)


def instance(fn, base, **fixed):
    """Give ``fn`` (a wrapper calling ``base`` with ``fixed`` parameters and its own) ``base``'s
    attributes with ``fixed`` applied; returns ``fn``."""
    for attr in ("check_params", "required_fields", "touched_fields", "output_shapes"):
        setattr(fn, attr, functools.partial(getattr(base, attr), **fixed))
    fn.base = base
    fn.fixed_params = dict(fixed)
    return fn


class AroundTheAxis:
    """Constituents ``c`` seen from their jet ``jets``: Δη, Δφ and ΔR to the axis, computed once
    per builder call when first needed (the builders' intermediates derive from it)."""

    jets: ak.Array
    c: ak.Array

    @functools.cached_property
    def deta(self):
        return self.c.eta - self.jets.eta

    @functools.cached_property
    def dphi(self):
        return delta_phi(self.c.phi, self.jets.phi)

    @functools.cached_property
    def dr(self):
        return np.hypot(self.deta, self.dphi)
