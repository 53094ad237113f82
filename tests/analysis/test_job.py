"""`hepinfer run`: the main job, on generated events and the real embedded server."""

import json
from dataclasses import replace

import awkward as ak
import numpy as np
import pytest
import uproot

import hepinfer
from hepinfer import InferenceConfig
from hepinfer.analysis.clusters import dask_client, worker_environment
from hepinfer.analysis.job import JobSettings, check_inputs, expand_inputs, run_job, same_result
from hepinfer.cli import main
from hepinfer.errors import ConfigError, InputMismatch
from hepinfer.serving import server as server_mod

MODELS = ("particlenet", "bdt")
# the tests that run jobs are marked triton and slow one by one; the rest is quick


@pytest.mark.triton
@pytest.mark.slow
def test_input_checks_name_the_file_and_branch(generated_files, rewrite_file, tmp_path):
    files = generated_files
    assert check_inputs(files, MODELS) == 300
    broken = rewrite_file(files[0], tmp_path / "no_d0.root", drop=("PFCands_d0",))
    with pytest.raises(InputMismatch, match=r"no_d0\.root.*PFCands_d0.*particlenet"):
        check_inputs([str(broken)], MODELS)
    assert check_inputs([str(broken)], ("bdt",)) == 150  # the BDT does not read d0
    text = tmp_path / "notes.root"
    text.write_text("not a ROOT file")
    with pytest.raises(InputMismatch, match=r"notes\.root: cannot be read as a ROOT file"):
        check_inputs([str(text)], MODELS)
    no_count = rewrite_file(files[0], tmp_path / "no_count.root", drop=("FatJet_nConstituents",))
    for schema in ("pfnano", "nanoaod"):  # older PFNano: the candidates come through the FatJetPFCands table
        assert check_inputs([str(no_count)], MODELS, schema=schema) == 150
    no_pf = rewrite_file(files[0], tmp_path / "no_pf.root", drop=("PFCands_*", "nPFCands"))
    with pytest.raises(InputMismatch, match=r"no_pf\.root.*PFCands_pt.*needed by particlenet.*needed by bdt"):
        check_inputs([str(no_pf)], MODELS)
    assert check_inputs([str(no_pf)], ("bdt_nanoaod",)) == 150  # FatJet branches only
    with pytest.raises(InputMismatch, match=r"no tree 'Friends'"):
        check_inputs(files[:1], MODELS, treename="Friends")
    with pytest.raises(ConfigError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.nothing")])
    with pytest.raises(ConfigError, match="no such file"):
        expand_inputs([str(tmp_path / "absent.root")])
    with pytest.raises(ConfigError, match="executor"):
        JobSettings(inputs=files, executor="spark")


@pytest.mark.triton
@pytest.mark.slow
def test_runs_on_files_without_the_generator_extras(generated, rewrite_file, tmp_path, artefacts):
    """Any NanoAOD/PFNano file with fat jets and their candidates: no truth labels, no GenPart, no AK4
    jets, and other number types (float64 kinematics, int64 indices) than ours."""

    def cast(name, array):
        if "float32" in str(array.type):
            return ak.values_astype(array, np.float64)
        return ak.values_astype(array, np.int64) if name.endswith("Idx") else array

    src = generated["ttbar"]
    foreign = rewrite_file(
        src, tmp_path / "foreign.root", cast=cast, drop=("FatJet_label", "GenPart*", "nGenPart", "Jet_*", "nJet")
    )
    with uproot.open(foreign) as f:
        assert f["Events"]["FatJet_pt"].typename == "double[]" and "FatJet_label" not in f["Events"]
    runs = [
        run_job(
            JobSettings(inputs=(str(path),), models=MODELS, config=InferenceConfig(mode="local"), executor="iterative")
        )
        for path in (src, foreign)
    ]
    assert runs[0].summary["fatjets_selected"] > 20
    assert runs[0].summary["cutflow"] == runs[1].summary["cutflow"]
    for name in runs[0].hists:  # float64 features are rounded to the model's float32 on the way in
        assert np.allclose(runs[0].hists[name].values(), runs[1].hists[name].values(), atol=1), name


@pytest.mark.triton
@pytest.mark.slow
def test_run_local_equals_remote_and_writes_summary(server, job_settings, tmp_path):
    runs = {}
    for mode in ("local", "remote"):
        settings = job_settings(config=InferenceConfig(mode=mode, url=server.url), executor="iterative", chunksize=60)
        runs[mode] = run_job(settings, output=tmp_path / mode / "summary.json", plots=tmp_path / mode / "plots")
    assert same_result(
        {"cutflow": runs["local"].summary["cutflow"], "hists": runs["local"].hists},
        {"cutflow": runs["remote"].summary["cutflow"], "hists": runs["remote"].hists},
    )
    summary = json.loads((tmp_path / "remote" / "summary.json").read_text())
    assert summary["events"] == 300 and summary["events_per_s"] > 0 and summary["wall_s"] > 0
    assert summary["mode_used"] == {"particlenet": "remote", "bdt": "remote"}
    assert summary["embedded_server"] is False and summary["url"] == server.url
    selected = summary["fatjets_selected"]
    assert selected > 20 and summary["fatjets_scored"] == {"particlenet": selected, "bdt": selected}
    score = summary["histograms"]["score"]
    assert [a["name"] for a in score["axes"]] == ["model", "score"]
    assert np.asarray(score["values"]).sum() == 2 * selected  # every scored jet is in the histogram
    local = json.loads((tmp_path / "local" / "summary.json").read_text())
    assert local["histograms"] == summary["histograms"] and local["mode_used"]["bdt"] == "local"
    pngs = sorted(p.name for p in (tmp_path / "remote" / "plots").iterdir())
    assert pngs == ["msoftdrop_bdt.png", "msoftdrop_particlenet.png", "score.png"]
    assert all((tmp_path / "remote" / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)


@pytest.mark.triton
@pytest.mark.slow
def test_remote_without_url_starts_and_stops_the_embedded_server(generated_files, tmp_path, monkeypatch, artefacts):
    monkeypatch.delenv("HEPINFER_URL", raising=False)
    out = tmp_path / "summary.json"
    rc = main(
        [
            "run",
            "--input",
            *generated_files,
            "--models",
            "bdt",
            "--mode",
            "remote",
            "--executor",
            "futures",
            "--workers",
            "2",
            "--chunksize",
            "50",
            "--check-local",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    summary = json.loads(out.read_text())
    assert summary["embedded_server"] is True and summary["mode_used"] == {"bdt": "remote"}
    assert summary["models_requested"] == ["bdt"] and summary["skipped_models"] == {}  # named: no choice
    assert summary["local_check"]["identical"] is True
    assert not [s for s in server_mod._LIVE if s.is_running() and s.url == summary["url"]]  # stopped at the end


@pytest.mark.triton
@pytest.mark.slow
def test_failed_remote_run_writes_no_summary(job_settings, free_port, tmp_path):
    port = free_port
    settings = job_settings(
        models=("bdt",),
        config=InferenceConfig(mode="remote", url=f"grpc://127.0.0.1:{port}", timeout_s=5),
        executor="iterative",
    )
    out = tmp_path / "summary.json"
    with pytest.raises(hepinfer.ServerUnavailable, match=str(port)) as err:
        run_job(settings, output=out)
    assert "(this host) cannot reach" in str(err.value) and "before the first chunk" in str(err.value)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.triton
@pytest.mark.slow
def test_dask_on_an_existing_scheduler(server, job_settings, tmp_path):
    """--cluster tcp://...: attach to a running scheduler (here a LocalCluster's) and leave it running."""
    from hepinfer.analysis.clusters import local_cluster

    with local_cluster(2) as cluster:
        settings = job_settings(
            models=("bdt",),
            config=InferenceConfig(mode="remote", url=server.url),
            executor="dask",
            cluster=cluster.scheduler_address,
            chunksize=50,
        )
        result = run_job(settings)
        assert result.summary["events"] == 300 and result.summary["mode_used"] == {"bdt": "remote"}
        assert len(cluster.scheduler_info["workers"]) == 2  # still there
    with pytest.raises(ConfigError, match="cluster must be one of"):
        with dask_client("slurm"):
            pass


def test_worker_environment_never_carries_settings(tmp_path, monkeypatch):
    """An HTCondor job's script exports HEPINFER_HOME alone: the settings (headers included) travel
    inside the pickled tasks, never in a submit file."""
    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path))
    monkeypatch.setenv("HEPINFER_MODE", "remote")
    assert worker_environment() == {"HEPINFER_HOME": str(tmp_path.resolve())}


def test_job_settings_hold_one_config(tmp_path, monkeypatch):
    """The environment is read once, where the settings are made; an explicit config is taken as it
    is; the embedded server only in mode remote or auto."""
    monkeypatch.setenv("HEPINFER_MODE", "auto")
    monkeypatch.setenv("HEPINFER_TIMEOUT_S", "7")
    files = (str(tmp_path / "x.root"),)
    made = JobSettings(inputs=files)
    assert (made.config.mode, made.config.timeout_s, made.embedded_server) == ("auto", 7.0, True)
    monkeypatch.setenv("HEPINFER_URL", "grpc://h:1")
    assert JobSettings(inputs=files).embedded_server is False
    monkeypatch.setenv("HEPINFER_MODE", "local")
    assert replace(made, workers=3).config == made.config  # made once: not read again
    given = InferenceConfig(mode="remote", url="grpc://h:2")
    assert JobSettings(inputs=files, config=given).config is given
    assert JobSettings(inputs=files, config=given).embedded_server is False
    with pytest.raises(ConfigError, match="embedded_server.*not local"):
        JobSettings(inputs=files, config=InferenceConfig(mode="local"), embedded_server=True)
    with pytest.raises(ConfigError, match="config must be an InferenceConfig"):
        JobSettings(inputs=files, config={"mode": "local"})
