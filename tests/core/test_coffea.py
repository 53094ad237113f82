"""The coffea plug-in and the example processor, on generated events, locally and on the real server."""

import pickle

import awkward as ak
import numpy as np
import pytest

import hepinfer
from hepinfer import InferenceConfig
from hepinfer.analysis.processor import TopTagProcessor
from hepinfer.coffea import JetTagger
from hepinfer.process_scorers import SCORERS

MODELS = ("particlenet", "bdt")
# every test but the last runs on generated events (and most on the server): triton and slow


def _same(a, b):
    assert {k: int(v) for k, v in a["cutflow"].items()} == {k: int(v) for k, v in b["cutflow"].items()}
    for name in a["hists"]:
        assert np.array_equal(a["hists"][name].values(), b["hists"][name].values()), name


@pytest.mark.triton
@pytest.mark.slow
def test_tagger_keeps_the_jagged_layout(artefacts, pfnano_events):
    fat = pfnano_events.FatJet
    scores = JetTagger("bdt")(fat, fat.constituents.pf)
    assert ak.all(ak.num(scores, axis=1) == ak.num(fat, axis=1))
    from hepinfer.features import bdt_inputs

    want = hepinfer.Scorer("bdt")(bdt_inputs(fat, fat.constituents.pf))["output__0"][:, 1]
    assert np.array_equal(ak.to_numpy(ak.flatten(scores)), want)
    clone = pickle.loads(pickle.dumps(JetTagger("bdt", mode="remote", url="grpc://127.0.0.1:1")))
    assert clone.config.url == "grpc://127.0.0.1:1" and "SCORERS" not in vars(clone)


@pytest.mark.triton
@pytest.mark.slow
def test_nanoaod_and_pfnano_schemas_agree(artefacts, generated, open_events):
    a = TopTagProcessor(models=("bdt",)).process(open_events(generated["ttbar"], "PFNanoAODSchema", "virtual"))
    b = TopTagProcessor(models=("bdt",)).process(open_events(generated["ttbar"], "NanoAODSchema", "virtual"))
    _same(a, b)
    assert int(a["cutflow"]["selected_fatjets"]) > 20


@pytest.fixture
def dask_client():  # closed after its test: a client left open makes dask warn on every later compute
    from hepinfer.analysis.clusters import dask_client as open_client

    with open_client("local", workers=2) as client:
        yield client


@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.parametrize("executor", ["iterative", "futures", "dask"])
def test_runner_local_equals_remote(server, generated, executor, coffea_quiet, request):
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema

    fileset = {name: {"files": {str(path): "Events"}} for name, path in generated.items()}
    results = {}
    for mode in ("local", "remote"):
        if executor == "iterative":
            ex = processor.IterativeExecutor()
        elif executor == "futures":
            ex = processor.FuturesExecutor(workers=2)
        else:  # a distributed LocalCluster of 2 worker processes
            ex = processor.DaskExecutor(client=request.getfixturevalue("dask_client"), status=False)
        runner = processor.Runner(executor=ex, schema=PFNanoAODSchema, chunksize=50)
        config = InferenceConfig(mode=mode, url=server.url)
        with coffea_quiet():
            results[mode] = runner(fileset, TopTagProcessor(models=MODELS, config=config), treename="Events")
    _same(results["local"], results["remote"])
    assert int(results["local"]["cutflow"]["events"]) == 300
    selected = int(results["local"]["cutflow"]["selected_fatjets"])
    for m in MODELS:  # the mode actually used, counted per jet (and per scoring call) on the workers
        remote = {k: int(v) for k, v in results["remote"]["inference"][m].items()}
        local = {k: int(v) for k, v in results["local"]["inference"][m].items()}
        assert remote["remote_jets"] == selected and remote["local_jets"] == 0 and remote["calls"] >= 6
        assert local["remote_jets"] == 0 and local["local_jets"] == selected
        assert remote["fallback_calls"] == remote["fallback_jets"] == remote["retried_calls"] == 0
    tagged = {m: int(results["local"]["cutflow"][f"tagged_{m}"]) for m in MODELS}
    assert all(0 < t < int(results["local"]["cutflow"]["selected_fatjets"]) for t in tagged.values())


@pytest.mark.triton
@pytest.mark.slow
def test_one_scorer_per_process_reused_across_chunks(server, generated, coffea_quiet):
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema

    config = InferenceConfig(mode="remote", url=server.url, timeout_s=30)
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=PFNanoAODSchema, chunksize=30)
    with coffea_quiet():
        runner(
            {"t": {"files": {str(generated["ttbar"]): "Events"}}},
            TopTagProcessor(models=("bdt",), config=config),
            treename="Events",
        )
    mine = [s for key, s in SCORERS.items() if key == ("bdt", config.cache_key())]
    assert len(mine) == 1 and mine[0].stats["remote_calls"] == 5  # 150 events in 5 chunks, one Scorer


