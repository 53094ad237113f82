"""Working points: thresholds from scores, their record in the manifests, and the cut the example
processor and ``hepinfer run`` make at a named one."""

import json

import numpy as np
import pytest

from hepinfer import ConfigError
from hepinfer.ml.training import roc as metrics
from hepinfer.models import catalogue, get_spec
from hepinfer.models.resolved import resolve

NAMES = ("top@1%", "top@10%", "top@eff30%", "top@eff50%")


def _sample(n_sig=2000, n_bkg=6000, seed=3, separation=3.0):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n_sig), np.zeros(n_bkg)].astype(int)
    logits = np.r_[rng.normal(separation, 1.0, n_sig), rng.normal(0.0, 1.0, n_bkg)]
    scores = 1 / (1 + np.exp(-logits))
    return labels, scores


def test_working_points_tag_the_fractions_they_are_named_after():
    labels, scores = _sample()
    points = metrics.working_points(labels, scores)
    assert tuple(points) == NAMES == metrics.working_point_names("top")
    sig, bkg = scores[labels == 1], scores[labels == 0]
    for name, target in (("top@1%", 0.01), ("top@10%", 0.10)):
        cut = points[name]["threshold"]
        assert np.mean(bkg > cut) == pytest.approx(target, abs=1 / len(bkg))
        assert points[name]["mistag_rate"] == np.mean(bkg > cut)
        assert points[name]["signal_efficiency"] == np.mean(sig > cut)
    for name, target in (("top@eff30%", 0.30), ("top@eff50%", 0.50)):
        cut = points[name]["threshold"]
        assert np.mean(sig > cut) == pytest.approx(target, abs=1 / len(sig))
    # a tighter mistag rate is a higher threshold and a lower efficiency
    assert points["top@1%"]["threshold"] > points["top@10%"]["threshold"]
    assert points["top@1%"]["signal_efficiency"] < points["top@10%"]["signal_efficiency"]
    # the interpolated figures of the summary agree with the working points' counts
    summary = metrics.summary(labels, scores, bootstrap=0)
    assert summary["efficiency_at_1"] == pytest.approx(points["top@1%"]["signal_efficiency"], abs=0.01)


def test_thresholds_never_sit_on_a_tied_score():
    """Saturated scores (many top jets at exactly 1.0): the threshold lies between distinct values, so
    `score > threshold` tags the tied jets all or none, whichever is nearer the target."""
    values = np.r_[np.ones(400), np.linspace(0.1, 0.9, 600)]
    cut = metrics.threshold_for(values, 0.30)  # 300 wanted: 400 at 1.0 is nearer than 0
    assert cut < 1.0 and np.sum(values > cut) == 400 and not np.any(values == cut)
    cut = metrics.threshold_for(values, 0.50)
    assert np.sum(values > cut) == 500 and not np.any(values == cut)
    assert np.sum(values > metrics.threshold_for(values, 1.0)) == len(values)


def test_auc_uncertainty_and_bounded_rejection():
    labels, scores = _sample(500, 1500, separation=1.5)
    small = metrics.summary(labels, scores, bootstrap=100)
    big = metrics.summary(*_sample(5000, 15000, separation=1.5), bootstrap=100)
    assert 0 < big["auc_error"] < small["auc_error"] < 0.02  # shrinks with the sample
    assert small["rejection_bounded"] == []
    # perfectly separated: every resample has AUC 1, and no background jet passes any cut
    perfect = metrics.summary(np.array([1, 1, 1, 0, 0, 0, 0]), np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1, 0.0]))
    assert perfect["auc"] == 1.0 and perfect["auc_error"] == 0.0
    assert perfect["rejection_at_30"] == 4 and perfect["rejection_bounded"] == ["rejection_at_30", "rejection_at_50"]
    assert "1/eps_B >= 4 at eps_S = 30 %" in metrics.describe("m", perfect)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path))
    return tmp_path


def _write_manifest(model, **fields):
    path = catalogue.manifest_path(get_spec(model))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": model, "weights": "trained", **fields}))


def test_working_point_cut_reads_the_manifest_and_names_what_is_missing(home):
    points = {"top@1%": {"threshold": 0.97}, "top@10%": {"threshold": 0.6}}
    _write_manifest("resnet50", working_points=points)
    assert resolve("resnet50").working_point_cut("top@1%") == 0.97
    with pytest.raises(
        ConfigError, match=r"'resnet50' has no working point 'top@5%'; its working points: top@1%, top@10%"
    ):
        resolve("resnet50").working_point_cut("top@5%")
    with pytest.raises(ConfigError, match=r"cuts on P\(qcd\), but the scores are P\(top\)"):
        resolve("resnet50").working_point_cut("qcd@1%")
    _write_manifest("resnet50")  # trained, never evaluated
    with pytest.raises(ConfigError, match="its manifest records none .*hepinfer evaluate resnet50"):
        resolve("resnet50").working_point_cut("top@1%")


