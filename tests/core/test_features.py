"""Input builders: exact values on a hand-made event, well-defined rows for empty events and jets
without constituents, the documented shapes on generated files, and properties on random input."""

import math

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hepinfer import InputMismatch, get_spec
from hepinfer.features import bdt_inputs, jet_images, link_constituents, particlenet_inputs
from hepinfer.features.catalogues import BDT_FEATURES, PARTICLENET_FEATURES
from hepinfer.models.resolved import resolve

JET = dict(
    pt=600.0,
    eta=0.5,
    phi=0.2,
    mass=170.0,
    msoftdrop=165.0,
    tau1=0.3,
    tau2=0.15,
    tau3=0.06,
    tau4=0.05,
    n2b1=0.2,
    n3b1=1.5,
    nConstituents=3,
)
EMPTY_JET = dict(
    pt=300.0,
    eta=-1.0,
    phi=3.1,
    mass=20.0,
    msoftdrop=0.0,
    tau1=0.0,
    tau2=0.0,
    tau3=0.0,
    tau4=0.0,
    n2b1=0.0,
    n3b1=0.0,
    nConstituents=0,
)
PHOTON = dict(pt=100.0, eta=0.61, phi=0.09, mass=0.0, charge=0, pdgId=22, d0=0.0, dz=0.0)
PION = dict(pt=300.0, eta=0.5, phi=0.26, mass=0.13957, charge=1, pdgId=211, d0=0.1, dz=-0.2)
ELECTRON = dict(pt=200.0, eta=1.5, phi=0.2, mass=0.000511, charge=-1, pdgId=11, d0=-0.05, dz=0.0)


def _many(n):
    return [
        dict(
            pt=float(i + 1),
            eta=0.01 * (i % 7),
            phi=-0.01 * (i % 5),
            mass=0.0,
            charge=(i % 3) - 1,
            pdgId=[211, 22, -211][i % 3],
            d0=0.0,
            dz=0.0,
        )
        for i in range(n)
    ]


@pytest.fixture
def hand_made():
    """Three events: [A (3 constituents), B (none)], [] (no jets), [C (120 constituents)]."""
    jet_c = dict(JET, nConstituents=120)
    jets = ak.Array([[JET, EMPTY_JET], [], [jet_c]])
    constituents = ak.Array([[[PHOTON, PION, ELECTRON], []], [], [_many(120)]])
    return jets, constituents


def _e(p):
    return math.sqrt((p["pt"] * math.cosh(p["eta"])) ** 2 + p["mass"] ** 2)


def test_particlenet_values(hand_made):
    x = particlenet_inputs(*hand_made)
    assert get_spec("particlenet").validate(x) == 3  # one row per jet, event order
    mask, points, feats = x["mask"][:, 0], x["points"], x["features"]
    assert mask[0].tolist() == [1, 1, 1] + [0] * 97 and mask[1].sum() == 0 and mask[2].sum() == 100
    ordered = [PION, ELECTRON, PHOTON]  # sorted by pT
    f = {name: feats[0, i, :3] for i, name in enumerate(PARTICLENET_FEATURES)}
    jet_e = _e(JET)
    for k, p in enumerate(ordered):
        deta, dphi = p["eta"] - JET["eta"], p["phi"] - JET["phi"]
        assert points[0, :, k] == pytest.approx([deta, dphi], abs=1e-6)
        assert f["log_pt"][k] == pytest.approx((math.log(p["pt"]) - 1.7) * 0.7, rel=1e-5)
        assert f["log_e"][k] == pytest.approx((math.log(_e(p)) - 2.0) * 0.7, rel=1e-5)
        assert f["log_pt_rel"][k] == pytest.approx((math.log(p["pt"] / JET["pt"]) + 4.7) * 0.7, rel=1e-5)
        assert f["log_e_rel"][k] == pytest.approx((math.log(_e(p) / jet_e) + 4.7) * 0.7, rel=1e-5)
        assert f["dr"][k] == pytest.approx((math.hypot(deta, dphi) - 0.2) * 4.0, abs=1e-5)
        assert f["charge"][k] == p["charge"]
        assert f["tanh_d0"][k] == pytest.approx(math.tanh(p["d0"]), abs=1e-7)
        assert f["tanh_dz"][k] == pytest.approx(math.tanh(p["dz"]), abs=1e-7)
    assert f["is_charged_hadron"].tolist() == [1, 0, 0]
    assert f["is_electron"].tolist() == [0, 1, 0]
    assert f["is_photon"].tolist() == [0, 0, 1]
    assert f["is_neutral_hadron"].tolist() == [0, 0, 0] and f["is_muon"].tolist() == [0, 0, 0]
    assert not feats[0, :, 3:].any() and not points[0, :, 3:].any()  # padding is exactly zero
    assert not feats[1].any() and not points[1].any()  # the jet without constituents
    kept_pt = np.exp(feats[2, 0] / 0.7 + 1.7)  # jet C keeps its 100 hardest particles, hardest first
    assert kept_pt == pytest.approx(np.arange(120, 20, -1), rel=1e-4)


