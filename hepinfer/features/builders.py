"""The input builders by name, and their checks: which function a declaration's ``builder`` names,
and whether its ``builder_params`` and the tensors it makes fit the declared inputs.

``BUILDERS`` holds hepinfer's builders (:func:`builtin_builders`); a declaration names one of
them, or a function of its own (``"package.module:function"``).  The checks raise
:class:`~hepinfer.errors.ConfigError` naming the builder and the parameter or tensor at fault; the
model declaration's checks (:mod:`hepinfer.models.checks`) add where the declaration came from.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping

from hepinfer.errors import ConfigError


@functools.cache
def builtin_builders() -> dict[str, Callable]:
    """``BUILDERS``: hepinfer's builders by name (imported on first use: they need awkward, a
    ``"package.module:function"`` builder does not)."""
    from hepinfer.features.bdt_builder import bdt_inputs
    from hepinfer.features.images import image, jet_images
    from hepinfer.features.nanoaod_bdt_builder import nanoaod_bdt_inputs
    from hepinfer.features.particlenet_builder import particlenet_inputs
    from hepinfer.features.per_jet import jet_variables
    from hepinfer.features.per_particle import particles

    return {
        "particlenet": particlenet_inputs,
        "resnet50": jet_images,
        "bdt": bdt_inputs,
        "bdt_nanoaod": nanoaod_bdt_inputs,
        "particles": particles,
        "image": image,
        "jet_variables": jet_variables,
    }


def __getattr__(name: str):
    if name == "BUILDERS":
        return builtin_builders()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def find_builder(name: str, *, declared: bool = True) -> Callable:
    """The builder function ``name`` (a name of :data:`BUILDERS` or ``"package.module:function"``);
    ``declared`` False: the name is the model's own, taken because no builder was declared."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError) as err:
            raise ConfigError(f"builder {name!r} cannot be imported: {err}") from None
        if not callable(fn):
            raise ConfigError(f"builder {name!r} is not a function")
        return fn
    builders = builtin_builders()
    if name not in builders:
        if not declared:
            raise ConfigError(
                "builder: none declared (builder = a name of hepinfer.features.BUILDERS or 'package.module:function')"
            )
        raise ConfigError(f"builder {name!r} is not one of {', '.join(builders)} and not 'package.module:function'")
    return builders[name]


def check_builder(fn: Callable, name: str, params: Mapping, declared: Mapping[str, tuple[int, ...]], fits) -> None:
    """``params`` are keywords builder ``fn`` (named ``name``) takes and its own ``check_params``
    accepts; when it says which tensors it makes (``output_shapes``), they are the ``declared``
    ones ({tensor: shape}; ``fits(declared shape, shape)`` compares two)."""
    try:
        signature = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values()):
        return
    positional = inspect.Parameter.VAR_POSITIONAL
    accepted = [n for i, (n, p) in enumerate(signature.items()) if i >= 2 and p.kind is not positional]
    for key in params:
        if key not in accepted:
            raise ConfigError(
                f"builder_params.{key}: builder {name!r} takes no parameter {key!r} "
                f"(its parameters: {', '.join(accepted) or 'none'})"
            )
    check = getattr(fn, "check_params", None)
    if check is None:
        return
    try:
        check(**params)
        shapes = fn.output_shapes(**params) if hasattr(fn, "output_shapes") else None
    except (ConfigError, TypeError, ValueError) as err:
        raise ConfigError(f"builder {name!r}: {err}") from None
    if shapes is None:
        return
    if set(shapes) != set(declared):
        raise ConfigError(
            f"inputs: builder {name!r} makes the tensors {', '.join(shapes)} but the inputs declared "
            f"are {', '.join(declared)}"
        )
    for tensor, shape in shapes.items():
        if not fits(declared[tensor], shape):
            raise ConfigError(
                f"inputs: builder {name!r} with its builder_params makes {tensor!r} of shape {list(shape)}, "
                f"declared {list(declared[tensor])}"
            )


def fields_of(fn: Callable, params: Mapping) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(jet fields, constituent fields) builder ``fn`` reads with ``params``; None when it does not
    say (no ``required_fields``)."""
    fields = getattr(fn, "required_fields", None)
    if fields is None:
        return None
    jet, cons = fields(**params)
    return tuple(jet), tuple(cons)


def touch_columns(fn: Callable, params: Mapping, jets, constituents) -> None:
    """On typetracers (dask-awkward building its graph): touch the columns builder ``fn`` reads with
    ``params``, from its ``touched_fields`` when it has them, else by calling it (a builder of the
    user's, which then touches what it reads)."""
    from hepinfer.features.base import touch

    fields = getattr(fn, "touched_fields", None)
    if fields is None:
        fn(jets, constituents, **params)
        return
    jet_fields, cons_fields = fields(**params)
    touch(jets, jet_fields, constituents, cons_fields)
