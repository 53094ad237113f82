"""The flat (numpy) builders give bit for bit the tensors of the awkward reference
(each builder's awkward path): on generated events and on random jagged input with empty events,
jets without constituents, jets longer than max_particles, ties and NaN / inf in the sort key,
float32 and float64 fields, option-typed (NanoEvents-like) layouts; the segment operations match
awkward's sort, sum and argmax; one Chunk serves every builder called on the same arrays."""

import contextlib
import gc
from unittest import mock

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hepinfer.features import flat, image, jet_variables, particles
from hepinfer.features.catalogues import BDT_FEATURES, NANOAOD_BDT_FEATURES, PARTICLENET_FEATURES
from hepinfer.features.common import delta_phi, flat_jets, plain
from hepinfer.features.images import IMAGE_CHANNELS, image_on_awkward
from hepinfer.features.per_jet import JET_VARIABLES, jet_variables_on_awkward
from hepinfer.features.per_particle import PARTICLE_FEATURES, particles_on_awkward
from hepinfer.features.segments import descending_key, segment_argmax, segment_sum, sort_within

# the oracle: each builder's awkward path (the catalogues' expressions with awkward's sort, sums and argmax)
REFERENCE = {particles: particles_on_awkward, image: image_on_awkward, jet_variables: jet_variables_on_awkward}
ALL_FEATURES = list(PARTICLE_FEATURES)
CONFIGS = [  # (builder, parameters)
    (particles, dict(features=PARTICLENET_FEATURES)),
    (particles, dict(features=ALL_FEATURES, max_particles=7)),
    (particles, dict(features=["pt", "eta", "charge"], max_particles=5, sort_by="eta", points_name="")),
    (particles, dict(features=["pt", "d0", "pdg_id"], max_particles=4, sort_by="charge", mask_name="")),
    (particles, dict(features=["pt", "dz"], max_particles=3, sort_by="d0", features_name="f")),
    (image, dict()),
    (image, dict(channels=list(IMAGE_CHANNELS), pixels=9, half_width=0.3)),
    (jet_variables, dict(variables=BDT_FEATURES)),
    (jet_variables, dict(variables=[*JET_VARIABLES, "n2b1"])),
    (jet_variables, dict(variables=NANOAOD_BDT_FEATURES)),
]


def _reference(builder, jets, constituents, params):
    p = builder.check_params(**params)
    if builder is jet_variables and not builder.required_fields(**p)[1]:
        jets = plain(jets)
        return jet_variables_on_awkward(ak.flatten(jets, axis=1) if jets.ndim == 2 else jets, None, **p)
    return REFERENCE[builder](*flat_jets(jets, constituents), **p)


def assert_same(builder, jets, constituents, params):
    """The builder's tensors equal the reference's bit for bit (NaN payloads included)."""
    with np.errstate(all="ignore"):
        got = builder(jets, constituents, **params)
        want = _reference(builder, jets, constituents, params)
    assert list(got) == list(want)
    for name, arr in want.items():
        assert got[name].dtype == np.float32 and got[name].shape == arr.shape, name
        assert got[name].flags.c_contiguous
        assert np.array_equal(got[name].view(np.uint32), arr.view(np.uint32)), (builder.__name__, params, name)


@contextlib.contextmanager
def forbid_fallback():
    """The builders may not take their awkward path (the flat path must take the input)."""
    from hepinfer.features import images, per_jet, per_particle

    def refuse(*args, **kwargs):
        raise AssertionError("the flat builder fell back to its awkward path")

    with (
        mock.patch.object(per_particle, "particles_on_awkward", refuse),
        mock.patch.object(images, "image_on_awkward", refuse),
        mock.patch.object(per_jet, "jet_variables_on_awkward", refuse),
    ):
        yield


@pytest.fixture
def no_fallback():
    with forbid_fallback():
        yield


# ---- generated events (NanoEvents: option-typed, linked PF candidates)


