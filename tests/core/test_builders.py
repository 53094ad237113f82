"""The built-in builders are instances of the composable ones (particles, image, jet_variables):
bit-for-bit the values of the hand-written builders they replaced, copied here as the reference, on
generated events and on random jagged input (empty events, jets without constituents, float32 and
float64 fields, zero denominators)."""

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hepinfer.features import BUILDERS, image, jet_variables, particles
from hepinfer.features.catalogues import BDT_FEATURES, JET_IMAGE_CHANNELS, PARTICLENET_FEATURES
from hepinfer.features.common import delta_phi, energy, flat_jets, pad_to_numpy, plain, safe_log, safe_ratio
from hepinfer.models import get_spec
from hepinfer.models.resolved import resolve

# ---- the reference: the builders as they were written by hand before the composable ones ----


def ref_particlenet(jets, constituents, max_particles=100):
    jets, constituents = flat_jets(jets, constituents)
    c = constituents[ak.argsort(constituents.pt, axis=1, ascending=False)]
    jet_e = energy(jets.pt, jets.eta, jets.mass)
    e = energy(c.pt, c.eta, c.mass)
    deta = c.eta - jets.eta
    dphi = delta_phi(c.phi, jets.phi)
    apid = abs(c.pdgId)
    charged = c.charge != 0
    lepton = (apid == 11) | (apid == 13)
    one = ak.ones_like(c.pt)
    flag = lambda cond: ak.where(cond, one, 0.0)  # noqa: E731
    feats = {
        "log_pt": (safe_log(c.pt) - 1.7) * 0.7,
        "log_e": (safe_log(e) - 2.0) * 0.7,
        "log_pt_rel": (safe_log(c.pt / jets.pt) + 4.7) * 0.7,
        "log_e_rel": (safe_log(e / jet_e) + 4.7) * 0.7,
        "deta": deta,
        "dphi": dphi,
        "dr": (np.hypot(deta, dphi) - 0.2) * 4.0,
        "charge": c.charge * one,
        "is_electron": flag(apid == 11),
        "is_muon": flag(apid == 13),
        "is_charged_hadron": flag(charged & ~lepton),
        "is_neutral_hadron": flag(~charged & (apid != 22)),
        "is_photon": flag(apid == 22),
        "tanh_d0": np.tanh(c.d0),
        "tanh_dz": np.tanh(c.dz),
    }
    n, p = len(jets), max_particles
    features = np.stack([pad_to_numpy(feats[name], p) for name in PARTICLENET_FEATURES], axis=1)
    mask = pad_to_numpy(ak.ones_like(feats["deta"]), p)[:, None, :]
    points = np.stack([pad_to_numpy(feats["deta"], p), pad_to_numpy(feats["dphi"], p)], axis=1)
    features = features.reshape(n, len(PARTICLENET_FEATURES), p)
    return {
        "points": np.ascontiguousarray(points, dtype=np.float32),
        "features": np.ascontiguousarray(features * mask, dtype=np.float32),
        "mask": np.ascontiguousarray(mask, dtype=np.float32),
    }


def ref_jet_images(jets, constituents, pixels=64, half_width=0.8):
    jets, constituents = flat_jets(jets, constituents)
    n, nch = len(jets), len(JET_IMAGE_CHANNELS)
    counts = ak.to_numpy(ak.num(constituents, axis=1))
    jet_index = np.repeat(np.arange(n), counts)
    deta = ak.to_numpy(ak.flatten(constituents.eta - jets.eta)).astype(np.float64)
    dphi = ak.to_numpy(ak.flatten(delta_phi(constituents.phi, jets.phi))).astype(np.float64)
    pt_frac = ak.to_numpy(ak.flatten(constituents.pt / jets.pt)).astype(np.float64)
    charged = ak.to_numpy(ak.flatten(constituents.charge != 0))
    scale = pixels / (2 * half_width)
    row = np.floor((deta + half_width) * scale).astype(np.int64)
    col = np.floor((dphi + half_width) * scale).astype(np.int64)
    inside = (row >= 0) & (row < pixels) & (col >= 0) & (col < pixels)
    base = (jet_index * nch) * pixels * pixels + row * pixels + col
    plane = pixels * pixels
    size = n * nch * plane
    image = np.zeros(size, dtype=np.float64)
    sel = inside & charged
    image += np.bincount(base[sel], weights=pt_frac[sel], minlength=size)
    sel = inside & ~charged
    image += np.bincount(base[sel] + plane, weights=pt_frac[sel], minlength=size)
    image += np.bincount(base[inside] + 2 * plane, minlength=size)
    return {"images": image.reshape(n, nch, pixels, pixels).astype(np.float32)}


