"""Working points of the trained taggers: named score thresholds that their model cards record
(``working_points`` in manifest.json, measured on the independent test sample by ``hepinfer evaluate``).

``top@1%`` and ``top@10%``: the thresholds where 1 % / 10 % of the QCD jets are tagged (mistag rate);
``top@eff30%`` and ``top@eff50%``: where 30 % / 50 % of the top jets are.  A jet is tagged when its
score is above the threshold.
"""

from __future__ import annotations

from hepinfer.errors import ConfigError
from hepinfer.models import catalogue
from hepinfer.models.spec import ModelSpec


def working_points(spec: ModelSpec) -> dict:
    """{name: {threshold, signal_efficiency, mistag_rate, target}}: the working points the model's
    manifest records (its model card's table; {} when none), read from the artefact cache, or from the
    shipped manifest for the artefact the package ships."""
    cached = catalogue.manifest(spec)
    found = cached.get("working_points")
    if not found and catalogue.shipped(spec) is not None:
        shipped = catalogue.shipped_manifest(spec)
        if not cached or cached.get("sha256") == shipped.get("sha256"):
            found = shipped.get("working_points")
    return dict(found or {})


def working_point_cut(spec: ModelSpec, name: str, score: str = "top") -> float:
    """The score threshold of working point ``name`` (``top@1%``: mistag rate 1 %, ``top@eff50%``:
    signal efficiency 50 %, ...) of the model; ConfigError when the model records no such point."""
    if not name.startswith(f"{score}@"):
        raise ConfigError(f"working point {name!r}: cuts on P({name.split('@')[0]}), but the scores are P({score})")
    points = working_points(spec)
    if name not in points:
        known = (
            f"its working points: {', '.join(points)}"
            if points
            else f"its manifest records none (`hepinfer evaluate {spec.name} --sample ... --update-card FOLDER`)"
        )
        raise ConfigError(f"model {spec.name!r} has no working point {name!r}; {known}")
    return float(points[name]["threshold"])
