"""A model's validity domain and its performance per pT bin: the figures per bin against an independent
computation, bins with too few jets, the model card's sections, ``hepinfer models list`` and the
domain in TOML declarations."""

import dataclasses
import json

import awkward as ak
import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from hepinfer import ConfigError, get_spec
from hepinfer.ml.training import roc as metrics
from hepinfer.models import TAGGER_DOMAIN, Domain
from hepinfer.models.declare import load_toml, write_toml


def _sample(n=6000, seed=4):
    """Labels, scores and jet pT: top jets score higher, less so at high pT; a few jets below the first bin."""
    rng = np.random.default_rng(seed)
    pt = rng.uniform(200, 2500, n)
    labels = rng.integers(0, 2, n)
    scores = 1 / (1 + np.exp(-(rng.normal(size=n) + labels * (3.0 - pt / 1500))))
    return labels, scores, pt


def _in(pt, lo, hi, last=False):
    return (pt >= lo) & ((pt <= hi) if last else (pt < hi))


def test_per_bin_figures_match_an_independent_computation():
    labels, scores, pt = _sample()
    points = metrics.working_points(labels, scores)
    bins = metrics.per_pt_bin(labels, scores, pt, working_points=points, bootstrap=30)
    assert [row["pt"] for row in bins] == [[250, 400], [400, 600], [600, 1000], [1000, 2500]]
    edges = metrics.PT_BINS
    for i, row in enumerate(bins):
        inside = _in(pt, edges[i], edges[i + 1], last=i == len(bins) - 1)
        top, qcd = scores[inside & (labels == 1)], scores[inside & (labels == 0)]
        assert row["jets"] == {"top": len(top), "qcd": len(qcd)}
        u = mannwhitneyu(top, qcd).statistic  # P(top score > QCD score), ties counted half
        assert row["auc"] == pytest.approx(u / (len(top) * len(qcd)), abs=1e-12)
        assert 0 < row["auc_error"] < 0.05 and "note" not in row
        # 1/eps_B at eps_S = 50 %: the QCD jets above the median top score, as near as the interpolation allows
        passing = np.mean(qcd > np.median(top))
        assert 1 / row["rejection_at_50"] == pytest.approx(passing, abs=2 / len(qcd))
        for name, wp in points.items():
            assert row["working_points"][name]["signal_efficiency"] == np.mean(top > wp["threshold"])
            assert row["working_points"][name]["mistag_rate"] == np.mean(qcd > wp["threshold"])
    assert sum(r["jets"]["top"] + r["jets"]["qcd"] for r in bins) == np.sum(pt >= 250)  # 2500 is in the last bin
    assert bins[0]["auc"] > bins[-1]["auc"]  # the sample's tagger weakens with pT, and the bins show it


def test_a_bin_with_one_class_has_null_figures_and_says_so():
    labels = np.array([1] * 30 + [0] * 30 + [1] * 30)
    scores = np.r_[np.linspace(0.5, 1, 30), np.linspace(0, 0.6, 30), np.linspace(0.4, 1, 30)]
    pt = np.r_[np.full(60, 300.0), np.full(30, 700.0)]  # 250-400: both classes; 600-1000: top only
    points = metrics.working_points(labels, scores)
    bins = metrics.per_pt_bin(labels, scores, pt, working_points=points, bootstrap=0)
    full, empty, top_only = bins[0], bins[1], bins[2]
    assert full["auc"] is not None and full["auc_error"] is None and "note" not in full
    for row in (empty, top_only):
        assert row["auc"] is None and row["rejection_at_30"] is None and row["rejection_at_50"] is None
    assert top_only["note"] == "0 QCD jets (fewer than 10): no figures"
    assert empty["note"] == "0 top jets and 0 QCD jets (fewer than 10): no figures"
    wp = top_only["working_points"]["top@eff50%"]
    assert wp["mistag_rate"] is None and wp["signal_efficiency"] == np.mean(
        scores[60:] > points["top@eff50%"]["threshold"]
    )
    result = {**metrics.summary(labels, scores, bootstrap=0), "per_pt_bin": bins}
    text = metrics.describe("m", result)
    assert "600-1000" in text and "0 QCD jets (fewer than 10): no figures" in text
    assert metrics.rejection(top_only, 50) == "–" and metrics.auc_text(top_only) == "–"
    json.dumps(result, allow_nan=False)  # nulls, never NaN, in manifest.json and --json


class _Jets:
    """What evaluate() reads of the loaded sample (the dataset loader and the scoring stubbed)."""

    def __init__(self, labels, pt):
        self.labels, self.jets, self.files = labels, ak.Array({"pt": pt}), []

    def counts(self):
        return {"top": int(np.sum(self.labels == 1)), "qcd": int(np.sum(self.labels == 0))}


