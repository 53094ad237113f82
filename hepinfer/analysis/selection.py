"""Which fat jets a job scores: the selection (a pT range and an ``|eta|`` cut) and each model's validity
domain (:class:`hepinfer.models.spec.Domain`).

* **The selection** (:func:`selection_for`): by default the smallest pT range and ``|eta|`` cut that hold
  every chosen model's domain (for the shipped taggers: pT 200-2500 GeV, ``|eta| < 2.4``).  A model that
  declares no domain is valid everywhere, so with one among the chosen models there is no default
  cut.  ``pt_min``, ``pt_max`` and ``eta_max`` (``hepinfer run --pt-min/--pt-max/--eta-max``) each
  replace one bound of that default.
* **Per model**: a model scores the selected jets inside its own domain; the selected jets outside it
  are counted (``outside_domain``), never dropped silently.
* **pT bins** (:data:`PT_BIN_EDGES_GEV`, with an underflow and an overflow bin): the processor fills
  per-bin histograms of the jets selected, scored, tagged and outside each model's domain, and
  :func:`pt_bin_rows` turns them into the summary's rows, their edges clipped to the selection.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from hepinfer.errors import ConfigError
from hepinfer.models import PT_BIN_EDGES_GEV

PT_STATUS = ("scored", "tagged", "outside_domain")  # the per-model categories of the ``pt`` histogram
SELECTION_FIELDS = {"pt_min": "pT min [GeV]", "pt_max": "pT max [GeV]", "eta_max": "|eta| max"}  # and their labels


def bound_from_text(text: str, what: str) -> float | None:
    """A selection bound typed as text (the panel): None when empty (the bound from the domains)."""
    text = text.strip()
    try:
        return float(text) if text else None
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a number") from None


def check_bounds(pt_min: float | None = None, pt_max: float | None = None, eta_max: float | None = None) -> None:
    """ConfigError unless ``0 <= pt_min < pt_max`` and ``eta_max > 0`` (None: not given)."""
    if pt_min is not None and not (pt_min >= 0 and math.isfinite(pt_min)):
        raise ConfigError(f"pt_min must be a number >= 0 GeV, got {pt_min!r}")
    if pt_max is not None and not pt_max > 0:
        raise ConfigError(f"pt_max must be > 0 GeV, got {pt_max!r}")
    if pt_min is not None and pt_max is not None and not pt_min < pt_max:
        raise ConfigError(f"pt_min must be below pt_max, got {pt_min!r} and {pt_max!r}")
    if eta_max is not None and not eta_max > 0:
        raise ConfigError(f"eta_max must be > 0, got {eta_max!r}")


@dataclass(frozen=True)
class JetSelection:
    """Fat jets with ``pt_min <= pT <= pt_max`` (GeV) and ``|eta| < eta_max``; ``source`` says where
    the bounds came from ("the models' domains", "options", both, or "none": no cut)."""

    pt_min: float = 0.0
    pt_max: float = math.inf
    eta_max: float = math.inf
    source: str = "none"

    def __post_init__(self) -> None:
        check_bounds(self.pt_min, self.pt_max, self.eta_max)

    def mask(self, jets):
        """Mask of the selected ``jets`` (records with pt and eta: awkward, dask-awkward or numpy)."""
        return (jets.pt >= self.pt_min) & (jets.pt <= self.pt_max) & (abs(jets.eta) < self.eta_max)

    def describe(self) -> str:
        parts = []
        if self.pt_max < math.inf:
            parts.append(f"pT {self.pt_min:g}-{self.pt_max:g} GeV")
        elif self.pt_min > 0:
            parts.append(f"pT >= {self.pt_min:g} GeV")
        if self.eta_max < math.inf:
            parts.append(f"|eta| < {self.eta_max:g}")
        return ", ".join(parts) or "every fat jet"

    def as_dict(self) -> dict:
        """JSON form: infinite bounds as None."""
        return {
            "pt_min": self.pt_min,
            "pt_max": self.pt_max if self.pt_max < math.inf else None,
            "eta_max": self.eta_max if self.eta_max < math.inf else None,
            "source": self.source,
            "text": self.describe(),
        }


def selection_for(
    domains: Iterable, pt_min: float | None = None, pt_max: float | None = None, eta_max: float | None = None
) -> JetSelection:
    """The selection of a job whose models have ``domains`` (Domain, or None where a model declares
    none): the bounds given, the others from the smallest range that holds every domain."""
    check_bounds(pt_min, pt_max, eta_max)
    domains = list(domains)
    if domains and all(d is not None for d in domains):
        default = (min(d.pt[0] for d in domains), max(d.pt[1] for d in domains), max(d.eta_max for d in domains))
    else:
        default = (0.0, math.inf, math.inf)
    given = (pt_min, pt_max, eta_max)
    bounds = [float(g) if g is not None else d for g, d in zip(given, default)]
    from_domains = default != (0.0, math.inf, math.inf) and any(g is None for g in given)
    from_options = any(g is not None for g in given)
    source = (
        "the models' domains and options"
        if from_domains and from_options
        else "the models' domains"
        if from_domains
        else "options"
        if from_options
        else "none"
    )
    if not bounds[0] < bounds[1]:
        raise ConfigError(
            f"the selection's pT range is empty: {bounds[0]:g}-{bounds[1]:g} GeV "
            "(a bound given as an option lies beyond the models' domains; give both ends)"
        )
    return JetSelection(*bounds, source=source)


def pt_axis(hist):
    """The pT axis of the per-bin histograms: :data:`PT_BIN_EDGES_GEV`, with underflow and overflow."""
    return hist.axis.Variable(PT_BIN_EDGES_GEV, name="pt", label="fat-jet pT [GeV]", underflow=True, overflow=True)


def pt_bin_rows(selected, per_model, selection: JetSelection, models) -> list[dict]:
    """The summary's rows by pT bin, from the histograms ``pt_selected`` (pT) and ``pt`` (model x
    status x pT): per bin ``bin`` (its edges clipped to the selection, e.g. "200-250", "2500+"),
    ``selected`` and per model ``scored``, ``tagged``, ``outside_domain``.  Bins outside the selection
    are left out unless they hold jets (a jet at exactly the last edge fills the overflow bin)."""
    edges = (-math.inf, *PT_BIN_EDGES_GEV, math.inf)
    counts = selected.values(flow=True)
    model_counts = {
        (m, status): per_model[{"model": m, "status": status}].values(flow=True) for m in models for status in PT_STATUS
    }
    rows = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        if not (lo < selection.pt_max and hi > selection.pt_min) and not counts[i]:
            continue
        lo, hi = max(lo, selection.pt_min), min(hi, selection.pt_max)
        label = f"{lo:g}-{hi:g}" if hi < math.inf else f"{lo:g}+"
        rows.append(
            {
                "bin": label,
                "selected": int(counts[i]),
                **{status: {m: int(model_counts[m, status][i]) for m in models} for status in PT_STATUS},
            }
        )
    return rows


def pt_bin_lines(rows: list[dict], models) -> list[str]:
    """The rows of :func:`pt_bin_rows` as a Markdown table: per bin the jets selected, and per model
    the jets scored / tagged (and outside its domain, where any is)."""
    if not rows:
        return []
    models = list(models)
    outside = [m for m in models if any(r["outside_domain"][m] for r in rows)]
    head = ["pT bin [GeV]", "selected", *(f"{m} scored / tagged" for m in models), *(f"{m} outside" for m in outside)]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for r in rows:
        cells = [
            r["bin"],
            str(r["selected"]),
            *(f"{r['scored'][m]} / {r['tagged'][m]}" for m in models),
            *(str(r["outside_domain"][m]) for m in outside),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
