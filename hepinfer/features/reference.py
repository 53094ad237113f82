"""The oracle the flat (numpy) builders are tested against: each builder's awkward path, the
catalogues' expressions evaluated on awkward arrays with awkward's own sort, sums and argmax.

Each takes jets and constituents without the event axis (:func:`~hepinfer.features.common.flat_jets`)
and the builder's checked parameters.  The builders take the same path themselves for inputs the
flat one does not take (missing values, fields that are not numbers); this module is for tests and
imports the builders' public names only.
"""

from __future__ import annotations

from hepinfer.features.images import image_on_awkward as image_reference
from hepinfer.features.per_jet import jet_variables_on_awkward as jet_variables_reference
from hepinfer.features.per_particle import particles_on_awkward as particles_reference

__all__ = ["image_reference", "jet_variables_reference", "particles_reference"]