@pytest.mark.parametrize("builder, params", CONFIGS, ids=lambda x: getattr(x, "__name__", None))
def test_equal_to_the_reference_on_generated_events(builder, params, pfnano_events, no_fallback):
    fat = pfnano_events.FatJet
    cons = fat.constituents.pf
    assert_same(builder, fat, cons, params)
    sel = fat.pt > 400  # a selection, as the processor makes: indexed layouts
    assert_same(builder, fat[sel], cons[sel], params)
    assert_same(builder, fat[:0], cons[:0], params)


def test_shuffled_constituents_are_sorted_like_the_reference(pfnano_events, no_fallback):
    """The generator stores constituents hardest first; shuffled, the sort itself is exercised."""
    fat = pfnano_events.FatJet
    cons = fat.constituents.pf
    rng = np.random.default_rng(0)
    counts = ak.num(cons, axis=2)
    noise = ak.unflatten(ak.unflatten(rng.random(int(ak.sum(counts))), ak.flatten(counts)), ak.num(cons))
    shuffled = cons[ak.argsort(noise, axis=2)]
    for builder, params in CONFIGS[:5]:
        assert_same(builder, fat, shuffled, params)


# ---- random jagged input


def _option(records, rng, missing: bool):
    """``records`` behind an IndexedOptionArray with a shuffled index (as NanoEvents links them),
    None at a few places when ``missing``."""
    perm = rng.permutation(len(records)).astype(np.int64)
    index = np.empty_like(perm)
    index[perm] = np.arange(len(perm))
    content = ak.to_layout(ak.to_packed(records[perm]))
    if missing and len(index):
        index[rng.integers(0, len(index), 1 + len(index) // 10)] = -1
    return ak.Array(ak.contents.IndexedOptionArray(ak.index.Index64(index), content))


@st.composite
def jagged(draw):
    """Events x jets [x particles]: empty events, jets without constituents or with more than 100,
    pT ties (values from a short list, 0 and -0 among them), NaN / inf sprinkled in, float32 or
    float64 fields, plain or option-typed constituents (None among them at times)."""
    n_events = draw(st.integers(0, 4))
    per_event = np.asarray(draw(st.lists(st.integers(0, 3), min_size=n_events, max_size=n_events)), np.int64)
    n_jets = int(per_event.sum())
    counts = np.asarray(draw(st.lists(st.integers(0, 130), min_size=n_jets, max_size=n_jets)), np.int64)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    n = int(counts.sum())
    real = lambda a: np.asarray(a, dtype=dtype)  # noqa: E731
    if draw(st.booleans()):
        pt = rng.choice(np.array([0.0, -0.0, 1.0, 2.5, 7.0, 40.0]), n)  # many ties
    else:
        pt = rng.exponential(10.0, n) + 1e-3
    fields = {
        "pt": real(pt),
        "eta": real(rng.normal(0, 0.5, n)),
        "phi": real(rng.uniform(-4, 4, n)),
        "mass": real(rng.uniform(0, 0.2, n)),
        "charge": rng.integers(-1, 2, n).astype(np.int32),
        "pdgId": rng.choice([11, -11, 13, -13, 22, 211, -211, 130], n).astype(np.int32),
        "d0": real(rng.normal(0, 1, n)),
        "dz": real(rng.normal(0, 5, n)),
    }
    if draw(st.booleans()) and n:  # non-finite values
        for name in ("pt", "eta", "phi", "d0"):
            at = rng.integers(0, n, 1 + n // 50)
            fields[name][at] = rng.choice(np.array([np.nan, np.inf, -np.inf]), len(at))
    cons = ak.zip(fields)
    layout = draw(st.sampled_from(["plain", "option", "missing"]))
    if layout != "plain":
        cons = _option(cons, rng, missing=layout == "missing")
    zero = lambda: rng.integers(0, 2, n_jets)  # noqa: E731 - some zero denominators
    jet_fields = {
        "pt": real(rng.uniform(200, 800, n_jets) * zero()),
        "eta": real(rng.uniform(-2, 2, n_jets)),
        "phi": real(rng.uniform(-np.pi, np.pi, n_jets)),
        "mass": real(rng.uniform(0, 250, n_jets)),
        "msoftdrop": real(rng.uniform(0, 200, n_jets)),
        **{f"tau{i}": real(rng.uniform(0, 0.5, n_jets) * zero()) for i in (1, 2, 3, 4)},
        "n2b1": real(rng.uniform(0, 0.5, n_jets)),
        "n3b1": real(rng.uniform(0, 3, n_jets)),
    }
    if draw(st.booleans()):
        jet_fields["nConstituents"] = counts.astype(np.uint8)
    jets = ak.unflatten(ak.zip(jet_fields), per_event)
    constituents = ak.unflatten(ak.unflatten(cons, counts), per_event)
    return jets, constituents, layout == "missing"


@settings(max_examples=40, deadline=None, print_blob=True)
@given(jagged(), st.sampled_from(range(len(CONFIGS))), st.booleans())
def test_equal_to_the_reference_on_random_jagged_input(data, config, flat_input):
    jets, constituents, missing = data
    if flat_input:
        jets, constituents = ak.flatten(jets, axis=1), ak.flatten(constituents, axis=1)
    builder, params = CONFIGS[config]
    with contextlib.nullcontext() if missing else forbid_fallback():
        assert_same(builder, jets, constituents, params)


def test_ties_keep_their_order_and_nan_comes_first(no_fallback):
    part = dict(pt=5.0, eta=0.1, phi=0.2, mass=0.0, charge=1, pdgId=211, d0=0.0, dz=0.0)
    pts = [5.0, 7.0, 5.0, float("nan"), 7.0, -0.0, 0.0, float("nan"), 5.0]
    cons = ak.Array([[[dict(part, pt=pt, eta=0.01 * i) for i, pt in enumerate(pts)], []]])
    jets = ak.Array([[dict(pt=100.0, eta=0.0, phi=0.0, mass=10.0)] * 2])
    with np.errstate(invalid="ignore"):
        x = particles(jets, cons, features=["eta"], max_particles=12)
    # NaN first (in order), then 7, 7, 5, 5, 5, then -0.0 and 0.0 as they came
    assert np.allclose(x["features"][0, 0, :9], [0.03, 0.07, 0.01, 0.04, 0.0, 0.02, 0.08, 0.05, 0.06])
    for builder, params in CONFIGS[:5]:
        assert_same(builder, jets, cons, params)


def test_missing_values_give_the_reference_s_values():
    """None among the constituents (an option type with missing entries): the reference runs."""
    rng = np.random.default_rng(1)
    part = ak.zip({k: rng.random(6) for k in ("pt", "eta", "phi", "mass", "d0", "dz")})
    part = ak.with_field(part, np.ones(6, np.int32), "charge")
    part = ak.with_field(part, np.full(6, 211, np.int32), "pdgId")
    cons = ak.unflatten(ak.unflatten(_option(part, rng, missing=True), [4, 2]), [2])
    jets = ak.Array([[dict(pt=100.0, eta=0.0, phi=0.0, mass=10.0)] * 2])
    for builder, params in (CONFIGS[0], CONFIGS[5]):
        assert_same(builder, jets, cons, params)


# ---- one Chunk per pair of arrays


def test_one_chunk_serves_every_builder_of_the_same_arrays(pfnano_events):
    fat = pfnano_events.FatJet
    jets, cons = fat[fat.pt > 300], fat.constituents.pf[fat.pt > 300]
    flat.clear()
    particles(jets, cons)
    first = flat.last_chunk()
    image(jets, cons)
    jet_variables(jets, cons)
    assert flat.last_chunk() is first  # the same arrays: the same Chunk
    particles(jets[:], cons)
    assert flat.last_chunk() is not first  # another jets array
    cons["pt"] = cons.pt * 2  # a new layout in the same Array object
    before = flat.last_chunk()
    assert_same(particles, jets, cons, dict(features=PARTICLENET_FEATURES))
    assert flat.last_chunk() is not before
    del jets, cons, first, before
    gc.collect()
    assert flat.last_chunk() is None  # the arrays are gone, so is the Chunk


# ---- the segment operations against awkward


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_])
def test_descending_key_orders_like_ak_argsort(dtype):
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 40, 300)
    n = int(counts.sum())
    if np.dtype(dtype).kind == "f":
        x = rng.choice(np.array([np.nan, -np.inf, np.inf, 0.0, -0.0, 1.5, -2.0, 3e38, -1e-40]), n)
        x = np.where(rng.random(n) < 0.5, rng.normal(0, 100, n), x).astype(dtype)
    elif dtype is np.bool_:
        x = rng.random(n) < 0.5
    else:
        info = np.iinfo(dtype)
        x = rng.choice(np.array([info.min, info.max, 0, 1, 2], dtype=dtype), n)
        x = np.where(rng.random(n) < 0.5, rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True), x)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    want = ak.flatten(ak.argsort(ak.unflatten(x, counts), axis=1, ascending=False) + offsets[:-1])
    order = sort_within(offsets, descending_key(x))
    got = np.arange(n) if order is None else order
    assert got.tolist() == ak.to_numpy(want).tolist()