def test_jet_image_values(hand_made):
    img = jet_images(*hand_made)["images"]
    assert img.shape == (3, 3, 64, 64) and img.dtype == np.float32
    # pion: deta 0 -> row 32, dphi 0.06 -> column 34; photon: deta 0.11 -> row 36, dphi -0.11 -> column 27;
    # the electron (deta 1.0) is outside the 0.8 window and dropped
    assert img[0, 0, 32, 34] == pytest.approx(300 / 600)
    assert img[0, 1, 36, 27] == pytest.approx(100 / 600)
    assert img[0, 2, 32, 34] == 1 and img[0, 2, 36, 27] == 1 and img[0, 2].sum() == 2
    assert img[0, 0].sum() == pytest.approx(0.5) and img[0, 1].sum() == pytest.approx(100 / 600)
    assert not img[1].any()
    assert img[2, 2].sum() == 120


def test_bdt_values(hand_made):
    x = bdt_inputs(*hand_made)["input__0"]
    assert x.shape == (3, len(BDT_FEATURES)) and np.isfinite(x).all()
    a = dict(zip(BDT_FEATURES, x[0]))
    dr = {id(p): math.hypot(p["eta"] - JET["eta"], p["phi"] - JET["phi"]) for p in (PHOTON, PION, ELECTRON)}
    assert a["tau21"] == pytest.approx(0.5) and a["tau32"] == pytest.approx(0.4)
    assert a["tau43"] == pytest.approx(0.05 / 0.06, rel=1e-5)
    assert (a["n_constituents"], a["n_charged"], a["n_neutral"]) == (3, 2, 1)
    assert a["pt_frac_leading"] == pytest.approx(0.5) and a["pt_frac_charged"] == pytest.approx(500 / 600)
    assert a["girth"] == pytest.approx(sum(p["pt"] * dr[id(p)] for p in (PHOTON, PION, ELECTRON)) / 600, rel=1e-5)
    assert a["pt_dispersion"] == pytest.approx(math.sqrt(300**2 + 200**2 + 100**2) / 600, rel=1e-5)
    assert a["lead_dr"] == pytest.approx(dr[id(PION)], rel=1e-5)
    assert a["mass_over_pt"] == pytest.approx(170 / 600)
    b = dict(zip(BDT_FEATURES, x[1]))  # zero denominators give 0, no constituents give 0
    assert b["tau21"] == b["tau32"] == b["girth"] == b["lead_dr"] == b["n_charged"] == 0


def test_events_without_jets_give_no_rows(hand_made):
    jets, cons = hand_made
    for model in ("particlenet", "resnet50", "bdt"):
        out = resolve(model).build_inputs(jets[1:2], cons[1:2])  # the event without fat jets
        assert get_spec(model).validate(out) == 0
        assert [len(v) for v in resolve(model).build_inputs(jets, cons).values()][0] == 3  # and it adds no row


def test_missing_field_is_named(hand_made):
    jets, cons = hand_made
    with pytest.raises(InputMismatch, match="'d0'"):
        particlenet_inputs(jets, cons[["pt", "eta", "phi", "mass", "charge", "pdgId", "dz"]])
    with pytest.raises(InputMismatch, match="'tau4'"):
        bdt_inputs(jets[["pt", "eta", "phi", "mass", "msoftdrop", "tau1", "tau2", "tau3", "n2b1", "n3b1"]], cons)
    with pytest.raises(InputMismatch, match="3 jets but constituents for 2"):
        jet_images(jets, cons[:2])


def test_builders_on_generated_files(pfnano_events):
    fat = pfnano_events.FatJet
    n = int(ak.sum(ak.num(fat)))
    for model in ("particlenet", "resnet50", "bdt"):
        out = resolve(model).build_inputs(fat, fat.constituents.pf)
        assert get_spec(model).validate(out) == n
        assert all(np.isfinite(v).all() for v in out.values())


