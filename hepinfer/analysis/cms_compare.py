"""hepinfer's scores beside CMS's own: per-jet pairs and their Spearman rank correlation.

Where a file stores CMS's top taggers (``FatJet_particleNet_TvsQCD``, ...), the processor keeps, per
model and CMS tagger, the pair (model score, CMS score) of every jet both scored: a jet the model
scored (selected, inside the model's domain) whose CMS score lies in [0, 1] (CMS writes -10, or no
number, for a jet it did not score).  Eager chunks keep them as a coffea ``column_accumulator`` of
shape (jets, 2), merged across chunks by the processor's accumulation; dask-awkward events give a
dask array of records (``score``, ``cms``) that ``dask.compute`` turns into an awkward array.
:func:`rank_correlations` takes either.
"""

from __future__ import annotations

import numpy as np


def pairs_of(scores, cms, is_dask: bool):
    """The accumulatable pairs of one model and one CMS tagger: ``scores`` and ``cms`` are the flat
    per-jet values of the same jets."""
    import awkward as ak

    valid = (cms >= 0) & (cms <= 1)  # NaN fails both
    if is_dask:
        import dask_awkward as dak

        return dak.zip({"score": scores[valid], "cms": cms[valid]})
    from coffea.processor import column_accumulator

    both = np.column_stack([ak.to_numpy(scores[valid]), ak.to_numpy(cms[valid])]).astype(np.float64)
    return column_accumulator(both.reshape(-1, 2))


def pair_array(pairs) -> np.ndarray:
    """The pairs as a (jets, 2) float64 array: (model score, CMS score) per jet."""
    value = getattr(pairs, "value", pairs)  # column_accumulator
    if getattr(value, "fields", None):  # an awkward array of records (dask mode)
        import awkward as ak

        value = np.column_stack([ak.to_numpy(value["score"]), ak.to_numpy(value["cms"])])
    return np.asarray(value, dtype=np.float64).reshape(-1, 2)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank (as scipy.stats.rankdata's default)."""
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(x)] - 1
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = (first[group] + last[group]) / 2.0 + 1.0
    return ranks


def spearman(x, y) -> float | None:
    """Spearman's rank correlation of two equally long samples (the Pearson correlation of their
    ranks, ties averaged); None with fewer than two jets or when one side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return None
    rx, ry = _ranks(x) - (len(x) + 1) / 2.0, _ranks(y) - (len(y) + 1) / 2.0
    norm = np.sqrt(np.dot(rx, rx) * np.dot(ry, ry))
    return float(np.clip(np.dot(rx, ry) / norm, -1.0, 1.0)) if norm > 0 else None


def rank_correlations(pairs: dict) -> dict:
    """{model: {CMS tagger: {"spearman": r or None, "jets": n}}} from the processor's ``pairs``
    ({model: {tagger: pairs}}, eager or computed from dask)."""
    out = {}
    for model, per_tagger in (pairs or {}).items():
        out[model] = {}
        for tagger, value in per_tagger.items():
            both = pair_array(value)
            out[model][tagger] = {"spearman": spearman(both[:, 0], both[:, 1]), "jets": len(both)}
    return out


def correlation_lines(correlations: dict) -> list[str]:
    """One line per model and CMS tagger for the printout."""
    lines = []
    for model, per_tagger in correlations.items():
        for tagger, c in per_tagger.items():
            r = "n/a (fewer than two jets, or constant scores)" if c["spearman"] is None else f"{c['spearman']:.3f}"
            lines.append(f"rank correlation (Spearman) of {model} with CMS {tagger}: {r} over {c['jets']} jets")
    return lines
