"""A resolved model: what travels through hepinfer once a model's name has been looked up.

:func:`resolve` is called once, at the edge that receives a name (the Scorer, the command line, a
job's settings, the coffea plug-in); everything below takes the :class:`Model` it returns: the
declaration, the input builder with its parameters, the branches it reads, the artefact and what
its manifest records (the working points).  What is derived from the declaration is computed once,
when first asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from hepinfer.errors import ConfigError
from hepinfer.models.spec import ModelSpec


@dataclass(frozen=True)
class Model:
    """One model, resolved: its :class:`~hepinfer.models.spec.ModelSpec` (``spec``) and what hangs
    on it."""

    spec: ModelSpec

    @property
    def name(self) -> str:
        return self.spec.name

    # ---- the input builder

    @cached_property
    def builder(self):
        """The input builder function (ConfigError naming the model when it has none)."""
        from hepinfer.models.checks import resolve_builder

        return resolve_builder(self.spec)

    @property
    def builder_params(self) -> dict:
        return dict(self.spec.builder_params)

    @cached_property
    def required_fields(self) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(jet fields, constituent fields) the builder reads with its ``builder_params`` (NanoAOD:
        FatJet_<f>, PFCands_<f>); None when unknown (no builder, or one without ``required_fields``)."""
        try:
            fn = self.builder
        except ConfigError:
            return None
        from hepinfer.features.builders import fields_of

        return fields_of(fn, self.spec.builder_params)

    @property
    def reads_constituents(self) -> bool:
        """Whether the builder reads the fat jets' PF candidates (False: the jet fields alone, which
        standard NanoAOD has); True when unknown (a builder outside hepinfer.features)."""
        fields = self.required_fields
        return fields is None or bool(fields[1])

    def build_inputs(self, jets, constituents) -> dict[str, np.ndarray]:
        """The model's inputs for ``jets`` (eager arrays): its builder called with ``builder_params``."""
        return self.builder(jets, constituents, **self.spec.builder_params)

    def touch_inputs(self, jets, constituents) -> dict[str, np.ndarray]:
        """On typetracers: touch the builder's columns and return empty arrays of the inputs' shapes."""
        from hepinfer.features.base import placeholder
        from hepinfer.features.builders import touch_columns

        touch_columns(self.builder, self.spec.builder_params, jets, constituents)
        inputs = self.spec.inputs
        return placeholder({t.name: t.shape for t in inputs}, {t.name: np.dtype(t.numpy_dtype) for t in inputs})

    # ---- the catalogue entry: the artefact, its manifest and card, the working points they record

    @property
    def artefact(self) -> Path:
        """The model file (:func:`~hepinfer.models.catalogue.artefact_path`)."""
        from hepinfer.models.catalogue import artefact_path

        return artefact_path(self.spec)

    def manifest(self) -> dict:
        """What the artefact's manifest records ({} when there is none yet)."""
        from hepinfer.models.catalogue import manifest

        return manifest(self.spec)

    @property
    def card(self) -> Path | None:
        """The model card beside the artefact in the cache, else the one hepinfer ships; None when
        there is none (a user's model, an untrained network)."""
        from hepinfer.models.catalogue import CARD, shipped

        for folder in (self.artefact.parent, getattr(shipped(self.spec), "parent", None)):
            if folder is not None and (folder / CARD).is_file():
                return folder / CARD
        return None

    def weights_note(self) -> str:
        """'trained', who declared the model, or the warning that its weights are random."""
        from hepinfer.models.catalogue import weights_note

        return weights_note(self.spec)

    def working_points(self) -> dict:
        """{name: {threshold, ...}}: the working points the model's manifest records ({} when none)."""
        from hepinfer.models.working_points import working_points

        return working_points(self.spec)

    def working_point_cut(self, name: str, score: str = "top") -> float:
        """The score threshold of working point ``name`` (ConfigError when the manifest has none)."""
        from hepinfer.models.working_points import working_point_cut

        return working_point_cut(self.spec, name, score)


def resolve(model: str | ModelSpec | Model) -> Model:
    """The :class:`Model` of ``model``: a name (looked up in the registry, ``hepinfer.SPECS``), a
    ModelSpec, or a Model (returned as it is)."""
    if isinstance(model, Model):
        return model
    from hepinfer.models import get_spec

    return Model(get_spec(model))
