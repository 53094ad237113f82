"""Real CMS inputs: PFNano without FatJet_nConstituents, the same as RNTuple, standard NanoAOD
without PF candidates; the job's per-file model choice, the NanoAOD BDT, CMS's own tagger scores."""

import json

import awkward as ak
import numpy as np
import pytest
import uproot
from hypothesis import given, settings
from hypothesis import strategies as st

from hepinfer import InferenceConfig, InputMismatch
from hepinfer.analysis.job import JobSettings, check_inputs, inspect_inputs, required_branches, run_job, same_result
from hepinfer.analysis.job.inputs import InputScan, select_models
from hepinfer.features.nanoaod_bdt_builder import nanoaod_bdt_inputs
from hepinfer.models.resolved import resolve

# (layout, format) -> the models a file of that layout can feed, and those skipped
VARIANTS = {
    ("pfnano-nocount", "ttree"): ("particlenet", "bdt", "bdt_nanoaod", "resnet"),
    ("pfnano-nocount", "rntuple"): ("particlenet", "bdt", "bdt_nanoaod", "resnet"),
    ("nanoaod", "ttree"): ("bdt_nanoaod",),
    ("nanoaod", "rntuple"): ("bdt_nanoaod",),
}
SHIPPED = ("particlenet", "bdt", "bdt_nanoaod", "resnet")  # what automatic mode chooses from
IDS = [f"{layout}-{fmt}" for layout, fmt in VARIANTS]
# every test but the quick ones at the end runs the generator (slow); those with the server: triton


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """60 ttbar + 60 QCD events (seeds 41 / 42, never used for training) in every variant: the same
    events in each, so every variant selects the same jets."""
    from hepinfer.ml.generation.generate import generate

    out = tmp_path_factory.mktemp("layouts")
    files = {}
    for layout, fmt in VARIANTS:
        files[layout, fmt] = tuple(
            str(generate(p, 60, seed, out / f"{p}_{layout}_{fmt}.root", progress=False, layout=layout, format=fmt))
            for p, seed in (("ttbar", 41), ("qcd", 42))
        )
    return files


@pytest.fixture(scope="module")
def runs(layouts, server):
    """run_job of every variant (automatic model choice), local and remote (the real server)."""
    out = {}
    for variant, files in layouts.items():
        for mode in ("local", "remote"):
            settings = JobSettings(
                inputs=files, config=InferenceConfig(mode=mode, url=server.url), executor="iterative", chunksize=50
            )
            out[variant, mode] = run_job(settings)
    return out


@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_job_scores_every_jet_with_every_model_the_files_feed(runs, variant):
    local, remote = runs[variant, "local"], runs[variant, "remote"]
    assert same_result(
        {"cutflow": local.summary["cutflow"], "hists": local.hists},
        {"cutflow": remote.summary["cutflow"], "hists": remote.hists},
    )
    s = remote.summary
    models = VARIANTS[variant]
    selected = s["fatjets_selected"]
    assert s["events"] == 120 and selected > 20
    assert tuple(s["models"]) == models and s["models_requested"] == "auto"
    assert s["fatjets_scored"] == {m: selected for m in models}
    assert s["mode_used"] == {m: "remote" for m in models}
    assert set(s["skipped_models"]) == set(SHIPPED) - set(models)
    for m, reason in s["skipped_models"].items():  # the files and the branches are named
        assert "ttbar_nanoaod" in reason and "PFCands_pt" in reason, (m, reason)
    assert remote.hists["score"].values().sum() == len(models) * selected
    text = str(remote)
    assert all(f"SKIPPED model {m}:" in text for m in s["skipped_models"])


