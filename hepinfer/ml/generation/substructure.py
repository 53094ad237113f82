"""Jet substructure computed at generation time (per jet, numpy): N-subjettiness, soft-drop mass and
the energy-correlation ratios N2, N3 (beta = 1).

* tau_N (beta=1): axes are the N exclusive-kT subjets of the constituents; normalised by
  sum(pT) * R0 with R0 = 0.8.  (NanoAOD uses one-pass WTA-optimised axes; exclusive kT is the
  classic choice and needs no fastjet-contrib.)
* msoftdrop: Cambridge/Aachen reclustering, soft drop with z_cut = 0.1, beta = 0 (mMDT), as CMS.
* n2b1 = 2e3 / (1e2)^2, n3b1 = 2e4 / (1e3)^2 with generalised ECFs (Moult, Necib, Thaler 2016)
  and z_i = pT_i / pT_jet; the sums run over the leading 30 constituents (the rest carry a
  negligible share of the 3- and 4-point sums, and the cost grows as n^4).
"""

from __future__ import annotations

from functools import cache
from itertools import combinations

import numpy as np

R0 = 0.8
ECF_MAX_CONSTITUENTS = 30


def delta_phi(a, b):
    return (np.asarray(a) - np.asarray(b) + np.pi) % (2 * np.pi) - np.pi


def nsubjettiness(pt, eta, phi, axes_eta, axes_phi) -> float:
    if len(pt) == 0 or len(axes_eta) == 0:
        return 0.0
    dr = np.hypot(eta[:, None] - axes_eta[None, :], delta_phi(phi[:, None], axes_phi[None, :]))
    return float((pt * dr.min(axis=1)).sum() / (pt.sum() * R0))


@cache
def _combos(n: int, k: int) -> np.ndarray:
    return np.array(list(combinations(range(n), k)), dtype=np.intp).reshape(-1, k)


def _ecf(z, dr, n_points: int, n_angles: int) -> float:
    n = len(z)
    if n < n_points:
        return 0.0
    idx = _combos(n, n_points)
    pairs = [(a, b) for a, b in combinations(range(n_points), 2)]
    angles = np.stack([dr[idx[:, a], idx[:, b]] for a, b in pairs], axis=1)
    smallest = np.sort(angles, axis=1)[:, :n_angles].prod(axis=1)
    return float((z[idx].prod(axis=1) * smallest).sum())


def energy_correlation_ratios(pt, eta, phi, jet_pt) -> tuple[float, float]:
    """(N2, N3) with beta = 1 over the leading ECF_MAX_CONSTITUENTS constituents."""
    order = np.argsort(-pt)[:ECF_MAX_CONSTITUENTS]
    z = pt[order] / jet_pt
    e, p = eta[order], phi[order]
    dr = np.hypot(e[:, None] - e[None, :], delta_phi(p[:, None], p[None, :]))
    e2_1 = _ecf(z, dr, 2, 1)
    e3_1 = _ecf(z, dr, 3, 1)
    e3_2 = _ecf(z, dr, 3, 2)
    e4_2 = _ecf(z, dr, 4, 2)
    n2 = e3_2 / e2_1**2 if e2_1 > 0 else 0.0
    n3 = e4_2 / e3_1**2 if e3_1 > 0 else 0.0
    return n2, n3


def soft_drop_mass(constituents, fastjet, z_cut: float = 0.1) -> float:
    """mMDT (beta = 0) groomed mass of a jet given its fastjet constituents."""
    if not constituents:
        return 0.0
    cs = fastjet.ClusterSequence(list(constituents), fastjet.JetDefinition(fastjet.cambridge_algorithm, 10.0))
    jet = max(cs.inclusive_jets(0.0), key=lambda j: j.pt())
    p1, p2 = fastjet.PseudoJet(), fastjet.PseudoJet()
    while jet.has_parents(p1, p2):
        pt1, pt2 = p1.pt(), p2.pt()
        if min(pt1, pt2) / (pt1 + pt2) > z_cut:
            break
        jet = p1 if pt1 >= pt2 else p2
        p1, p2 = fastjet.PseudoJet(), fastjet.PseudoJet()
    m2 = jet.m2()
    return float(np.sqrt(m2)) if m2 > 0 else 0.0


def exclusive_axes(constituents, n: int, fastjet):
    """(eta, phi) of the n exclusive-kT subjets; empty when the jet has fewer than n constituents."""
    if len(constituents) < n:
        return np.zeros(0), np.zeros(0)
    cs = fastjet.ClusterSequence(list(constituents), fastjet.JetDefinition(fastjet.kt_algorithm, R0))
    sub = cs.exclusive_jets(n)
    return np.array([j.eta() for j in sub]), np.array([j.phi_std() for j in sub])
