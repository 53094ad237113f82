"""``hepinfer bench workers``: the Fermilab study's plot — events/s of the example processor against
the number of Dask workers, local vs remote inference, with the server's mean queue time per request
read from its Prometheus metrics.  One embedded server (one instance per core) serves every run.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...logs import get_logger
from .harness import write_rows

log = get_logger(__name__)

COLUMNS = [
    "workers",
    "mode",
    "events",
    "wall_s",
    "events_per_s",
    "requests",
    "queue_ms_per_request",
    "compute_ms_per_execution",
]


def run_workers(
    files=None, workers=(1, 2), models=("particlenet", "bdt"), chunksize: int = 100, out_dir=None
) -> list[dict]:
    from ...serving.metrics import difference, model_metrics
    from ...serving.server import serve
    from ..job import JobSettings, run_job
    from ..samples import demo_files

    files = tuple(str(f) for f in (files or demo_files(400)))
    rows = []
    with serve(models, instances=os.cpu_count() or 1) as server:
        for n in workers:
            for mode in ("local", "remote"):
                before = model_metrics(server.metrics_url)
                result = run_job(
                    JobSettings(
                        inputs=files,
                        models=tuple(models),
                        mode=mode,
                        url=server.url,
                        executor="dask",
                        cluster="local",
                        workers=n,
                        chunksize=chunksize,
                    )
                )
                used = difference(model_metrics(server.metrics_url), before)
                requests = sum(u["requests"] for u in used.values())
                executions = sum(u["executions"] for u in used.values())
                s = result.summary
                rows.append(
                    {
                        "workers": n,
                        "mode": mode,
                        "events": s["events"],
                        "wall_s": s["wall_s"],
                        "events_per_s": s["events_per_s"],
                        "requests": int(requests),
                        "queue_ms_per_request": sum(u["queue_us"] for u in used.values()) / requests / 1e3
                        if requests
                        else 0.0,
                        "compute_ms_per_execution": (
                            sum(u["compute_infer_us"] for u in used.values()) / executions / 1e3 if executions else 0.0
                        ),
                    }
                )
                log.info(f"{n} worker(s), {mode}: {s['events_per_s']:,.1f} events/s")
    if out_dir:
        write_rows(rows, out_dir, "workers", "Events/s against Dask workers", COLUMNS)
        plot(rows, Path(out_dir) / "workers.png")
    return rows


def plot(rows: list[dict], path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.6))
    ax = fig.subplots()
    for mode in ("local", "remote"):
        pts = sorted((r["workers"], r["events_per_s"]) for r in rows if r["mode"] == mode)
        ax.plot(*zip(*pts), "o-", label=f"{mode} inference")
    ax.set_xlabel("Dask workers")
    ax.set_ylabel("events/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
