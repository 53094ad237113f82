"""ROC, AUC, background rejection, working points (numpy only).

A jet is tagged when its score is above the working point's threshold.  Working points are named
``<class>@<mistag>%`` (``top@1%``: the threshold where 1 % of the background jets are tagged) and
``<class>@eff<efficiency>%`` (``top@eff50%``: where 50 % of the signal jets are), see
:data:`MISTAG_RATES` and :data:`SIGNAL_EFFICIENCIES`.

The same figures per bin of jet pT (:data:`PT_BINS`, :func:`per_pt_bin`) show how a tagger and its
working points hold across its validity domain: each working point keeps its global threshold, so a
bin's efficiencies are what a cut at that threshold gives to the jets of that bin.
"""

from __future__ import annotations

import numpy as np

from hepinfer.models import PT_BIN_EDGES_GEV

MISTAG_RATES = (0.01, 0.10)  # background efficiencies of the ``top@1%`` / ``top@10%`` working points
SIGNAL_EFFICIENCIES = (0.30, 0.50)  # signal efficiencies of ``top@eff30%`` / ``top@eff50%``
BOOTSTRAP = 200  # resamples for the AUC's uncertainty
PT_BINS = PT_BIN_EDGES_GEV[1:]  # GeV: edges of the per-pT-bin figures (last bin includes 2500)
MIN_JETS_PER_CLASS = 10  # fewer top or QCD jets in a pT bin: its figures are null


def roc_curve(labels: np.ndarray, scores: np.ndarray):
    """(signal efficiency, background efficiency) for every threshold, highest score first."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.all() or not labels.any():
        raise ValueError("ROC needs both signal and background jets")
    order = np.argsort(-scores, kind="mergesort")
    s, lab = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each tied score
    tp = np.cumsum(lab)[distinct]
    fp = np.cumsum(~lab)[distinct]
    return np.r_[0.0, tp / lab.sum()], np.r_[0.0, fp / (~lab).sum()]


def auc(labels, scores) -> float:
    eff_s, eff_b = roc_curve(labels, scores)
    return float(np.trapezoid(eff_s, eff_b))


def auc_bootstrap(labels, scores, n: int = BOOTSTRAP, seed: int = 0) -> float:
    """Standard deviation of the AUC over ``n`` resamples of the jets (with replacement, classes
    resampled apart so each keeps its count)."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    sig, bkg = np.flatnonzero(labels), np.flatnonzero(~labels)
    values = []
    for _ in range(n):
        index = np.r_[rng.choice(sig, len(sig)), rng.choice(bkg, len(bkg))]
        values.append(auc(labels[index], scores[index]))
    return float(np.std(values, ddof=1)) if n > 1 else 0.0


def background_rejection(labels, scores, signal_efficiency: float, *, bounded: bool = False) -> float:
    """1 / background efficiency at the given signal efficiency (interpolated); where no background
    jet passes, inf, or with ``bounded`` the number of background jets (the largest figure they can show)."""
    eff_s, eff_b = roc_curve(labels, scores)
    eb = float(np.interp(signal_efficiency, eff_s, eff_b))
    if eb == 0:
        return float(np.sum(~np.asarray(labels).astype(bool))) if bounded else float("inf")
    return 1.0 / eb


def signal_efficiency(labels, scores, mistag_rate: float) -> float:
    """Signal efficiency at the given background efficiency (interpolated)."""
    eff_s, eff_b = roc_curve(labels, scores)
    return float(np.interp(mistag_rate, eff_b, eff_s))


def percent(x: float) -> str:
    return f"{100 * x:g}%"


def working_point_names(signal: str = "top") -> tuple[str, ...]:
    return tuple(f"{signal}@{percent(m)}" for m in MISTAG_RATES) + tuple(
        f"{signal}@eff{percent(e)}" for e in SIGNAL_EFFICIENCIES
    )