def test_evaluate_records_figures_per_pt_bin_in_the_card(monkeypatch, tmp_path):
    from hepinfer.ml.training import evaluation, plots

    labels, scores, pt = _sample(2000)
    monkeypatch.setattr(evaluation, "load_jets", lambda *a, **k: _Jets(labels, pt))
    monkeypatch.setattr(evaluation, "build_chunked", lambda *a, **k: {})
    monkeypatch.setattr(evaluation, "score", lambda *a, **k: scores)
    result = evaluation.evaluate("bdt", ["x.root"], plots_dir=tmp_path, bootstrap=10)
    assert [row["pt"] for row in result["per_pt_bin"]] == [list(b) for b in metrics.pt_bin_edges()]
    assert result["plots"]["pt_bins"] == plots.PT_BINS
    assert (tmp_path / plots.PT_BINS).read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "manifest.json").write_text(json.dumps({"model": "bdt", "sample": {}}))
    manifest = evaluation.record("bdt", tmp_path, result)
    assert manifest["metrics"][evaluation.TEST_SAMPLE]["per_pt_bin"] == result["per_pt_bin"]
    card = (tmp_path / "model_card.md").read_text()
    assert "## Performance per pT bin" in card and "| 1000-2500 |" in card
    assert "### Working points per pT bin" in card and "| `top@1%` |" in card and "250-400 GeV |" in card
    assert "![AUC and background rejection per pT bin](pt_bins.png)" in card


def _card(tmp_path, spec, metrics_=None):
    from hepinfer.ml.training.cards import write_card

    sample = {"files": ["a.root", "b.root"], "jets": {"top": 12, "qcd": 34}, "pt_range": [201.5, 2480.0]}
    manifest = {"sample": {**sample, "weights": "flat pT per class"}, "metrics": metrics_ or {}}
    return write_card(tmp_path / "model_card.md", spec, manifest).read_text()


def test_every_card_states_the_domain_or_that_none_is_declared(tmp_path):
    card = _card(tmp_path, get_spec("bdt"))
    domain = card[card.index("## Intended use and limits") : card.index("## Training sample")]
    assert "pT 200-2500 GeV, |eta| < 2.4" in domain and TAGGER_DOMAIN.detector in domain
    assert all(item in domain for item in TAGGER_DOMAIN.not_for)
    sample = card[card.index("## Training sample") : card.index("## Training\n")]
    assert "12 top and 34 QCD jets from 2 files" in sample and "550" not in sample
    assert "pT spans 201.5-2480 GeV" in sample and "Training weights: flat pT per class." in sample
    assert "Not measured yet" in card[card.index("## Performance per pT bin") :]
    bare = _card(tmp_path, dataclasses.replace(get_spec("bdt"), domain=None))
    assert "No validity domain is declared for this model" in bare


def test_models_list_shows_the_domain(server_only_spec):
    from hepinfer.cli.artefacts import _describe

    assert _describe(get_spec("particlenet")).splitlines()[-1] == "  domain: pT 200-2500 GeV, |eta| < 2.4"
    assert _describe(server_only_spec).splitlines()[-1] == "  domain: none declared"


def test_domain_round_trips_through_toml(tmp_path, server_only_spec):
    spec = dataclasses.replace(
        server_only_spec,
        source="",
        domain=Domain(pt=(300, 1200), eta_max=2.0, sample='Herwig "7"', detector="Delphes", not_for=("W jets",)),
    )
    path = write_toml(spec, tmp_path / "m.toml")
    assert "[model.elsewhere.domain]" in path.read_text()
    (again,) = load_toml(path)
    assert again == spec and again.domain.pt == (300.0, 1200.0)
    bare = write_toml(dataclasses.replace(spec, domain=None), tmp_path / "bare.toml")
    assert "domain" not in bare.read_text() and load_toml(bare)[0].domain is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("pt = [300]\neta_max = 2", "domain.pt: expected [min, max] in GeV"),
        ("pt = [900, 300]\neta_max = 2", "domain pt must be [min, max] GeV"),
        ("pt = [300, 900]", "domain.eta_max: expected a number"),
        ("pt = [300, 900]\neta_max = 2\nnot_for = [1]", "domain.not_for: expected a list of strings"),
        ("pt = [300, 900]\neta_max = 2\nrapidity = 1", "domain.rapidity: unknown key"),
    ],
)
def test_a_bad_domain_names_the_key(tmp_path, server_only_spec, table, message):
    path = write_toml(server_only_spec, tmp_path / "m.toml")
    path.write_text(path.read_text() + f"\n[model.elsewhere.domain]\n{table}\n")
    with pytest.raises(ConfigError, match="model 'elsewhere'") as info:
        load_toml(path)
    assert message in str(info.value)