@pytest.mark.triton
@pytest.mark.slow
def test_every_variant_gives_the_same_scores(runs):
    """Same events in every layout and format: the NanoAOD BDT fills the same histograms everywhere,
    and the PF-candidate models the same on the TTree and the RNTuple without nConstituents."""
    base = runs[("pfnano-nocount", "ttree"), "local"]
    for variant in VARIANTS:
        other = runs[variant, "local"]
        assert other.summary["fatjets_selected"] == base.summary["fatjets_selected"]
        for name in ("score", "msoftdrop"):
            for m in other.summary["models"]:
                assert np.array_equal(base.hists[name][{"model": m}].values(), other.hists[name][{"model": m}].values())
    rn = runs[("pfnano-nocount", "rntuple"), "remote"]
    assert same_result(
        {"cutflow": base.summary["cutflow"], "hists": base.hists}, {"cutflow": rn.summary["cutflow"], "hists": rn.hists}
    )


@pytest.mark.triton
@pytest.mark.slow
def test_cli_run_on_nanoaod_lists_skipped_models_and_checks_local(layouts, server, tmp_path, capsys):
    from hepinfer.cli import main

    out = tmp_path / "summary.json"
    args = ["run", "--input", *layouts["nanoaod", "ttree"], "--mode", "remote", "--url", server.url]
    assert main([*args, "--executor", "iterative", "--check-local", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SKIPPED model particlenet:" in printed and "SKIPPED model bdt:" in printed
    assert "IDENTICAL" in printed and "| bdt_nanoaod | trained |" in printed
    summary = json.loads(out.read_text())
    assert summary["models_requested"] == "auto" and set(summary["skipped_models"]) == {"particlenet", "bdt", "resnet"}
    assert summary["local_check"]["identical"] is True


@pytest.mark.slow
def test_a_named_model_that_cannot_run_fails_naming_file_model_and_branches(layouts):
    files = layouts["nanoaod", "ttree"]
    with pytest.raises(
        InputMismatch, match=r"ttbar_nanoaod_ttree\.root.*lacks the branches \[.*PFCands_pt.*needed by bdt"
    ):
        run_job(
            JobSettings(
                inputs=files, models=("bdt_nanoaod", "bdt"), config=InferenceConfig(mode="local"), executor="iterative"
            )
        )
    # named models that the files feed run; mixed layouts: only the model every file feeds
    mixed = (layouts["nanoaod", "rntuple"][0], layouts["pfnano-nocount", "ttree"][1])
    result = run_job(JobSettings(inputs=mixed, config=InferenceConfig(mode="local"), executor="iterative"))
    assert tuple(result.summary["models"]) == ("bdt_nanoaod",)
    assert "ttbar_nanoaod_rntuple.root lacks" in result.summary["skipped_models"]["bdt"]
    assert "qcd_" not in result.summary["skipped_models"]["bdt"]


@pytest.mark.slow
def test_input_checks_on_rntuple(layouts, tmp_path):
    """The field check works on RNTuple (CMS's layout: FatJet.pt counts as FatJet_pt); the
    basket-extent check is TTree-only, a truncated RNTuple fails to open (its footer is gone)."""
    rn = layouts["pfnano-nocount", "rntuple"]
    assert check_inputs(rn, ("particlenet", "bdt", "bdt_nanoaod")) == 120
    assert inspect_inputs(rn, ("bdt",), deep=True)[0] == 120
    with pytest.raises(InputMismatch, match=r"ttbar_nanoaod_rntuple\.root.*PFCands_d0.*particlenet"):
        check_inputs(layouts["nanoaod", "rntuple"], ("particlenet",))
    from pathlib import Path

    data = Path(rn[0]).read_bytes()
    cut = tmp_path / "cut.root"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputMismatch, match=r"cut\.root: cannot be read"):
        check_inputs([str(cut)], ("bdt",))


@pytest.mark.slow
@pytest.mark.parametrize("schema", ["NanoAODSchema", "PFNanoAODSchema"])
def test_tagger_eager_and_dask_without_nconstituents(layouts, open_events, schema, shipped_artefacts):
    """No FatJet_nConstituents: coffea's FatJet.constituents is unavailable, the link table gives the
    candidates, in eager and dask mode alike; the RNTuple copy gives the same scores eagerly."""
    import dask

    from hepinfer.coffea import JetTagger, constituents_of

    path = layouts["pfnano-nocount", "ttree"][0]
    eager = open_events(path, schema)
    lazy = open_events(path, schema, mode="dask", steps=[[0, 30], [30, 60]])
    rntuple = open_events(layouts["pfnano-nocount", "rntuple"][0], schema)
    config = InferenceConfig(mode="local")
    for model in SHIPPED:
        tagger = JetTagger(model, config)
        want = tagger(eager.FatJet, constituents_of(eager))
        (got,) = dask.compute(tagger(lazy.FatJet, constituents_of(lazy)))
        assert ak.to_list(got) == ak.to_list(want), model
        assert ak.to_list(tagger(rntuple.FatJet, constituents_of(rntuple))) == ak.to_list(want), model
    assert ak.sum(ak.num(want, axis=1)) > 60


@pytest.mark.slow
def test_nanoaod_events_have_no_constituents(layouts, open_events, shipped_artefacts):
    from hepinfer.coffea import JetTagger, constituents_of

    events = open_events(layouts["nanoaod", "ttree"][0], "NanoAODSchema")
    assert constituents_of(events) is None
    scores = JetTagger("bdt_nanoaod", InferenceConfig(mode="local"))(events.FatJet, None)
    assert ak.all(ak.num(scores, axis=1) == ak.num(events.FatJet, axis=1))
    with pytest.raises(InputMismatch, match="no PF candidates"):
        JetTagger("bdt", InferenceConfig(mode="local"))(events.FatJet, None)


def _with_cms_score(src, dst):
    """A copy of a PFNano file with a ``FatJet_particleNet_TvsQCD`` branch.  The generator has no
    CMS tagger, so the branch holds the shipped BDT's P(top) for each fat jet: a stand-in that lets
    the test compare the CMS-score histogram with hepinfer's own BDT histogram bin for bin."""
    from hepinfer.coffea import JetTagger, constituents_of
    from hepinfer.features.common import link_constituents
    from hepinfer.ml.generation.nanoaod import write_events

    tree = uproot.open(src)["Events"]
    arrays = tree.arrays()
    names = tree.keys()
    groups = ("FatJet", "Jet", "PFCands", "FatJetPFCands", "GenPart")
    branches = {k: arrays[k] for k in names if k.split("_")[0] not in groups and not k.startswith("n")}
    for c in groups:
        branches[c] = ak.zip({k[len(c) + 1 :]: arrays[k] for k in names if k.startswith(c + "_")})
    scores = JetTagger("bdt", InferenceConfig(mode="local"))(branches["FatJet"], link_constituents(ak.Array(branches)))
    assert constituents_of(ak.Array(branches)) is not None
    fat = branches["FatJet"]
    branches["FatJet"] = ak.zip({**{f: fat[f] for f in fat.fields}, "particleNet_TvsQCD": scores})
    write_events(dst, branches)
    return str(dst)


@pytest.mark.slow
def test_cms_tagger_scores_are_histogrammed(layouts, tmp_path, shipped_artefacts):
    ttbar, qcd = layouts["pfnano-nocount", "ttree"]
    files = (_with_cms_score(ttbar, tmp_path / "ttbar_cms.root"), qcd)
    result = run_job(
        JobSettings(inputs=files, config=InferenceConfig(mode="local"), executor="iterative"),
        output=tmp_path / "s.json",
        plots=tmp_path / "p",
    )
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["cms_taggers"] == ["particleNet_TvsQCD"]
    assert (
        str(tmp_path / "p" / "score_cms.png") in summary["plots"] and (tmp_path / "p" / "score_cms.png").stat().st_size
    )
    assert "CMS tagger scores in the files (histogram cms_score): particleNet_TvsQCD" in str(result)
    cms = result.hists["cms_score"]
    assert [ax.name for ax in cms.axes] == ["tagger", "score"]
    assert cms[{"tagger": "particleNetWithMass_TvsQCD"}].values().sum() == 0
    # the stand-in branch is the BDT's score, filled for the ttbar file's selected jets
    from hepinfer.analysis.processor import TopTagProcessor

    assert "cms_score" in TopTagProcessor(models=("bdt",))._hists(dask=False)
    only_ttbar = run_job(
        JobSettings(inputs=files[:1], models=("bdt",), config=InferenceConfig(mode="local"), executor="iterative")
    )
    assert np.array_equal(
        cms[{"tagger": "particleNet_TvsQCD"}].values(), only_ttbar.hists["score"][{"model": "bdt"}].values()
    )
    assert summary["histograms"]["cms_score"]["axes"][0]["categories"][0] == "particleNet_TvsQCD"
    # the stand-in is the BDT's own score: ranked alike on every ttbar jet (the QCD file has no such branch)
    same = summary["rank_correlation"]["bdt"]["particleNet_TvsQCD"]
    assert same["spearman"] == pytest.approx(1.0) and same["jets"] == only_ttbar.summary["fatjets_scored"]["bdt"]


# ------------------------------------------------------------------------------------------------
# quick: no files


def test_required_branches_follow_what_each_model_reads():
    nano = required_branches(["bdt_nanoaod"])
    assert "FatJet_tau4" in nano and "FatJet_n3b1" not in nano  # unset for many CMS jets: not read
    assert not any(b.startswith(("PFCands", "FatJetPFCands", "nPFCands")) for b in nano)
    for schema in ("pfnano", "nanoaod"):  # the link table replaces FatJet_nConstituents
        assert "FatJet_nConstituents" not in required_branches(["particlenet", "bdt"], schema)
    assert {"FatJetPFCands_jetIdx", "PFCands_d0"} <= set(required_branches(["particlenet"]))


def test_automatic_choice_keeps_the_models_every_file_feeds():
    pfnano = frozenset(required_branches(SHIPPED))
    nano = frozenset(required_branches(["bdt_nanoaod"]))
    scan = InputScan(events=3, branches={"/d/a.root": pfnano, "/d/b.root": nano, "/d/c.root": nano})
    chosen, skipped = select_models(scan, SHIPPED)
    assert chosen == ("bdt_nanoaod",) and set(skipped) == {"particlenet", "bdt", "resnet"}
    assert skipped["bdt"].startswith("b.root, c.root lack the branches ['nFatJetPFCands'")
    assert "standard NanoAOD" in skipped["bdt"] and "a.root" not in skipped["bdt"]
    assert select_models(InputScan(branches={"a": pfnano}), SHIPPED) == (SHIPPED, {})
    assert JobSettings(inputs=("x.root",)).models is None  # automatic unless named


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=8),
    st.lists(st.sampled_from([0.0, 1e-3, 0.5, 170.0, 600.0, -1.0]), min_size=10, max_size=10),
)
def test_nanoaod_bdt_rows_are_finite_for_any_jets(counts, values):
    """Zero denominators (tau1 = 0, pt = 0, ...) give 0, never NaN or inf; one row per jet."""
    fields = ("pt", "eta", "mass", "msoftdrop", "tau1", "tau2", "tau3", "tau4", "n2b1", "n3b1")
    n = sum(counts)
    jets = ak.zip(
        {
            f: ak.unflatten(np.roll(np.resize(np.asarray(values, np.float32), n), k), counts)
            for k, f in enumerate(fields)
        }
    )
    x = nanoaod_bdt_inputs(jets)["input__0"]
    assert x.shape == (n, 9) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert np.array_equal(resolve("bdt_nanoaod").build_inputs(jets, None)["input__0"], x)