def ref_bdt(jets, constituents):
    jets, c = flat_jets(jets, constituents)
    deta = c.eta - jets.eta
    dphi = delta_phi(c.phi, jets.phi)
    dr = np.hypot(deta, dphi)
    sum_pt = ak.sum(c.pt, axis=1)
    charged = c.charge != 0
    lead = ak.argmax(c.pt, axis=1, keepdims=True)
    lead_pt = ak.fill_none(ak.firsts(c.pt[lead]), 0.0)
    lead_dr = ak.fill_none(ak.firsts(dr[lead]), 0.0)
    mean_eta = safe_ratio(ak.sum(c.pt * deta, axis=1), sum_pt)
    mean_phi = safe_ratio(ak.sum(c.pt * dphi, axis=1), sum_pt)
    var_eta = safe_ratio(ak.sum(c.pt * deta**2, axis=1), sum_pt) - mean_eta**2
    var_phi = safe_ratio(ak.sum(c.pt * dphi**2, axis=1), sum_pt) - mean_phi**2
    n_const = jets.nConstituents if "nConstituents" in ak.fields(jets) else ak.num(c, axis=1)
    columns = [
        *(jets.pt, jets.eta, jets.mass, jets.msoftdrop),
        *(safe_ratio(jets.tau2, jets.tau1), safe_ratio(jets.tau3, jets.tau2), safe_ratio(jets.tau4, jets.tau3)),
        *(jets.n2b1, jets.n3b1, n_const, ak.sum(charged, axis=1), ak.sum(~charged, axis=1)),
        safe_ratio(lead_pt, jets.pt),
        safe_ratio(ak.sum(ak.where(charged, c.pt, 0.0), axis=1), sum_pt),
        safe_ratio(ak.sum(c.pt * dr, axis=1), jets.pt),
        safe_ratio(np.sqrt(ak.sum(c.pt**2, axis=1)), sum_pt),
        np.sqrt(np.maximum(var_eta, 0.0)),
        np.sqrt(np.maximum(var_phi, 0.0)),
        lead_dr,
        safe_ratio(jets.mass, jets.pt),
    ]
    x = np.stack([ak.to_numpy(col).astype(np.float64) for col in columns], axis=1)
    return {"input__0": x.astype(np.float32).reshape(len(jets), 20)}


def ref_bdt_nanoaod(jets, constituents=None):
    jets = plain(jets)
    if jets.ndim == 2:
        jets = ak.flatten(jets, axis=1)
    columns = [
        *(jets.pt, jets.eta, jets.mass, jets.msoftdrop),
        *(safe_ratio(jets.tau2, jets.tau1), safe_ratio(jets.tau3, jets.tau2), safe_ratio(jets.tau4, jets.tau3)),
        *(safe_ratio(jets.mass, jets.pt), safe_ratio(jets.msoftdrop, jets.pt)),
    ]
    x = np.stack([ak.to_numpy(col).astype(np.float64) for col in columns], axis=1)
    return {"input__0": x.astype(np.float32).reshape(len(jets), 9)}


REFERENCE = {
    "particlenet": ref_particlenet,
    "resnet50": ref_jet_images,
    "bdt": ref_bdt,
    "bdt_nanoaod": ref_bdt_nanoaod,
}
COMPOSED = {  # the built-ins as instances of the composable builders, called directly
    "particlenet": lambda j, c: particles(j, c, features=PARTICLENET_FEATURES, max_particles=100),
    "resnet50": lambda j, c: image(j, c, channels=JET_IMAGE_CHANNELS, pixels=64, half_width=0.8),
    "bdt": lambda j, c: jet_variables(j, c, variables=BDT_FEATURES),
    "bdt_nanoaod": lambda j, c: jet_variables(j, None, variables=get_spec("bdt_nanoaod").extra["features"]),
}


