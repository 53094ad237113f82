"""The Session and the notebook panel: toggles edit the one settings object; runs follow it."""

import pickle

import pytest

import hepinfer
from hepinfer import InferenceConfig, Session
from hepinfer.analysis.job import same_result
from hepinfer.analysis.processor import TopTagProcessor
from hepinfer.panel import panel, server_status


def test_session_set_observe_and_pickle():
    session = Session(InferenceConfig(mode="local"))
    seen = []
    session.observe(seen.append)
    session.set(mode="remote", url="grpc://127.0.0.1:9")
    assert session.config.mode == "remote" and seen[-1].url == "grpc://127.0.0.1:9"
    with pytest.raises(hepinfer.ConfigError):
        session.set(mode="gpu")
    assert session.config.mode == "remote" and len(seen) == 1  # a bad value changes nothing
    snapshot = pickle.loads(pickle.dumps(session))  # what a Dask worker gets: the config of that moment
    assert snapshot == session.config and isinstance(snapshot, InferenceConfig)
    session.set(mode="local")
    assert snapshot.mode == "remote"


@pytest.mark.triton
@pytest.mark.slow
def test_panel_toggle_runs_identical_with_progress(server, generated):
    session = Session(InferenceConfig(mode="local", url=server.url))
    p = panel(
        session,
        inputs=[generated["ttbar"], generated["qcd"]],
        models=("particlenet", "bdt"),
        executor="iterative",
        chunksize=50,
        refresh_s=0,
    )
    try:
        status = p.refresh()
        assert status["live"] and status["ready"] and status["models"] == {"particlenet": True, "bdt": True}
        assert "live, ready" in p.status.value
        p.mode.value = "remote"  # the toggle edits the session ...
        assert session.config.mode == "remote"
        remote = p.run()
        assert remote.summary["mode_used"] == {"particlenet": "remote", "bdt": "remote"}
        assert [h.chunks_done for h in p.history] == [2, 4, 6] and p.progress.value == p.progress.max == 6
        assert p.plot.value[:4] == b"\x89PNG" and "300/300 events" in p.progress_text.value
        assert "hepinfer-mode-used'>remote<" in p.results.value
        assert f"jets by server: particlenet: {server.url} " in p.results.value  # counted per server and local
        session.set(mode="local")  # ... and code that edits the session moves the toggle
        assert p.mode.value == "local"
        local = p.run()
        assert local.summary["mode_used"] == {"particlenet": "local", "bdt": "local"}
        assert same_result(
            {"cutflow": local.summary["cutflow"], "hists": local.hists},
            {"cutflow": remote.summary["cutflow"], "hists": remote.hists},
        )
        p.url.value = "grpc://[bad"
        assert "hepinfer-error" in p.message.value and session.config.url == server.url
    finally:
        p.close()


@pytest.mark.triton
@pytest.mark.slow
def test_panel_starts_and_stops_the_embedded_server(artefacts):
    session = Session(InferenceConfig(mode="remote", url="grpc://127.0.0.1:1"))
    p = panel(session, models=("bdt",), refresh_s=0)
    try:
        assert not server_status(session.config, ["bdt"])["live"]
        srv = p.start_server(wait=True)
        assert srv.is_running() and session.config.url == srv.url and p.url.value == srv.url
        assert p.refresh()["models"] == {"bdt": True}
        p.stop_server()
        assert not srv.is_running() and "no server" in p.status.value
    finally:
        p.close()


@pytest.mark.triton
@pytest.mark.slow
def test_the_panel_serves_a_repository_as_it_is(artefacts, tmp_path):
    from hepinfer.serving.repository import RepositoryOptions, write_repository

    repository = write_repository(tmp_path / "site", RepositoryOptions(models=("bdt", "bdt_nanoaod")))
    session = Session(InferenceConfig(mode="remote", url="grpc://127.0.0.1:1"))
    p = panel(session, models=("bdt",), refresh_s=0, serve_options={"repository": str(repository)})
    try:
        srv = p.start_server(wait=True)
        assert set(srv.served_models) == {"bdt", "bdt_nanoaod"}  # the whole repository, not the choice
        assert "bdt_nanoaod" in p.message.value and session.config.url == srv.url
        assert p.refresh()["models"] == {"bdt": True}
    finally:
        p.close()


@pytest.mark.triton
@pytest.mark.slow
def test_a_toggle_reaches_dask_workers(server, generated, coffea_quiet):
    """Runs submitted to Dask after a toggle carry the new mode to the workers."""
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema
    from distributed import Client

    from hepinfer.analysis.clusters import local_cluster

    session = Session(InferenceConfig(mode="local", url=server.url))
    proc = TopTagProcessor(models=("bdt",), config=session)
    fileset = {"t": {"files": {str(generated["ttbar"]): "Events"}}}
    with local_cluster(2) as cluster, Client(cluster) as client:
        runner = processor.Runner(
            executor=processor.DaskExecutor(client=client, status=False), schema=PFNanoAODSchema, chunksize=50
        )
        used = {}
        for mode in ("local", "remote"):
            session.set(mode=mode)
            with coffea_quiet():
                out = runner(fileset, proc, treename="Events")
            used[mode] = {k: int(v) for k, v in out["inference"]["bdt"].items()}
    jets = used["local"]["local_jets"]
    assert jets > 0 and used["local"]["remote_jets"] == 0
    assert (used["remote"]["remote_jets"], used["remote"]["local_jets"]) == (jets, 0)
    assert used["remote"]["calls"] == 3 and used["remote"]["fallback_calls"] == 0  # 150 events, chunks of 50


def test_the_panel_sets_the_selection(tmp_path):
    """Empty fields leave a bound to the models' domains; a typed one goes into the job's settings."""
    data = tmp_path / "events.root"
    data.write_bytes(b"")  # the settings only need the file to exist
    p = panel(Session(InferenceConfig(mode="local")), inputs=[data], models=("bdt_nanoaod",), refresh_s=0)
    try:
        settings = p.job_settings()
        assert (settings.pt_min, settings.pt_max, settings.eta_max) == (None, None, None)
        p.pt_min.value, p.eta_max.value = "300", " 2.0 "
        settings = p.job_settings()
        assert (settings.pt_min, settings.pt_max, settings.eta_max) == (300.0, None, 2.0)
        p.pt_max.value = "a lot"
        with pytest.raises(hepinfer.ConfigError, match=r"pT max \[GeV\]: 'a lot' is not a number"):
            p.job_settings()
    finally:
        p.close()
