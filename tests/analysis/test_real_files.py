"""Real CMS files (``../shared/realfiles``, written by CMS software, not by hepinfer): NanoAOD v12 as a
TTree, a dimuon NanoAOD TTree and the same events as RNTuple, as ROOT writes it.  None holds PF
candidates, so ``bdt_nanoaod`` (FatJet branches alone) is the model they feed.  The input scan, the
job's selection from the models' domains, the jets outside a domain, the rank correlation with CMS's
stored tagger, local against remote, RNTuple against TTree, and the processor in dask mode."""

import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepinfer import InferenceConfig, Scorer
from hepinfer.analysis.cms_compare import pair_array, rank_correlations, spearman
from hepinfer.analysis.job import JobSettings, check_inputs, run_job, same_result
from hepinfer.analysis.job.inputs import scan_inputs, select_models
from hepinfer.analysis.job.settings import automatic_models
from hepinfer.analysis.selection import selection_for
from hepinfer.errors import ConfigError
from hepinfer.features.nanoaod_bdt_builder import JET_FIELDS, nanoaod_bdt_inputs
from hepinfer.models import TAGGER_DOMAIN, Domain

REAL = Path(__file__).resolve().parents[3] / "shared" / "realfiles"
# file -> (events, fat jets in the shipped taggers' domain: pT 200-2500 GeV, |eta| < 2.4, CMS tagger stored)
EXPECTED = {
    "nano_tt_v12.root": (200, 75, "particleNetWithMass_TvsQCD"),
    "nano_dimuon.root": (40, 6, "deepTag_TvsQCD"),
    "nano_dimuon_rntuple.root": (40, 6, "deepTag_TvsQCD"),
}
MODEL = "bdt_nanoaod"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"the real CMS files are not in {REAL}")


def _path(name: str) -> str:
    return str(REAL / name)


def _jets(name: str, *extra: str) -> ak.Array:
    """The file's fat jets (flat, every event), read with uproot alone: the builder's fields and ``extra``."""
    with uproot.open(_path(name)) as f:
        tree = f["Events"]
        fields = sorted({*JET_FIELDS, "pt", "eta", *extra})
        return ak.zip({k: ak.flatten(tree[f"FatJet_{k}"].array()) for k in fields})


# -- the input scan and the selection (quick) ---------------------------------------------------------
def test_the_input_scan_reads_every_real_file_as_cms_writes_it():
    for name, (events, _, tagger) in EXPECTED.items():
        assert check_inputs([_path(name)], (MODEL,)) == events, name
        scan = scan_inputs([_path(name)], automatic_models(), deep=True)  # deep: every needed field read once
        assert not scan.bad and scan.events == events
        names = scan.branches[_path(name)]
        assert {"nFatJet", "FatJet_pt", "FatJet_msoftdrop", f"FatJet_{tagger}"} <= names, name
        assert not any(n.startswith("_") or n == "" for n in names)  # ROOT's _collectionN fields add no name
        chosen, skipped = select_models(scan, automatic_models())
        assert chosen == (MODEL,) and "no PF candidates" in skipped["particlenet"]


def test_the_default_selection_is_the_union_of_the_domains():
    narrow = Domain(pt=(300.0, 900.0), eta_max=2.0)
    sel = selection_for([TAGGER_DOMAIN, narrow])
    assert (sel.pt_min, sel.pt_max, sel.eta_max) == (200.0, 2500.0, 2.4) and sel.source == "the models' domains"
    assert sel.describe() == "pT 200-2500 GeV, |eta| < 2.4"
    given = selection_for([TAGGER_DOMAIN], pt_min=150, eta_max=3)  # each option replaces one bound
    assert (given.pt_min, given.pt_max, given.eta_max) == (150.0, 2500.0, 3.0)
    assert given.source == "the models' domains and options"
    anything = selection_for([TAGGER_DOMAIN, None])  # a model without a domain: no cut
    assert (anything.pt_min, anything.pt_max, anything.eta_max) == (0.0, math.inf, math.inf)
    assert anything.describe() == "every fat jet" and anything.as_dict()["pt_max"] is None
    with pytest.raises(ConfigError, match="pT range is empty"):
        selection_for([TAGGER_DOMAIN], pt_max=150)
    with pytest.raises(ConfigError, match="eta_max"):
        JobSettings(inputs=(_path("nano_dimuon.root"),), eta_max=0)
    with pytest.raises(ConfigError, match="below pt_max"):
        JobSettings(inputs=(_path("nano_dimuon.root"),), pt_min=600, pt_max=300)