@pytest.mark.triton
@pytest.mark.slow
def test_dask_graph_is_built_without_the_server(server, generated, open_events, free_port):
    import dask

    port = free_port
    closed = InferenceConfig(mode="remote", url=f"grpc://127.0.0.1:{port}", timeout_s=5, session_timeout_s=1)
    events = open_events(generated["ttbar"], mode="dask", steps=[[0, 75], [75, 150]])
    graph = TopTagProcessor(models=MODELS, config=closed).process(events)  # no server: must not raise
    with pytest.raises(hepinfer.ServerUnavailable, match=str(port)):
        dask.compute(graph)
    remote = TopTagProcessor(models=MODELS, config=closed.replace(url=server.url)).process(events)
    (got,) = dask.compute(remote)
    _same(got, TopTagProcessor(models=MODELS).process(open_events(generated["ttbar"])))


@pytest.mark.triton
@pytest.mark.slow
def test_pipelined_pieces_score_every_jet_once_in_order(server, generated, open_events):
    """Remote mode with pieces of 7 jets (many requests in flight from one chunk) gives the same
    per-jet scores, in the same jagged layout, as one call per model; and the same histograms."""
    events = open_events(generated["ttbar"], "PFNanoAODSchema", "virtual")
    config = InferenceConfig(mode="remote", url=server.url)
    piped = TopTagProcessor(models=MODELS, config=config, piece_jets=7)
    plain = TopTagProcessor(models=MODELS, config=config, pipeline=False)
    from hepinfer.coffea import constituents_of

    fat = events.FatJet
    subsets = {m: (fat, constituents_of(events, fat)) for m in MODELS}
    got = piped._tag_all(subsets, is_dask=False)
    want = plain._tag_all(subsets, is_dask=False)
    for m in MODELS:
        (tags, reports), (whole, one) = got[m], want[m]
        assert ak.to_list(ak.num(tags, axis=1)) == ak.to_list(ak.num(fat, axis=1))
        assert ak.to_list(tags) == ak.to_list(whole)
        assert len(reports) > 3 and len(one) == 1 and all(r.where == "remote" for r in reports)
    _same(piped.process(events), plain.process(events))


def test_pieces_cover_every_event_once():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from hepinfer.analysis.processor import _pieces

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(0, 9), max_size=60), st.integers(1, 20))
    def check(counts, piece_jets):
        jets = ak.unflatten(ak.Array([{"pt": 1.0}] * sum(counts)), counts) if counts else ak.Array([[{"pt": 1.0}]])[:0]
        cuts = _pieces(jets, piece_jets)
        assert cuts[0].start == 0 and cuts[-1].stop == len(counts)
        assert all(a.stop == b.start and a.stop > a.start for a, b in zip(cuts, cuts[1:]))
        for c in cuts:  # a piece holds more than piece_jets jets only when it is a single event
            assert sum(counts[c]) <= piece_jets or c.stop - c.start == 1

    check()


@pytest.mark.triton
def test_every_class_comes_from_one_scoring_call(tiny_onnx, tmp_path, open_events):
    """A 3-class user model on the embedded server: ``scores()`` (and ``score="all"``) gives a record of
    every class per jet from one remote call, each field equal to that class's own tagger, eager and
    in dask mode; the default stays one class."""
    from pathlib import Path

    from hepinfer.models import ModelSpec, TensorSpec

    real = Path(__file__).resolve().parents[3] / "shared" / "realfiles" / "nano_tt_v12.root"
    if not real.is_file():
        pytest.skip(f"the real CMS file {real} is not there")
    classes = ("qcd", "top", "w")
    spec = ModelSpec(
        name="tagger3",
        inputs=(TensorSpec("input__0", "float32", (9,)),),
        outputs=(TensorSpec("softmax", "float32", (3,)),),
        classes=classes,
        max_batch_size=512,
        engine="onnxruntime",
        artefact_file=tiny_onnx(tmp_path / "tagger3.onnx", n_in=9, n_out=3, seed=4),
        builder="bdt_nanoaod",  # the nine FatJet variables of standard NanoAOD
    )
    fat = open_events(real, "NanoAODSchema").FatJet
    with hepinfer.serve([spec]) as srv:
        hepinfer.SPECS.unregister(spec.name)  # served; the taggers take the spec itself
        config = InferenceConfig(mode="remote", url=srv.url)
        tagger = JetTagger(spec, config)
        calls = tagger.scorer.stats["remote_calls"]
        every = tagger.scores(fat, None)
        assert tagger.scorer.stats["remote_calls"] == calls + 1
        assert every.fields == list(classes) and ak.to_list(ak.num(every, axis=1)) == ak.to_list(ak.num(fat, axis=1))
        assert np.allclose(ak.flatten(every.qcd + every.top + every.w), 1, atol=1e-6)
        for name in classes:
            one = JetTagger(spec, config, score=name)(fat, None)
            assert str(one.type) == str(every[name].type) and ak.to_list(one) == ak.to_list(every[name])
        assert ak.to_list(tagger(fat, None)) == ak.to_list(every.top)  # the default: P(top) alone
        assert ak.to_list(JetTagger(spec, config, score="all")(fat, None)) == ak.to_list(every)
        events = open_events(real, "NanoAODSchema", "dask", steps=[[0, 100], [100, 200]])
        graph = JetTagger(spec, config, score="all")(events.FatJet, None)
        assert graph.fields == list(classes)
        assert ak.to_list(graph.compute(scheduler="sync")) == ak.to_list(every)
