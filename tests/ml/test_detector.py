"""The detector response of the generator (hepinfer.ml.generation.detector) and the pT-hat option: real
Pythia events with and without it, and the response's parametrisation on particles built here."""

import awkward as ak
import numpy as np
import pytest
import uproot

from hepinfer import ConfigError
from hepinfer.ml.generation import detector
from hepinfer.ml.generation.generate import generate


def _particles(n, pid, charge, pt=50.0, eta=0.3):
    """(n, 9) rows of particles with the given pdgId and charge at (pt, eta), spread in phi."""
    phi = np.linspace(-3, 3, n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), np.full(n, pt * np.sinh(eta))
    m = 0.13957 if charge else 0.0
    e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    return np.stack([px, py, pz, e, np.full(n, pid), np.full(n, charge), *np.zeros((3, n))], axis=1)


def test_tracks_are_lost_at_the_documented_rate_and_become_calorimeter_deposits():
    rng = np.random.default_rng(1)
    pions = _particles(20000, 211, 1.0, pt=5.0, eta=0.3)  # barrel, above 1 GeV: 95 % tracked
    out = detector.respond(pions, rng)
    tracked = out[:, 5] != 0
    assert tracked.sum() / len(pions) == pytest.approx(0.95, abs=0.01)
    assert np.all(out[~tracked, 4] == 130)  # a pion without a track: a neutral-hadron deposit
    forward = detector.respond(_particles(2000, 211, 1.0, pt=5.0, eta=3.5), rng)
    assert np.all(forward[:, 5] == 0)  # outside the tracker: no track at all
    electrons = detector.respond(_particles(2000, 11, -1.0, pt=5.0, eta=3.5), rng)
    assert len(electrons) == 0  # an electron without a track is lost, not a hadron


def test_resolutions_match_the_parametrisation():
    rng = np.random.default_rng(2)
    pions = _particles(20000, 211, 1.0, pt=100.0, eta=0.2)
    out = detector.respond(pions, rng)
    pt = np.hypot(out[out[:, 5] != 0, 0], out[out[:, 5] != 0, 1])
    assert np.std(pt / 100.0) == pytest.approx(np.hypot(0.005, 1.5e-4 * 100), rel=0.05)
    photons = detector.respond(_particles(20000, 22, 0.0, pt=20.0, eta=0.0), rng)
    e_rel = photons[:, 3] / 20.0
    assert np.std(e_rel) == pytest.approx(np.sqrt(0.03**2 / 20 + (0.12 / 20) ** 2 + 0.005**2), rel=0.05)
    soft = detector.respond(_particles(1000, 130, 0.0, pt=0.5, eta=0.0), rng)
    assert np.all(soft[:, 3] > detector.HCAL_E_MIN)  # below the HCAL threshold: gone


def test_bad_detector_and_pt_hat_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown detector response 'delphes'.*cms"):
        generate("qcd", 10, 1, tmp_path / "x.root", progress=False, detector="delphes")
    with pytest.raises(ConfigError, match="pT-hat range"):
        generate("qcd", 10, 1, tmp_path / "x.root", progress=False, pt_hat=(900, 400))


@pytest.mark.slow
def test_detector_response_changes_particles_not_events(tmp_path):
    truth = uproot.open(generate("qcd", 30, 8, tmp_path / "t.root", progress=False, detector="none"))["Events"]
    seen = uproot.open(generate("qcd", 30, 8, tmp_path / "d.root", progress=False))["Events"]
    again = uproot.open(generate("qcd", 30, 8, tmp_path / "e.root", progress=False))["Events"]
    t, d, e = truth.arrays(), seen.arrays(), again.arrays()
    assert ak.all(ak.ravel(d.PFCands_pt) == ak.ravel(e.PFCands_pt))  # seeded: the same smearing
    assert ak.all(ak.ravel(t.GenPart_pt) == ak.ravel(d.GenPart_pt))  # the same events
    assert ak.sum(d.nPFCands) < ak.sum(t.nPFCands)  # lost tracks, thresholds
    assert 130 in set(np.unique(ak.to_numpy(ak.ravel(d.PFCands_pdgId))).astype(int))


@pytest.mark.slow
def test_pt_hat_range_moves_the_fat_jets(tmp_path):
    hard = uproot.open(generate("qcd", 40, 9, tmp_path / "h.root", progress=False, pt_hat=(1700, 2800)))["Events"]
    pt = ak.to_numpy(ak.ravel(hard["FatJet_pt"].array()))
    assert np.median(pt) > 1400 and pt.max() < 3200