def test_spearman_agrees_with_scipy_ties_included():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    x = rng.integers(0, 12, 300).astype(float)  # many ties
    y = x + rng.normal(0, 4, 300)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert spearman([1.0], [2.0]) is None and spearman([1, 2, 3], [5, 5, 5]) is None
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


# -- jobs on the real files ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    """run_job of each real file, local inference, automatic model choice, default selection."""
    out = tmp_path_factory.mktemp("real")
    runs = {}
    for name in EXPECTED:
        settings = JobSettings(inputs=(_path(name),), config=InferenceConfig(mode="local"), executor="iterative")
        runs[name] = run_job(settings, output=out / name / "summary.json", plots=out / name / "plots")
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_every_fat_jet_in_the_domain_is_scored(local_runs, name):
    events, in_domain, tagger = EXPECTED[name]
    s = local_runs[name].summary
    assert tuple(s["models"]) == (MODEL,) and s["events"] == events
    assert (
        s["selection"]["text"] == "pT 200-2500 GeV, |eta| < 2.4" and s["selection"]["source"] == "the models' domains"
    )
    assert s["fatjets_selected"] == s["fatjets_scored"][MODEL] == in_domain
    assert s["outside_domain"] == {MODEL: 0}
    rows = s["by_pt_bin"]
    assert [r["bin"] for r in rows] == ["200-250", "250-400", "400-600", "600-1000", "1000-2500"]
    assert sum(r["selected"] for r in rows) == sum(r["scored"][MODEL] for r in rows) == in_domain
    assert sum(r["tagged"][MODEL] for r in rows) == s["tagged"][MODEL]
    corr = s["rank_correlation"][MODEL][tagger]
    assert corr["jets"] == in_domain and -1 <= corr["spearman"] <= 1
    assert f"rank correlation (Spearman) of {MODEL} with CMS {tagger}" in str(local_runs[name])
    assert f"score_vs_cms_{MODEL}.png" in {Path(p).name for p in s["plots"]}


@pytest.mark.slow
def test_rank_correlation_equals_an_independent_computation(local_runs):
    """From the file's branches (uproot) and a plain Scorer: scipy's Spearman over the jets in the
    domain with a CMS score, against the summary's."""
    stats = pytest.importorskip("scipy.stats")
    cms = "particleNetWithMass_TvsQCD"
    jets = _jets("nano_tt_v12.root", cms)
    jets = jets[np.asarray(TAGGER_DOMAIN.contains(jets.pt, jets.eta))]
    scores = Scorer(MODEL, config=InferenceConfig(mode="local")).scores(nanoaod_bdt_inputs(jets))["top"]
    stored = ak.to_numpy(jets[cms])
    valid = (stored >= 0) & (stored <= 1)  # CMS writes -10 for a jet it did not score
    want = stats.spearmanr(scores[valid], stored[valid]).statistic
    got = local_runs["nano_tt_v12.root"].summary["rank_correlation"][MODEL][cms]
    assert got["jets"] == int(valid.sum()) == 75
    assert got["spearman"] == pytest.approx(want, abs=1e-12)
    assert 0.5 < got["spearman"] <= 1  # the NanoAOD BDT ranks jets much as CMS's ParticleNet does


