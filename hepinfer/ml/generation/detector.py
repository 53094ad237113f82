"""A parametrised detector response for generated particles, in the spirit of Delphes' CMS card.

``hepinfer generate --detector cms`` (the default, and what the shipped taggers are trained on)
passes the visible final-state particles through :func:`respond` before jets are clustered;
``--detector none`` keeps them at truth level.  The response is per particle, seeded with the
event's file seed (same seed -> same smeared particles):

* **Tracker** (``|eta| < 2.5``), charged particles with pT > 0.1 GeV: reconstruction efficiency
  70 % (pT < 1 GeV) / 95 % in the barrel (``|eta| < 1.5``), 60 % / 85 % in the end-caps; a charged
  hadron that is not reconstructed, or lies outside the tracker, still deposits its energy in the
  calorimeters and is seen as a neutral hadron; a lost electron or muon is lost.  Momentum
  resolution ``sigma(pT)/pT = 0.5 % (+) 1.5e-4 * pT/GeV`` in the barrel, twice that in the end-caps
  (``(+)``: added in quadrature).  Impact parameters smeared by ``sigma(d0) = sigma(dz) = 20 um (+)
  30 um * GeV / pT``.
* **Muons** (``|eta| < 2.4``): efficiency 95 %, the tracker's resolution.
* **ECAL** (photons, ``|eta| < 3``): ``sigma(E)/E = 3 %/sqrt(E) (+) 0.12 GeV/E (+) 0.5 %``; direction
  smeared by 0.005 in eta and phi; threshold E > 0.5 GeV.
* **HCAL** (neutral hadrons, and charged hadrons without a track, ``|eta| < 5``):
  ``sigma(E)/E = 100 %/sqrt(E) (+) 5 %``; direction smeared by 0.02 in eta and phi (towers of
  0.087); threshold E > 1 GeV.

What it is not: no pile-up, no material interactions or photon conversions, no magnetic field
(curling tracks), no calibration to CMS's reconstruction (PUPPI, jet energy corrections).  The
effect on the taggers is measured in the docs' *Events and training* page.
"""

from __future__ import annotations

import numpy as np

DETECTORS = ("cms", "none")
TRACKER_ETA, MUON_ETA, ECAL_ETA = 2.5, 2.4, 3.0
BARREL_ETA = 1.5
TRACK_PT_MIN = 0.1
ECAL_E_MIN, HCAL_E_MIN = 0.5, 1.0
ECAL_ANGLE, HCAL_ANGLE = 0.005, 0.02
MUON_EFFICIENCY = 0.95


def _track_efficiency(pt, abseta):
    barrel = abseta < BARREL_ETA
    low = pt < 1.0
    eff = np.where(barrel, np.where(low, 0.70, 0.95), np.where(low, 0.60, 0.85))
    return np.where((pt > TRACK_PT_MIN) & (abseta < TRACKER_ETA), eff, 0.0)


def _track_resolution(pt, abseta):
    res = np.hypot(0.005, 1.5e-4 * pt)
    return np.where(abseta < BARREL_ETA, res, 2 * res)


def _scale(rows: np.ndarray, factor: np.ndarray, massless: bool) -> None:
    """Scale the momenta of ``rows`` by ``factor`` in place; E follows (keeping each mass, or 0)."""
    m2 = 0.0 if massless else np.maximum(rows[:, 3] ** 2 - (rows[:, :3] ** 2).sum(axis=1), 0.0)
    rows[:, :3] *= factor[:, None]
    rows[:, 3] = np.sqrt((rows[:, :3] ** 2).sum(axis=1) + m2)


def _turn(rows: np.ndarray, sigma: float, rng) -> None:
    """Smear the direction of ``rows`` in eta and phi by ``sigma``, keeping E and |p| (in place)."""
    if not len(rows):
        return
    px, py, pz = rows[:, 0], rows[:, 1], rows[:, 2]
    p = np.sqrt(px**2 + py**2 + pz**2)
    pt = np.hypot(px, py)
    eta = np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pz), where=pt > 0))
    phi = np.arctan2(py, px)
    eta = eta + rng.normal(0.0, sigma, len(rows))
    phi = phi + rng.normal(0.0, sigma, len(rows))
    pt_new = p / np.cosh(eta)
    rows[:, 0] = pt_new * np.cos(phi)
    rows[:, 1] = pt_new * np.sin(phi)
    rows[:, 2] = pt_new * np.sinh(eta)


