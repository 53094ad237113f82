"""What a server computes each model with, and ``--check-local`` against a reduced-precision server:
the score comparison, the serving parameters read back from real embedded servers, and the report."""

import json

import numpy as np
import pytest
from google.protobuf.json_format import MessageToDict

import hepinfer
from hepinfer.analysis.job import compare_scores, local_check
from hepinfer.errors import InputMismatch, ModelNotFound
from hepinfer.models import get_spec
from hepinfer.panel import comparison_html, panel, status_html
from hepinfer.runtime.discovery import ServedEngine, engine_from_config, served_engine, served_engines
from hepinfer.serving.repository import RepositoryOptions, model_config

# ---------------------------------------------------------------------------------------------
# the comparison arithmetic


def test_compare_scores_counts_flips_at_the_cut():
    local = [0.10, 0.49, 0.50, 0.51, 0.90]
    remote = [0.12, 0.51, 0.50, 0.49, 0.90]
    got = compare_scores(local, remote, cut=0.5)
    assert got["jets"] == 5 and got["flipped"] == 2 and got["flip_fraction"] == pytest.approx(0.4)
    assert got["max_abs_diff"] == pytest.approx(0.02) and got["nonfinite"] == 0
    # a score equal to the cut is not tagged (the processor tags score > threshold): 0.5 vs 0.5001 flips
    assert compare_scores([0.5], [0.5001], cut=0.5)["flipped"] == 1
    assert compare_scores([0.5], [0.5001], cut=0.4)["flipped"] == 0


def test_compare_scores_identical_and_empty():
    x = np.linspace(0, 1, 101, dtype=np.float32)
    same = compare_scores(x, x.copy(), cut=0.5)
    assert same == {"jets": 101, "max_abs_diff": 0.0, "flipped": 0, "flip_fraction": 0.0, "nonfinite": 0}
    empty = compare_scores([], np.zeros(0, np.float32), cut=0.5)
    assert empty == {"jets": 0, "max_abs_diff": 0.0, "flipped": 0, "flip_fraction": 0.0, "nonfinite": 0}
    with pytest.raises(InputMismatch, match="3 jets scored locally, 2 on the server"):
        compare_scores([0.1, 0.2, 0.3], [0.1, 0.2], cut=0.5)


def test_compare_scores_with_a_nan():
    got = compare_scores([0.2, 0.7, np.nan], [0.25, np.nan, np.nan], cut=0.5)
    assert got["max_abs_diff"] == pytest.approx(0.05)  # over the jets finite on both sides
    assert got["nonfinite"] == 1 and got["flipped"] == 1  # NaN is not > cut: the 0.7 jet loses its tag


def _out(scores: dict, selected: int = 4) -> dict:
    """A run's output as local_check reads it: the shared cut flow and per-model scores in two chunks."""
    return {
        "cutflow": {"events": 10, "events_with_selected_fatjet": 3, "selected_fatjets": selected},
        "hists": {},
        "scores": {m: {("f.root", 0): np.asarray(s[:2]), ("f.root", 5): np.asarray(s[2:])} for m, s in scores.items()},
    }


def test_local_check_is_strict_for_full_precision_only():
    local = _out({"particlenet": [0.1, 0.6, 0.4, 0.9], "bdt": [0.2, 0.3, 0.8, 0.7]})
    remote = _out({"particlenet": [0.1, 0.45, 0.4, 0.9], "bdt": [0.2, 0.3, 0.8, 0.7 + 5e-6]})
    full = {"reduced": False}
    serving = {"particlenet": {"reduced": True}, "bdt": full}
    check = local_check(remote, local, serving, cut=0.5)
    pn, bdt = check["models"]["particlenet"], check["models"]["bdt"]
    assert check["passed"] is True and check["identical"] is True  # no histograms in these outputs
    assert pn["reduced"] and not pn["agrees"] and pn["flipped"] == 1 and pn["flip_fraction"] == 0.25
    assert pn["max_abs_diff"] == pytest.approx(0.15)
    assert bdt["agrees"] and 0 < bdt["max_abs_diff"] <= 1e-5
    # the same difference from a model served at full precision fails the check
    failed = local_check(remote, local, {"particlenet": full, "bdt": full}, cut=0.5)
    assert failed["passed"] is False and not failed["models"]["particlenet"]["agrees"]
    # a local run (no server) is checked strictly too
    assert local_check(remote, local, None, cut=0.5)["passed"] is False
    # a different selection fails whatever the precision
    other = _out({"particlenet": [0.1, 0.6, 0.4, 0.9], "bdt": [0.2, 0.3, 0.8, 0.7]}, selected=5)
    assert local_check(other, local, serving, cut=0.5)["passed"] is False
    html = comparison_html(check)
    assert "particlenet: largest |score difference| 0.15, 25.00% of 4 tags flipped at 0.5 (reduced precision)" in html


def test_local_check_counts_flips_at_each_models_working_point():
    """With a working point every model has its own cut: a flip counts at that model's threshold."""
    local = _out({"particlenet": [0.1, 0.6, 0.4, 0.9], "bdt": [0.2, 0.3, 0.8, 0.7]})
    remote = _out({"particlenet": [0.1, 0.45, 0.4, 0.9], "bdt": [0.2, 0.3, 0.8, 0.75]})
    reduced = {"reduced": True}
    check = local_check(remote, local, {"particlenet": reduced, "bdt": reduced}, cut={"particlenet": 0.7, "bdt": 0.72})
    pn, bdt = check["models"]["particlenet"], check["models"]["bdt"]
    assert (pn["cut"], pn["flipped"]) == (0.7, 0) and (bdt["cut"], bdt["flipped"]) == (0.72, 1)
    assert "flipped at 0.72" in comparison_html(check)