def threshold_for(values, fraction: float) -> float:
    """A threshold above which ``fraction`` of ``values`` lie (as near as ties allow): halfway between
    two distinct neighbouring values, so that scores equal to a value are never on the edge."""
    distinct, n = np.unique(np.asarray(values, dtype=np.float64), return_counts=True)
    v, counts = distinct[::-1], np.cumsum(n[::-1])  # highest first; values at or above each
    # cutting below the i-th distinct value tags counts[i] values; choose the count nearest the target
    i = int(np.argmin(np.abs(counts - fraction * len(values))))
    upper = v[i]
    lower = v[i + 1] if i + 1 < len(v) else upper - max(1.0, abs(upper))
    return float(0.5 * (upper + lower))


def _tagged(labels, scores, threshold: float) -> tuple[float, float]:
    tagged = scores > threshold
    return float(tagged[labels].mean()), float(tagged[~labels].mean())


def working_points(labels, scores, signal: str = "top") -> dict:
    """{name: {threshold, signal_efficiency, mistag_rate, target}}: the score threshold of each working
    point (a jet is tagged when its score > threshold) and the efficiencies it gives on these jets."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    sig, bkg = scores[labels], scores[~labels]
    targets = [(f"{signal}@{percent(r)}", bkg, r, f"mistag rate {percent(r)}") for r in MISTAG_RATES]
    targets += [(f"{signal}@eff{percent(e)}", sig, e, f"signal efficiency {percent(e)}") for e in SIGNAL_EFFICIENCIES]
    out = {}
    for name, side, fraction, target in targets:
        threshold = threshold_for(side, fraction)
        eff, mistag = _tagged(labels, scores, threshold)
        out[name] = {"threshold": threshold, "signal_efficiency": eff, "mistag_rate": mistag, "target": target}
    return out


def _figures(labels, scores, bootstrap: int, seed: int) -> dict:
    """AUC (and its bootstrap uncertainty), 1/eps_B at eps_S = 30 % and 50 %, and the jets per class."""
    n_bkg = int(np.sum(labels == 0))
    rejection = {e: background_rejection(labels, scores, e / 100, bounded=True) for e in (30, 50)}
    return {
        "auc": auc(labels, scores),
        "auc_error": auc_bootstrap(labels, scores, bootstrap, seed) if bootstrap else None,
        "rejection_at_30": rejection[30],
        "rejection_at_50": rejection[50],
        # figures that equal the number of background jets: fewer than one of them passes (a lower bound)
        "rejection_bounded": [f"rejection_at_{e}" for e, r in rejection.items() if r >= n_bkg],
    }


def summary(labels, scores, *, bootstrap: int = BOOTSTRAP, signal: str = "top", seed: int = 0) -> dict:
    """AUC (and its bootstrap uncertainty), 1/eps_B at eps_S = 30 % and 50 %, eps_S at eps_B = 1 % and
    10 %, the working points and the jets per class."""
    labels = np.asarray(labels)
    return {
        **_figures(labels, scores, bootstrap, seed),
        "efficiency_at_1": signal_efficiency(labels, scores, 0.01),
        "efficiency_at_10": signal_efficiency(labels, scores, 0.10),
        "working_points": working_points(labels, scores, signal),
        "jets": {"top": int(np.sum(labels == 1)), "qcd": int(np.sum(labels == 0))},
    }


def pt_bin_edges(edges=PT_BINS) -> list[tuple[float, float]]:
    return [(float(lo), float(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def per_pt_bin(
    labels,
    scores,
    pt,
    *,
    edges=PT_BINS,
    working_points: dict | None = None,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
    min_jets: int = MIN_JETS_PER_CLASS,
) -> list[dict]:
    """The figures of :func:`summary` per bin of jet ``pt`` (GeV; a bin holds ``lo <= pt < hi``, the
    last one its upper edge too): ``pt`` [lo, hi], ``jets`` per class, ``auc``, ``auc_error``,
    ``rejection_at_30``, ``rejection_at_50``, ``rejection_bounded``, and per working point of
    ``working_points`` the ``signal_efficiency`` and ``mistag_rate`` at its (global) threshold.  A bin
    with fewer than ``min_jets`` jets of a class has null figures and a ``note`` that says so (a working
    point's rate over the other class is still given when that class has enough jets)."""
    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    pt = np.asarray(pt, dtype=np.float64)
    bins = pt_bin_edges(edges)
    out = []
    for i, (lo, hi) in enumerate(bins):
        inside = (pt >= lo) & ((pt <= hi) if i == len(bins) - 1 else (pt < hi))
        lab, sco = labels[inside], scores[inside]
        jets = {"top": int(np.sum(lab == 1)), "qcd": int(np.sum(lab == 0))}
        row: dict = {"pt": [lo, hi], "jets": jets}
        few = [f"{jets[c]} {name} jets" for c, name in (("top", "top"), ("qcd", "QCD")) if jets[c] < min_jets]
        if few:
            row.update(dict.fromkeys(("auc", "auc_error", "rejection_at_30", "rejection_at_50")), rejection_bounded=[])
            row["note"] = f"{' and '.join(few)} (fewer than {min_jets}): no figures"
        else:
            row.update(_figures(lab, sco, bootstrap, seed))
        if working_points:
            top, qcd = sco[lab == 1], sco[lab == 0]
            row["working_points"] = {
                name: {
                    "signal_efficiency": float(np.mean(top > wp["threshold"])) if jets["top"] >= min_jets else None,
                    "mistag_rate": float(np.mean(qcd > wp["threshold"])) if jets["qcd"] >= min_jets else None,
                }
                for name, wp in working_points.items()
            }
        out.append(row)
    return out


def rejection(m: dict, efficiency: int) -> str:
    """1/eps_B at ``efficiency`` % of a :func:`summary` as text: ``>= N`` where at most one background jet
    passes, ``–`` where there is no figure (a pT bin with too few jets)."""
    key = f"rejection_at_{efficiency}"
    if m.get(key) is None:
        return "–"
    return (">= " if key in m.get("rejection_bounded", ()) else "") + f"{m[key]:.0f}"


def auc_text(m: dict) -> str:
    """The AUC of a :func:`summary` (or of a pT bin) with its bootstrap uncertainty, ``–`` where none."""
    if m.get("auc") is None:
        return "–"
    return f"{m['auc']:.4f}" + (f" ± {m['auc_error']:.4f}" if m.get("auc_error") is not None else "")


def pt_text(row: dict) -> str:
    lo, hi = row["pt"]
    return f"{lo:g}-{hi:g}"


def rate_text(value, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def describe(name: str, m: dict) -> str:
    """Lines a person reads: the figures of :func:`summary` for ``name`` (and per pT bin when given)."""
    lines = [
        f"{name}: AUC {auc_text(m)} on {m['jets']['top']} top and {m['jets']['qcd']} QCD jets",
        f"  1/eps_B {rejection(m, 30)} at eps_S = 30 %, {rejection(m, 50)} at eps_S = 50 %",
        f"  eps_S {100 * m['efficiency_at_1']:.1f} % at mistag rate 1 %, "
        f"{100 * m['efficiency_at_10']:.1f} % at mistag rate 10 %",
        "  working points (tagged when score > threshold):",
    ]
    for wp, v in m.get("working_points", {}).items():
        lines.append(
            f"    {wp:<12} threshold {v['threshold']:.6g}  eps_S {100 * v['signal_efficiency']:.1f} %  "
            f"mistag {100 * v['mistag_rate']:.2f} %"
        )
    bins = m.get("per_pt_bin")
    if bins:
        lines.append("  per pT bin (GeV): jets top/QCD, AUC, 1/eps_B at eps_S = 30 % and 50 %")
        for row in bins:
            figures = row.get("note") or f"AUC {auc_text(row)}  1/eps_B {rejection(row, 30)}, {rejection(row, 50)}"
            lines.append(f"    {pt_text(row):>10}  {row['jets']['top']:>7}/{row['jets']['qcd']:<7}  {figures}")
        points = [wp for wp in m.get("working_points", {}) if any(wp in r.get("working_points", {}) for r in bins)]
        if points:
            lines.append("  working points per pT bin (eps_S / mistag at the global threshold):")
            for wp in points:
                cells = "  ".join(
                    f"{pt_text(r)}: {rate_text(r['working_points'][wp]['signal_efficiency'])} / "
                    f"{rate_text(r['working_points'][wp]['mistag_rate'], 2)}"
                    for r in bins
                )
                lines.append(f"    {wp:<12} {cells}")
    return "\n".join(lines)
