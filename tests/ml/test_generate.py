"""The event generator: real Pythia 8 + FastJet, PFNano-shaped output that coffea reads."""

import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot

from hepinfer import ConfigError
from hepinfer.ml.generation.generate import generate

# every test but test_bad_settings_are_named (refused before Pythia starts) runs the generator: slow


def _arrays(path):
    return uproot.open(path)["Events"].arrays()


@pytest.mark.slow
def test_same_seed_same_contents(tmp_path):
    a = generate("qcd", 15, 5, tmp_path / "a.root", progress=False)
    b = generate("qcd", 15, 5, tmp_path / "b.root", progress=False)
    c = generate("qcd", 15, 6, tmp_path / "c.root", progress=False)
    xa, xb, xc = _arrays(a), _arrays(b), _arrays(c)
    assert xa.fields == xb.fields
    for field in xa.fields:
        assert ak.all(ak.ravel(xa[field]) == ak.ravel(xb[field])), field
    assert not ak.all(ak.ravel(xa["PFCands_pt"])[:50] == ak.ravel(xc["PFCands_pt"])[:50])


@pytest.mark.slow
def test_nanoaod_branches(generated):
    tree = uproot.open(generated["ttbar"])["Events"]
    assert type(tree).__name__.startswith("Model_TTree")
    keys = set(tree.keys())
    for name in (
        "run",
        "luminosityBlock",
        "event",
        "nFatJet",
        "FatJet_pt",
        "FatJet_msoftdrop",
        "FatJet_tau4",
        "FatJet_n2b1",
        "FatJet_n3b1",
        "FatJet_nConstituents",
        "FatJet_label",
        "nJet",
        "Jet_pt",
        "nPFCands",
        "PFCands_pdgId",
        "PFCands_d0",
        "PFCands_dz",
        "nFatJetPFCands",
        "FatJetPFCands_jetIdx",
        "FatJetPFCands_pFCandsIdx",
        "nGenPart",
        "GenPart_pdgId",
        "GenPart_genPartIdxMother",
    ):
        assert name in keys, name
    x = tree.arrays(["PFCands_charge", "PFCands_d0", "PFCands_dz", "event", "luminosityBlock"])
    assert set(np.unique(ak.to_numpy(ak.flatten(x.PFCands_charge)))) <= {-1, 0, 1}
    assert np.isfinite(ak.to_numpy(ak.flatten(x.PFCands_d0))).all()
    assert ak.to_numpy(x.event).tolist() == list(range(1, 151)) and set(ak.to_numpy(x.luminosityBlock)) == {11}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["eager", "virtual", "dask"])
def test_coffea_pfnano_schema_links_constituents(generated, open_events, coffea_quiet, mode):
    with coffea_quiet():
        events = open_events(generated["ttbar"], mode=mode)
        fat, pf = events.FatJet, events.FatJet.constituents.pf
        if mode == "dask":
            fat, pf = fat.compute(), pf.compute()
    assert ak.all(ak.num(pf, axis=2) == fat.nConstituents)
    # the constituents' four-momenta add up to the jet (E-scheme recombination)
    px = ak.sum(pf.pt * np.cos(pf.phi), axis=2)
    py = ak.sum(pf.pt * np.sin(pf.phi), axis=2)
    assert np.allclose(ak.to_numpy(ak.flatten(np.hypot(px, py))), ak.to_numpy(ak.flatten(fat.pt)), rtol=1e-4)