def assert_identical(model, jets, constituents):
    want = REFERENCE[model](jets, constituents)
    for got in (
        COMPOSED[model](jets, constituents),
        BUILDERS[model](jets, constituents),
        resolve(model).build_inputs(jets, constituents),
    ):
        assert list(got) == list(want)
        for name, arr in want.items():
            assert got[name].dtype == np.float32 and got[name].shape == arr.shape
            # bit for bit, NaN included
            assert np.array_equal(got[name].view(np.uint32), arr.view(np.uint32)), (model, name)
    assert get_spec(model).validate(want) == len(next(iter(want.values())))


@pytest.mark.parametrize("model", sorted(REFERENCE))
def test_builtins_equal_the_reference_on_generated_events(model, pfnano_events):
    fat = pfnano_events.FatJet
    assert_identical(model, fat, fat.constituents.pf)
    assert_identical(model, fat[:0], fat.constituents.pf[:0])  # no events at all


@st.composite
def jagged_jets(draw):
    """Events x jets [x particles]; empty events, jets without constituents, zero taus, and
    float32 or float64 fields (the generated files are float32)."""
    n_events = draw(st.integers(0, 4))
    per_event = np.asarray(draw(st.lists(st.integers(0, 3), min_size=n_events, max_size=n_events)), np.int64)
    n_jets = int(per_event.sum())
    counts = np.asarray(draw(st.lists(st.integers(0, 120), min_size=n_jets, max_size=n_jets)), np.int64)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    n = int(counts.sum())
    real = lambda a: np.asarray(a, dtype=dtype)  # noqa: E731
    cons = ak.zip(
        {
            "pt": real(rng.exponential(10.0, n) + 1e-3),
            "eta": real(rng.normal(0, 0.5, n)),
            "phi": real(rng.uniform(-np.pi, np.pi, n)),
            "mass": real(rng.uniform(0, 0.2, n)),
            "charge": rng.integers(-1, 2, n).astype(np.int32),
            "pdgId": rng.choice([11, -11, 13, -13, 22, 211, -211, 130], n).astype(np.int32),
            "d0": real(rng.normal(0, 1, n)),
            "dz": real(rng.normal(0, 5, n)),
        }
    )
    zero = lambda: rng.integers(0, 2, n_jets)  # noqa: E731 - some zero denominators
    fields = {
        "pt": real(rng.uniform(200, 800, n_jets)),
        "eta": real(rng.uniform(-2, 2, n_jets)),
        "phi": real(rng.uniform(-np.pi, np.pi, n_jets)),
        "mass": real(rng.uniform(0, 250, n_jets)),
        "msoftdrop": real(rng.uniform(0, 200, n_jets)),
        **{f"tau{i}": real(rng.uniform(0, 0.5, n_jets) * zero()) for i in (1, 2, 3, 4)},
        "n2b1": real(rng.uniform(0, 0.5, n_jets)),
        "n3b1": real(rng.uniform(0, 3, n_jets)),
    }
    if draw(st.booleans()):
        fields["nConstituents"] = counts.astype(np.int32)
    jets = ak.unflatten(ak.zip(fields), per_event)
    constituents = ak.unflatten(ak.unflatten(cons, counts), per_event)
    return jets, constituents


@settings(max_examples=30, deadline=None, print_blob=True)
@given(jagged_jets(), st.sampled_from(sorted(REFERENCE)))
def test_builtins_equal_the_reference_on_random_jagged_input(data, model):
    jets, constituents = data
    assert_identical(model, jets, constituents)
    assert_identical(model, ak.flatten(jets, axis=1), ak.flatten(constituents, axis=1))  # flat jets too


def test_hand_made_edge_cases_equal_the_reference():
    """Jet pT = 0 (the unguarded log ratios of ParticleNet), an empty event, a jet without constituents."""
    jet = dict(pt=0.0, eta=0.1, phi=0.2, mass=0.0, msoftdrop=0.0, tau1=0.0, tau2=0.0, tau3=0.0, tau4=0.0)
    jet.update(n2b1=0.0, n3b1=0.0)
    part = dict(pt=5.0, eta=0.2, phi=0.1, mass=0.0, charge=0, pdgId=22, d0=0.0, dz=0.0)
    jets = ak.Array([[jet, dict(jet, pt=400.0)], [], [jet]])
    cons = ak.Array([[[part, dict(part, pt=0.0)], []], [], [[part] * 3]])
    with np.errstate(divide="ignore", invalid="ignore"):  # ParticleNet's pT / pT_jet is not guarded
        for model in REFERENCE:
            assert_identical(model, jets, cons)