# ---------------------------------------------------------------------------------------------
# configs of servers that do not declare their engine


def _json_config(name: str, **options) -> dict:
    """The config as tritonclient's get_model_config(as_json=True) gives it for a production repository."""
    cfg = model_config(get_spec(name), RepositoryOptions(flavour="production", models=(name,), **options))
    return MessageToDict(cfg, preserving_proto_field_name=True)


def test_engine_of_a_production_repository(shipped_artefacts):
    plain = engine_from_config("particlenet", _json_config("particlenet"))
    assert (plain.engine, plain.device, plain.precision, plain.declared) == ("onnxruntime", "cpu", "unknown", False)
    assert plain.reduced is False  # unknown counts as full precision: the local check stays strict
    trt = engine_from_config("particlenet", _json_config("particlenet", gpu=True, tensorrt=True))
    assert (trt.engine, trt.device, trt.precision, trt.reduced) == ("onnxruntime", "cuda", "fp16", True)
    fil = engine_from_config("bdt", _json_config("bdt"))
    assert (fil.engine, fil.precision, fil.reduced) == ("fil", "unknown", False)
    assert ServedEngine("m", "torch", "cpu", "fp32", compiled=True).reduced  # compiled is reduced too
    assert str(ServedEngine("m", "torch", "cuda", "bf16")) == "torch on cuda, bf16"


# ---------------------------------------------------------------------------------------------
# real servers


@pytest.fixture(scope="module")
def bf16_server(artefacts):
    with hepinfer.serve(["particlenet", "bdt"], engine="torch", precision="bf16") as srv:
        yield srv


@pytest.mark.triton
def test_reads_what_a_bf16_server_runs(bf16_server):
    for url in (bf16_server.url, bf16_server.http_url):
        engines = served_engines(url, ["particlenet", "bdt"])
        pn, bdt = engines["particlenet"], engines["bdt"]
        assert (pn.engine, pn.device, pn.precision, pn.compiled, pn.declared) == ("torch", "cpu", "bf16", False, True)
        assert pn.reduced and pn.as_dict()["reduced"] is True
        assert (bdt.engine, bdt.precision, bdt.reduced) == ("xgboost", "fp32", False)  # the BDT keeps its engine
    assert bf16_server.serving["precision"] == "bf16"
    with pytest.raises(ModelNotFound, match="'resnet50'"):  # not served here: the error names it
        served_engine(bf16_server.url, "resnet50")


@pytest.mark.triton
def test_reads_what_the_default_server_runs(server):
    from hepinfer.runtime.triton import TritonRuntime

    pn = served_engine(server.url, "particlenet")
    assert (pn.engine, pn.device, pn.precision, pn.compiled, pn.reduced) == ("onnxruntime", "cpu", "fp32", False, False)
    # a runtime of one model reads another's on its connection
    with TritonRuntime(get_spec("particlenet"), server.url) as rt:
        assert served_engine(rt, "bdt").engine == "xgboost" and rt.model_name == "particlenet"


@pytest.mark.triton
@pytest.mark.slow
def test_check_local_against_bf16_reports_and_passes(bf16_server, generated_files, tmp_path, capsys):
    from hepinfer.cli import main

    out = tmp_path / "summary.json"
    args = ["run", "--input", generated_files[0], "--models", "particlenet,bdt", "--mode", "remote"]
    args += ["--url", bf16_server.url, "--executor", "iterative", "--chunksize", "75", "--check-local"]
    assert main([*args, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "server runs particlenet: torch on cpu, bf16" in printed and "check PASSED" in printed
    summary = json.loads(out.read_text())
    assert summary["serving"]["particlenet"] == {
        "engine": "torch",
        "device": "cpu",
        "precision": "bf16",
        "compiled": False,
        "declared": True,
        "reduced": True,
    }
    assert summary["serving"]["bdt"]["precision"] == "fp32" and not summary["serving"]["bdt"]["reduced"]
    check = summary["local_check"]
    pn, bdt = check["models"]["particlenet"], check["models"]["bdt"]
    assert check["passed"] is True and check["cut"] == 0.5
    assert pn["jets"] == summary["fatjets_selected"] > 10
    assert pn["max_abs_diff"] > 0 and 0 <= pn["flip_fraction"] <= 1 and pn["reduced"] and not pn["agrees"]
    assert bdt["max_abs_diff"] == 0 and bdt["agrees"]  # full precision on both sides: checked, and equal
    assert f"particlenet (bf16): largest |score difference| {pn['max_abs_diff']:.3g}" in printed


@pytest.mark.triton
def test_panel_status_names_engine_and_precision(bf16_server):
    session = hepinfer.Session(hepinfer.InferenceConfig(mode="remote", url=bf16_server.url))
    p = panel(session, models=("particlenet", "bdt"), refresh_s=0)
    try:
        status = p.refresh()
        assert status["serving"]["particlenet"]["precision"] == "bf16"
        assert "(torch cpu bf16)" in p.status.value and "(xgboost cpu fp32)" in p.status.value
        assert "data-reduced='true'" in p.status.value
    finally:
        p.close()
    assert "no server" in status_html({**status, "live": False})