@pytest.mark.slow
def test_truth_labels(generated, pfnano_events):
    fat = ak.flatten(pfnano_events.FatJet)
    labels = ak.to_numpy(fat.label)
    assert set(np.unique(labels)) <= {-1, 1} and (labels == 1).sum() > 20
    top_mass = np.median(ak.to_numpy(fat.msoftdrop[fat.label == 1]))
    assert 160 < top_mass < 190  # matched jets carry the top mass
    gen = pfnano_events.GenPart[0]
    tops = np.flatnonzero(np.abs(ak.to_numpy(gen.pdgId)) == 6)
    mothers = ak.to_numpy(gen.genPartIdxMother)
    assert len(tops) == 2 and all(mothers[t] == -1 for t in tops)
    assert all(abs(int(gen.pdgId[m])) == 6 for m in mothers[np.abs(ak.to_numpy(gen.pdgId)) == 24])
    qcd = uproot.open(generated["qcd"])["Events"].arrays(["FatJet_label"])
    assert set(np.unique(ak.to_numpy(ak.flatten(qcd.FatJet_label)))) == {0}


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown process 'zprime'"):
        generate("zprime", 10, 1, tmp_path / "x.root", progress=False)
    with pytest.raises(ConfigError, match="seeds"):
        generate("qcd", 10, -4, tmp_path / "x.root", progress=False)
    with pytest.raises(ConfigError, match="unknown layout 'miniaod'.*pfnano-nocount"):
        generate("qcd", 10, 1, tmp_path / "x.root", progress=False, layout="miniaod")
    with pytest.raises(ConfigError, match="unknown format 'hdf5'.*rntuple"):
        generate("qcd", 10, 1, tmp_path / "x.root", progress=False, format="hdf5")
    assert not (tmp_path / "x.root").exists()


def test_cli_knows_the_layouts_and_formats():
    from hepinfer.cli import parser

    args = parser().parse_args(
        ["generate", "--process", "qcd", "--events", "5", "--seed", "1", "-o", "q.root", "--layout", "nanoaod"]
    )
    assert (args.layout, args.format) == ("nanoaod", "ttree")
    args = parser().parse_args(["generate", "--process", "qcd", "--events", "5", "--seed", "1", "-o", "q.root"])
    assert (args.layout, args.format) == ("pfnano", "ttree")  # the default: PFNano as a TTree


@pytest.mark.slow
def test_layouts_and_formats_hold_the_same_events(tmp_path):
    """The same seed in every layout and format: the same events; each layout leaves out only what it
    says (older PFNano: FatJet_nConstituents; standard NanoAOD: the PF candidates and the link table)."""
    made = {
        (layout, fmt): generate("ttbar", 12, 8, tmp_path / f"{layout}_{fmt}.root", layout=layout, format=fmt)
        for layout, fmt in [("pfnano", "ttree"), ("pfnano-nocount", "ttree"), ("nanoaod", "rntuple")]
    }
    base = _arrays(made["pfnano", "ttree"])
    nocount = _arrays(made["pfnano-nocount", "ttree"])
    assert set(base.fields) - set(nocount.fields) == {"FatJet_nConstituents"}
    for field in nocount.fields:
        assert ak.all(ak.ravel(nocount[field]) == ak.ravel(base[field])), field
    ntuple = uproot.open(made["nanoaod", "rntuple"])["Events"]
    assert type(ntuple).__name__ == "Model_ROOT_3a3a_RNTuple"
    top = [k for k in ntuple.keys() if "." not in k]
    assert sorted(top) == ["FatJet", "GenPart", "Jet", "event", "luminosityBlock", "run"]  # no PF candidates
    nano = ntuple.arrays()
    for field in base.fields:
        collection, _, name = field.partition("_")
        if collection in ("FatJet", "Jet", "GenPart"):
            assert ak.all(ak.ravel(nano[collection][name]) == ak.ravel(base[field])), field
        elif collection in ("run", "event", "luminosityBlock"):
            assert ak.all(nano[collection] == base[field]), field
    assert "nConstituents" in nano.FatJet.fields and "tau4" in nano.FatJet.fields


@pytest.mark.slow
def test_cli_generates_files_in_parallel(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hepinfer.cli",
            "generate",
            "--process",
            "qcd",
            "--events",
            "5",
            "--seed",
            "31",
            "--files",
            "2",
            "--jobs",
            "2",
            "-o",
            str(tmp_path / "q_{seed}.root"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    files = sorted(tmp_path.glob("q_*.root"))
    assert [f.name for f in files] == ["q_31.root", "q_32.root"]
    assert ak.to_numpy(uproot.open(files[1])["Events"]["luminosityBlock"].array()).tolist() == [32] * 5