# ---- composed builders: parameters, declarations, typetracers, the documented catalogues ----

FEATURES8 = ["pt_rel", "e_rel", "deta", "dphi", "delta_r", "charge", "tanh_d0", "is_photon"]


def particles_toml(features=FEATURES8, n=50) -> str:
    tensors = {"points": [2, n], "features": [len(features), n], "mask": [1, n]}
    lines = [
        "[model.cmsnet]",
        'engine = "remote"',
        "max_batch_size = 64",
        'classes = ["qcd", "top"]',
        'builder = "particles"',
    ]
    lines += ["[model.cmsnet.builder_params]", f"features = {features!r}".replace("'", '"'), f"max_particles = {n}"]
    for name, shape in tensors.items():
        lines += ["[[model.cmsnet.inputs]]", f'name = "{name}"', 'dtype = "float32"', f"shape = {shape}"]
    return "\n".join(lines + ["[[model.cmsnet.outputs]]", 'name = "softmax"', 'dtype = "float32"', "shape = [2]"])


def test_toml_model_with_the_particles_builder(tmp_path):
    from hepinfer.models.declare import load_toml

    (tmp_path / "m.toml").write_text(particles_toml())
    (spec,) = load_toml(tmp_path / "m.toml")
    jets, cons = next(iter(_examples()))
    got = resolve(spec).build_inputs(jets, cons)
    want = particles(jets, cons, features=FEATURES8, max_particles=50)
    assert spec.validate(got) == len(ak.flatten(jets, axis=1))
    assert got["features"].shape[1:] == (8, 50) and got["mask"].shape[1:] == (1, 50)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    # the columns come from the builder and its parameters
    from hepinfer.analysis.job.inputs import required_branches

    assert resolve(spec).required_fields == (
        ("pt", "eta", "mass", "phi"),
        ("pt", "eta", "mass", "phi", "charge", "d0", "pdgId"),
    )
    assert "PFCands_dz" not in required_branches([spec]) and "PFCands_d0" in required_branches([spec])


@pytest.mark.parametrize(
    "toml, message",
    [
        (particles_toml(features=["log_pt", "pt_relative"]), "builder_params.features: unknown particle feature "),
        (
            particles_toml().replace("max_particles = 50", 'max_particles = 50\nsort_by = "p t"'),
            "builder_params.sort_by: expected a field name, got 'p t'",
        ),
        (particles_toml().replace("max_particles = 50", "max_particles = 40"), "makes 'points' of shape [2, 40]"),
    ],
)
def test_bad_builder_params_fail_when_the_declaration_loads(tmp_path, toml, message):
    from hepinfer import ConfigError
    from hepinfer.models.declare import load_toml

    (tmp_path / "m.toml").write_text(toml)
    with pytest.raises(ConfigError, match="model 'cmsnet'") as err:
        load_toml(tmp_path / "m.toml")
    assert message in str(err.value)
    if "unknown" in message:
        assert "'pt_relative'; valid names: log_pt, log_e," in str(err.value)


@pytest.mark.parametrize(
    "fn, params, message",
    [
        (image, dict(channels=["pt_charged", "ecal"]), "builder_params.channels: unknown image channel 'ecal'"),
        (image, dict(half_width=0), "builder_params.half_width: expected a finite number > 0"),
        (jet_variables, dict(variables=["tau21", "not a field"]), "unknown jet variable 'not a field'"),
        (jet_variables, dict(variables=[]), "builder_params.variables: expected a non-empty list"),
        (particles, dict(features_name="", points_name="", mask_name=""), "would output nothing"),
    ],
)
def test_builder_params_are_checked(fn, params, message):
    from hepinfer import ConfigError

    with pytest.raises(ConfigError, match="valid names|expected|nothing") as err:
        fn.check_params(**params)
    assert message in str(err.value)