def respond(particles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The particles as the detector sees them.

    ``particles``: (n, 9) rows of px, py, pz, E, pdgId, charge, x, y, z (mm), as the generator
    writes them.  Returns new rows (fewer, when particles are lost or below threshold); the
    production vertex is replaced by one whose straight-line impact parameters carry the
    tracker's resolution for tracks."""
    arr = np.array(particles, dtype=np.float64, copy=True).reshape(-1, 9)
    if not len(arr):
        return arr
    pt = np.hypot(arr[:, 0], arr[:, 1])
    eta = np.arcsinh(np.divide(arr[:, 2], pt, out=np.zeros(len(arr)), where=pt > 0))
    abseta = np.abs(eta)
    pid = np.abs(arr[:, 4]).astype(np.int64)
    charged = arr[:, 5] != 0
    muon, electron, photon = pid == 13, pid == 11, pid == 22
    u = rng.random(len(arr))

    tracked = charged & (u < np.where(muon, np.where(abseta < MUON_ETA, MUON_EFFICIENCY, 0.0), 1.0))
    tracked &= u < _track_efficiency(pt, abseta)
    # a charged hadron without a track is a calorimeter deposit; a lost lepton is lost
    to_hcal = (charged & ~tracked & ~muon & ~electron) | (~charged & ~photon)
    keep = tracked | to_hcal | photon

    out = arr[tracked]
    _scale(out, 1.0 + rng.normal(0.0, 1.0, len(out)) * _track_resolution(pt[tracked], abseta[tracked]), False)
    # impact parameters: shift the production point transverse to the track by the resolution
    tpt = np.hypot(out[:, 0], out[:, 1])
    sigma_mm = np.hypot(0.02, 0.03 / np.maximum(tpt, 1e-6))  # 20 um (+) 30 um GeV / pT, in mm
    ux, uy = -out[:, 1] / np.maximum(tpt, 1e-12), out[:, 0] / np.maximum(tpt, 1e-12)
    shift = rng.normal(0.0, 1.0, len(out)) * sigma_mm
    out[:, 6] += shift * ux
    out[:, 7] += shift * uy
    out[:, 8] += rng.normal(0.0, 1.0, len(out)) * sigma_mm

    ecal = arr[photon & (abseta < ECAL_ETA)]
    e = ecal[:, 3]
    res = np.sqrt((0.03 / np.sqrt(np.maximum(e, 1e-6))) ** 2 + (0.12 / np.maximum(e, 1e-6)) ** 2 + 0.005**2)
    _scale(ecal, np.maximum(1.0 + rng.normal(0.0, 1.0, len(ecal)) * res, 0.0), True)
    _turn(ecal, ECAL_ANGLE, rng)
    ecal = ecal[ecal[:, 3] > ECAL_E_MIN]

    hcal = arr[to_hcal & keep]
    hcal[:, 4] = np.where(hcal[:, 5] != 0, 130.0, hcal[:, 4])  # seen as a neutral hadron (K_L's id)
    hcal[:, 5] = 0.0
    e = hcal[:, 3]
    res = np.hypot(1.0 / np.sqrt(np.maximum(e, 1e-6)), 0.05)
    _scale(hcal, np.maximum(1.0 + rng.normal(0.0, 1.0, len(hcal)) * res, 0.0), True)
    _turn(hcal, HCAL_ANGLE, rng)
    hcal = hcal[hcal[:, 3] > HCAL_E_MIN]
    hcal[:, 6:9] = 0.0  # calorimeter deposits: no vertex
    ecal[:, 6:9] = 0.0
    return np.concatenate([out, ecal, hcal])