def test_link_table_matches_coffea(generated, pfnano_events):
    import uproot

    arrays = uproot.open(generated["ttbar"])["Events"].arrays()
    events = ak.zip(
        {
            c: ak.zip({k.split("_", 1)[1]: arrays[k] for k in arrays.fields if k.startswith(c + "_")})
            for c in ("FatJet", "PFCands", "FatJetPFCands")
        },
        depth_limit=1,
    )
    ours = link_constituents(events)
    theirs = pfnano_events.FatJet.constituents.pf
    assert ak.all(ak.num(ours, axis=2) == ak.num(theirs, axis=2))
    assert ak.all(ak.ravel(ours.pt) == ak.ravel(theirs.pt))
    x = particlenet_inputs(events.FatJet, ours)
    y = particlenet_inputs(pfnano_events.FatJet, theirs)
    assert all(np.array_equal(x[k], y[k]) for k in x)


@st.composite
def jagged_jets(draw):
    n_events = draw(st.integers(0, 4))
    jets_per_event = draw(st.lists(st.integers(0, 3), min_size=n_events, max_size=n_events))
    n_jets = sum(jets_per_event)
    counts = draw(st.lists(st.integers(0, 130), min_size=n_jets, max_size=n_jets))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    n_part = sum(counts)
    cons = ak.zip(
        {
            "pt": rng.exponential(10.0, n_part) + 1e-3,
            "eta": rng.normal(0, 0.5, n_part),
            "phi": rng.uniform(-np.pi, np.pi, n_part),
            "mass": rng.uniform(0, 0.2, n_part),
            "charge": rng.integers(-1, 2, n_part),
            "pdgId": rng.choice([11, -13, 22, 211, 130], n_part),
            "d0": rng.normal(0, 1, n_part),
            "dz": rng.normal(0, 5, n_part),
        }
    )
    jet = ak.zip(
        {
            "pt": rng.uniform(200, 800, n_jets),
            "eta": rng.uniform(-2, 2, n_jets),
            "phi": rng.uniform(-np.pi, np.pi, n_jets),
            "mass": rng.uniform(0, 250, n_jets),
            "msoftdrop": rng.uniform(0, 200, n_jets),
            **{f"tau{i}": rng.uniform(0, 0.5, n_jets) * rng.integers(0, 2, n_jets) for i in (1, 2, 3, 4)},
            "n2b1": rng.uniform(0, 0.5, n_jets),
            "n3b1": rng.uniform(0, 3, n_jets),
        }
    )
    jets_per_event = np.asarray(jets_per_event, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    jets = ak.unflatten(jet, jets_per_event)
    constituents = ak.unflatten(ak.unflatten(cons, counts), jets_per_event)
    return jets, constituents, np.asarray(counts, dtype=np.int64)


@settings(max_examples=25, deadline=None)
@given(jagged_jets())
def test_builders_on_random_jagged_input(data):
    jets, constituents, counts = data
    pn = particlenet_inputs(jets, constituents)
    assert pn["mask"].shape == (len(counts), 1, 100)
    assert pn["mask"].sum(axis=(1, 2)).tolist() == np.minimum(counts, 100).tolist()
    assert all(np.isfinite(v).all() for v in pn.values())
    img = jet_images(jets, constituents)["images"]
    assert img.shape == (len(counts), 3, 64, 64) and (img[:, 2].sum(axis=(1, 2)) <= counts).all()
    x = bdt_inputs(jets, constituents)["input__0"]
    assert x.shape == (len(counts), 20) and np.isfinite(x).all()


@pytest.mark.slow
def test_builders_per_partition_on_dask_awkward(generated, pfnano_events, open_events, coffea_quiet):
    """In coffea's dask mode the builders run per partition; while dask-awkward traces the graph
    (the caller decides it is a typetracer) the model touches exactly the columns its builder reads,
    so only those are loaded."""
    import dask_awkward as dak

    from hepinfer.features.common import TYPETRACER, array_kind

    model = resolve("particlenet")

    def real_particles(jets, cons):
        if array_kind(jets, cons) == TYPETRACER:
            model.touch_inputs(jets, cons)
            return ak.Array(ak.Array([[1.0]]).layout.to_typetracer(forget_length=True))
        x = particlenet_inputs(jets, cons)
        return ak.unflatten(x["mask"].sum(axis=(1, 2)), ak.num(jets))

    with coffea_quiet():
        events = open_events(generated["ttbar"], mode="dask", steps=[[0, 50], [50, 100], [100, 150]])
        out = dak.map_partitions(real_particles, events.FatJet, events.FatJet.constituents.pf)
        columns = set(next(iter(dak.report_necessary_columns(out).values())))
        got = out.compute()
    assert out.npartitions == 3
    want = real_particles(pfnano_events.FatJet, pfnano_events.FatJet.constituents.pf)
    assert got.tolist() == want.tolist()
    assert {"PFCands_d0", "PFCands_pdgId", "FatJet_pt"} <= columns
    assert not any(c.startswith(("Jet_", "GenPart_")) for c in columns) and "FatJet_tau2" not in columns