@pytest.mark.parametrize("wide", [False, True])
def test_sort_within_is_a_stable_sort_per_segment(wide):
    rng = np.random.default_rng(3)
    counts = rng.choice([0, 1, 2, 3, 17, 64, 65, 300, 1100], 400)
    n = int(counts.sum())
    offsets = np.concatenate([[0], np.cumsum(counts)])
    key = rng.integers(0, 2**64 - 1 if wide else 50, n, dtype=np.uint64)
    segment = np.repeat(np.arange(len(counts)), counts)
    assert sort_within(offsets, key).tolist() == np.lexsort((key, segment)).tolist()
    assert sort_within(offsets, key[np.lexsort((key, segment))]) is None  # already in order: nothing to do


def test_segment_sum_and_argmax_are_awkward_s():
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 200, 500)
    n = int(counts.sum())
    offsets = np.concatenate([[0], np.cumsum(counts)])
    segment = np.repeat(np.arange(len(counts)), counts)
    for dtype in (np.float32, np.float64):
        x = (rng.exponential(1.0, n) * 10.0 ** rng.integers(-4, 5, n)).astype(dtype)
        x[rng.integers(0, n, 30)] = np.nan
        x[offsets[:-1][counts > 0][::7]] = np.nan  # NaN first in some jets
        jagged_x = ak.unflatten(x, counts)
        want = ak.to_numpy(ak.sum(jagged_x, axis=1))
        assert np.array_equal(segment_sum(x, segment, len(counts)).view(np.uint8), want.view(np.uint8))
        lead = ak.to_numpy(ak.fill_none(ak.argmax(jagged_x, axis=1), -1))
        got = segment_argmax(x, offsets, segment)
        assert (np.where(got >= 0, got - offsets[:-1], -1) == lead).all()
    flags = rng.random(n) < 0.3
    assert (segment_sum(flags, segment, len(counts)) == ak.to_numpy(ak.sum(ak.unflatten(flags, counts), axis=1))).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_delta_phi_is_delta_phi_bit_for_bit(dtype):
    rng = np.random.default_rng(5)
    a = rng.uniform(-10, 10, 200_000).astype(dtype)
    b = rng.uniform(-4, 4, 200_000).astype(dtype)
    edges = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e30, np.pi, -np.pi, 2 * np.pi, -2 * np.pi, -3 * np.pi]
    edges = np.array(edges, dtype=dtype)
    near = np.concatenate([np.nextafter(edges, dtype(k)) for k in (-np.inf, np.inf)] + [edges])
    a = np.concatenate([a, near, near - dtype(np.pi)])
    b = np.concatenate([b, np.zeros(2 * len(near), dtype)])
    with np.errstate(invalid="ignore"):
        want, got = delta_phi(a, b), flat.fast_delta_phi(a, b)
    assert got.dtype == want.dtype
    assert np.array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))