def _examples():
    jet = dict(pt=500.0, eta=0.3, phi=1.0, mass=90.0, msoftdrop=80.0, tau1=0.2, tau2=0.1, tau3=0.0, tau4=0.0)
    jet.update(n2b1=0.1, n3b1=1.0, particleNet_TvsQCD=0.7)
    part = dict(pt=50.0, eta=0.35, phi=0.9, mass=0.1, charge=1, pdgId=211, d0=0.01, dz=0.02)
    yield ak.Array([[jet], [], [jet, dict(jet, pt=0.0)]]), ak.Array([[[part, dict(part, pt=10.0)]], [], [[part], []]])


def test_composed_builders_follow_their_parameters():
    jets, cons = next(iter(_examples()))
    x = particles(jets, cons, features=["pt", "charge"], max_particles=3, sort_by="eta", points_name="")
    assert list(x) == ["features", "mask"] and x["features"].shape == (3, 2, 3)
    assert x["features"][0, 0].tolist() == [50.0, 10.0, 0.0] and x["mask"][2, 0].tolist() == [0, 0, 0]
    img = image(jets, cons, channels=["pt", "multiplicity_charged"], pixels=8, half_width=0.4, images_name="x")
    assert list(img) == ["x"] and img["x"].shape == (3, 2, 8, 8) and img["x"][0, 1].sum() == 2
    v = jet_variables(jets, None, variables=["particleNet_TvsQCD", "msoftdrop_over_pt", "tau32"], input_name="v")
    assert np.allclose(v["v"], [[0.7, 0.16, 0.0], [0.7, 0.16, 0.0], [0.7, 0.0, 0.0]])
    assert jet_variables.required_fields(variables=["tau21"]) == (("tau1", "tau2"), ())
    assert jet_variables.required_fields(variables=["girth"])[1] == ("pt", "eta", "phi")


def _field_keys(form) -> dict:
    """{form key of a record field's data: the field's name}."""
    if isinstance(form, ak.forms.RecordForm):
        return {form.contents[i].form_key: name for i, name in enumerate(form.fields)}
    return _field_keys(form.content)


def test_typetracers_touch_exactly_the_builders_columns():
    """A model's inputs on typetracers: the columns of the builder and its parameters are touched, and
    empty arrays of the spec's shapes come back, for composed and built-in builders alike."""
    import dataclasses

    jets, cons = next(iter(_examples()))
    spec = dataclasses.replace(
        get_spec("bdt_nanoaod"),
        name="cms",
        builder="jet_variables",
        builder_params={"variables": ["tau21", "particleNet_TvsQCD"]},
        inputs=(dataclasses.replace(get_spec("bdt_nanoaod").inputs[0], shape=(2,)),),
    )
    form_j, form_c = ak.to_layout(jets).form_with_key(), ak.to_layout(cons).form_with_key()
    fields_j, fields_c = _field_keys(form_j), _field_keys(form_c)
    for model in ("particlenet", "resnet50", "bdt", "bdt_nanoaod", spec):
        tt_jets, report_j = ak.typetracer.typetracer_with_report(form_j)
        tt_cons, report_c = ak.typetracer.typetracer_with_report(form_c)
        out = resolve(model).touch_inputs(ak.Array(tt_jets), ak.Array(tt_cons))
        assert {k: v.shape[1:] for k, v in out.items()} == {t.name: t.shape for t in get_spec(model).inputs}
        assert all(len(v) == 0 for v in out.values())
        touched = {fields_j[k] for k in report_j.data_touched if k in fields_j}
        touched_c = {fields_c[k] for k in report_c.data_touched if k in fields_c}
        jet_fields, cons_fields = resolve(model).required_fields
        assert touched == set(jet_fields) and touched_c == set(cons_fields), model


def test_documented_catalogues_are_the_code_s():
    import re
    from pathlib import Path

    from hepinfer.features import IMAGE_CHANNELS, JET_VARIABLES, PARTICLE_FEATURES

    text = (Path(__file__).resolve().parents[2] / "docs" / "guide" / "user-models.md").read_text()
    for title, catalogue in (
        ("particles", PARTICLE_FEATURES),
        ("image", IMAGE_CHANNELS),
        ("jet_variables", JET_VARIABLES),
    ):
        section = text.split(f"### `{title}`")[1].split("\n#")[0]
        table = section.split("| name |")[1]
        assert re.findall(r"^\| `(\w+)` \|", table, flags=re.M) == list(catalogue), title
