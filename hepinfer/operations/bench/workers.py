"""``hepinfer bench workers``: the Fermilab study's plot — events/s of the example processor against
the number of Dask workers, local vs remote inference, with the server's mean queue time per request
read from its Prometheus metrics.  One embedded server (one instance per core) serves every run.
"""

from __future__ import annotations

from hepinfer.figures import line_chart
from hepinfer.operations.bench.study import Option, Point, Study, cores

COLUMNS = (
    "workers",
    "mode",
    "events",
    "wall_s",
    "events_per_s",
    "requests",
    "queue_ms_per_request",
    "compute_ms_per_execution",
)


def prepare(p):
    from hepinfer.ml.samples import demo_files

    p.files = tuple(str(f) for f in (p.files or demo_files(400)))


def points(p):
    server = dict(models=[m.name for m in p.models], instances=cores())
    for n in p.workers:
        for mode in ("local", "remote"):
            yield Point({"workers": n, "mode": mode}, server)


def measure(run, point):
    from hepinfer.analysis.job import JobSettings, run_job
    from hepinfer.config import InferenceConfig
    from hepinfer.serving.triton_metrics import difference, model_metrics

    p, server = run.params, run.server
    settings = JobSettings(
        inputs=p.files,
        models=tuple(p.models),
        config=InferenceConfig.from_env(mode=point.row["mode"], url=server.url),
        executor="dask",
        cluster="local",
        workers=point.row["workers"],
        chunksize=p.chunksize,
    )
    before = model_metrics(server.metrics_url)
    s = run_job(settings).summary
    used = difference(model_metrics(server.metrics_url), before).values()
    requests = sum(u["requests"] for u in used)
    executions = sum(u["executions"] for u in used)
    return {
        "events": s["events"],
        "wall_s": s["wall_s"],
        "events_per_s": s["events_per_s"],
        "requests": int(requests),
        "queue_ms_per_request": sum(u["queue_us"] for u in used) / requests / 1e3 if requests else 0.0,
        "compute_ms_per_execution": sum(u["compute_infer_us"] for u in used) / executions / 1e3 if executions else 0.0,
    }


STUDY = Study(
    name="workers",
    help="events/s vs Dask workers, local vs remote, server queue time",
    columns=COLUMNS,
    params=dict(files=None, workers=(1, 2), models=("particlenet", "bdt"), chunksize=100),
    quick=dict(workers=(1, 2), models=("bdt",), chunksize=200),
    options={"files": Option("--input", "files (default: the demo sample)", nargs="+")},
    prepare=prepare,
    points=points,
    measure=measure,
    output="workers",
    title="Events/s against Dask workers",
    plot=lambda rows, path, p: line_chart(
        rows,
        path,
        "workers",
        "events_per_s",
        series=lambda r: f"{r['mode']} inference",
        xlabel="Dask workers",
        ylabel="events/s",
    ),
)