@pytest.mark.parametrize("model", ["particlenet", "resnet", "bdt", "bdt_nanoaod"])
def test_shipped_models_record_their_working_points(model):
    shipped = catalogue.shipped_manifest(get_spec(model))
    assert tuple(shipped["working_points"]) == NAMES
    test = shipped["metrics"]["independent test sample"]
    assert test["working_points"] == shipped["working_points"] and test["auc_error"] > 0
    card = (catalogue.shipped(get_spec(model)).parent / "model_card.md").read_text()
    assert "| `top@1%` | mistag rate 1% |" in card and "![ROC curve](roc.png)" in card


def test_an_older_cached_manifest_of_the_shipped_artefact_reads_the_shipped_working_points(home):
    """A cache filled before the working points were recorded holds the same artefact (same sha256)
    with a manifest without them: the shipped manifest's are used; the user's own training is not
    given the shipped model's thresholds."""
    shipped = catalogue.shipped_manifest(get_spec("bdt"))
    _write_manifest("bdt", sha256=shipped["sha256"])
    assert resolve("bdt").working_points() == shipped["working_points"]
    _write_manifest("bdt", sha256="0" * 64, source="hepinfer train")
    assert resolve("bdt").working_points() == {}


def test_job_settings_refuse_a_working_point_a_named_model_lacks(home):
    from hepinfer.analysis.job import JobSettings

    _write_manifest("resnet50")
    with pytest.raises(ConfigError, match="'resnet50' has no working point 'top@1%'"):
        JobSettings(inputs=("x.root",), models=("resnet50",), working_point="top@1%")
    ok = JobSettings(inputs=("x.root",), models=("bdt",), working_point="top@1%")
    assert ok.working_point == "top@1%"


def test_run_takes_a_working_point():
    from hepinfer.cli import parser

    args = parser().parse_args(["run", "--output", "s.json", "--working-point", "top@10%"])
    assert args.working_point == "top@10%"


def test_model_pickers_label_only_untrained_networks(home):
    from hepinfer.analysis.job.settings import model_choices

    _write_manifest("resnet50", weights="random")
    labels = dict((name, label) for label, name in model_choices())
    assert labels["resnet50"] == "resnet50 (UNTRAINED)"
    # shipped trained models are never labelled, even before the cache holds them
    assert labels["resnet"] == "resnet" and labels["particlenet"] == "particlenet" and labels["bdt"] == "bdt"
    names = [name for _, name in model_choices()]
    assert names.index("resnet") < names.index("resnet50")
    _write_manifest("resnet50")  # trained with `hepinfer train resnet50`
    assert ("resnet50", "resnet50") in model_choices()


@pytest.mark.slow
def test_processor_cuts_at_the_working_point(generated, coffea_quiet, open_events, shipped_artefacts):
    from hepinfer import InferenceConfig
    from hepinfer.analysis.processor import TopTagProcessor

    events = open_events(generated["qcd"])
    config = InferenceConfig(mode="local")
    cut = resolve("bdt").working_point_cut("top@10%")
    at_point = TopTagProcessor(models=("bdt",), config=config, working_point="top@10%")
    assert at_point.cuts == {"bdt": cut}
    at_cut = TopTagProcessor(models=("bdt",), config=config, threshold=cut)
    loose = TopTagProcessor(models=("bdt",), config=config, threshold=0.0)
    with coffea_quiet():
        tagged = [int(p.process(events)["cutflow"]["tagged_bdt"]) for p in (at_point, at_cut, loose)]
    assert tagged[0] == tagged[1] < tagged[2]
    with pytest.raises(ConfigError, match="no working point 'top@3%'"):
        TopTagProcessor(models=("bdt",), config=config, working_point="top@3%")


def test_only_built_in_networks_without_weights_are_untrained(home, server_only_spec):
    """A model only a server has carries the server's weights: it is never labelled UNTRAINED."""
    elsewhere = server_only_spec
    assert not catalogue.is_untrained(elsewhere)
    assert catalogue.weights_note(elsewhere) == "declared by server grpc://example.org:8001"
    _write_manifest("resnet50", weights="random")
    assert catalogue.is_untrained(get_spec("resnet50")) and "UNTRAINED" in catalogue.weights_note(get_spec("resnet50"))
    assert not catalogue.is_untrained(get_spec("resnet")) and catalogue.weights_note(get_spec("resnet")) == "trained"