@pytest.mark.slow
def test_rntuple_gives_the_ttree_scores(local_runs, open_events):
    tree, rntuple = local_runs["nano_dimuon.root"], local_runs["nano_dimuon_rntuple.root"]
    assert same_result(
        {"cutflow": tree.summary["cutflow"], "hists": tree.hists},
        {"cutflow": rntuple.summary["cutflow"], "hists": rntuple.hists},
    )
    from hepinfer.analysis.processor import TopTagProcessor

    proc = TopTagProcessor(models=(MODEL,))
    outs = [proc.process(open_events(_path(n), "NanoAODSchema", "virtual")) for n in EXPECTED if "dimuon" in n]
    per_jet = [pair_array(out["pairs"][MODEL]["deepTag_TvsQCD"]) for out in outs]  # (score, CMS score), event order
    assert len(per_jet[0]) == 6 and np.array_equal(per_jet[0], per_jet[1])


@pytest.mark.slow
def test_jets_outside_the_domain_are_counted_per_model_and_bin(tmp_path, capsys):
    from hepinfer.cli import main

    out = tmp_path / "summary.json"
    name = "nano_tt_v12.root"
    args = ["run", "--input", _path(name), "--mode", "local", "--executor", "iterative", "--output", str(out)]
    assert main([*args, "--pt-min", "150", "--pt-max", "600", "--eta-max", "2.5"]) == 0
    s = json.loads(out.read_text())
    jets = _jets(name)
    pt, eta = ak.to_numpy(jets.pt), np.abs(ak.to_numpy(jets.eta))
    selected = (pt >= 150) & (pt <= 600) & (eta < 2.5)
    inside = selected & np.asarray(TAGGER_DOMAIN.contains(pt, eta))
    assert s["selection"]["text"] == "pT 150-600 GeV, |eta| < 2.5" and s["selection"]["source"] == "options"
    assert s["fatjets_selected"] == selected.sum() and s["fatjets_scored"][MODEL] == inside.sum() == 72
    assert s["outside_domain"][MODEL] == (selected & ~inside).sum() > 0  # below 200 GeV or 2.4 <= |eta| < 2.5
    rows = {r["bin"]: r for r in s["by_pt_bin"]}
    assert list(rows) == ["150-200", "200-250", "250-400", "400-600"]  # edges clipped to the selection
    assert rows["150-200"]["scored"][MODEL] == 0
    assert rows["150-200"]["outside_domain"][MODEL] == (selected & (pt < 200)).sum()
    assert sum(r["outside_domain"][MODEL] for r in rows.values()) == s["outside_domain"][MODEL]
    printed = capsys.readouterr().out
    assert f"| {MODEL} | trained | pT 200-2500 GeV, |eta| < 2.4 | 72 | {s['outside_domain'][MODEL]} |" in printed


@pytest.mark.slow
def test_dask_mode_gives_the_eager_counts_and_correlation(open_events):
    """coffea's dask mode (TTree: it does not open RNTuple files) against virtual events."""
    import dask

    from hepinfer.analysis.processor import TopTagProcessor

    proc = TopTagProcessor(models=(MODEL,), pt_min=150)
    path = _path("nano_tt_v12.root")
    (lazy,) = dask.compute(proc.process(open_events(path, "NanoAODSchema", "dask")))
    eager = proc.process(open_events(path, "NanoAODSchema", "virtual"))
    assert {k: int(v) for k, v in lazy["cutflow"].items()} == {k: int(v) for k, v in eager["cutflow"].items()}
    assert int(eager["cutflow"][f"outside_domain_{MODEL}"]) > 0
    for name, h in eager["hists"].items():
        assert np.array_equal(lazy["hists"][name].values(flow=True), h.values(flow=True)), name
    assert rank_correlations(lazy["pairs"]) == rank_correlations(eager["pairs"])


# -- local and remote ---------------------------------------------------------------------------------
@pytest.mark.triton
@pytest.mark.slow
def test_remote_equals_local_on_every_real_file(server):
    for name, (_, in_domain, _) in EXPECTED.items():
        settings = JobSettings(
            inputs=(_path(name),),
            config=InferenceConfig(mode="remote", url=server.url),
            executor="iterative",
            check_local=True,
        )
        result = run_job(settings)
        s = result.summary
        assert s["fatjets_scored"] == {MODEL: in_domain} and s["mode_used"] == {MODEL: "remote"}, name
        assert s["local_check"]["identical"] is True and s["local_check"]["passed"] is True, name
        assert "IDENTICAL" in str(result)
