"""``hepinfer bench load``: K client processes against one server for T seconds.

The server is the embedded one (the launcher ``hepinfer serve`` uses, on free loopback ports), or
``--url`` for one already running on this machine: the load never leaves loopback (a non-loopback
URL is refused).  Bounded: at most ``MAX_CLIENTS`` processes and ``MAX_SECONDS`` seconds.

Each client is its own process (``spawn``) with its own hepinfer Scorer, ``retries=0`` (an error
is counted, not hidden by a retry), calling back to back.  Reported: requests, errors, rows/s,
p50 / p99 latency, and the server's memory (RSS of tritonserver and its python-backend stubs)
before the load, at its peak, and after.  Any failed request fails the study (exit code 1).
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

import numpy as np

from hepinfer.errors import ConfigError
from hepinfer.figures import latency_histogram
from hepinfer.models import SPECS
from hepinfer.operations.bench.study import Option, Point, Study
from hepinfer.urls import TritonUrl

MAX_CLIENTS = 32
MAX_SECONDS = 600.0
COLUMNS = (
    "model",
    "batch",
    "clients",
    "seconds",
    "requests",
    "errors",
    "rows_per_s",
    "p50_ms",
    "p99_ms",
    "server_rss_mb_before",
    "server_rss_mb_peak",
    "server_rss_mb_after",
)


def _client(url: str, model, batch: int, seconds: float, seed: int, start, queue) -> None:
    from hepinfer.config import InferenceConfig
    from hepinfer.models.toy import toy_inputs
    from hepinfer.scorer import Scorer

    scorer = Scorer(model, config=InferenceConfig(mode="remote", url=url, retries=0, timeout_s=60))
    x = toy_inputs(model, batch, seed=seed)
    latencies, errors, first_error = [], 0, ""
    try:
        scorer(x)  # warm-up: connection and metadata
    except Exception as err:  # noqa: BLE001 - reported to the parent
        errors, first_error = 1, f"{type(err).__name__}: {err}"
    start.wait()
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        try:
            scorer(x)
            latencies.append(time.perf_counter() - t0)
        except Exception as err:  # noqa: BLE001 - counted
            errors += 1
            first_error = first_error or f"{type(err).__name__}: {err}"
    scorer.close()
    queue.put((latencies, errors, first_error))


def prepare(p):
    if not 1 <= p.clients <= MAX_CLIENTS:
        raise ConfigError(f"clients must be 1..{MAX_CLIENTS}, got {p.clients}")
    if not 0 < p.seconds <= MAX_SECONDS:
        raise ConfigError(f"seconds must be in (0, {MAX_SECONDS:g}], got {p.seconds}")
    if p.url is not None and not TritonUrl.parse(p.url).is_loopback:
        raise ConfigError(f"--url {p.url}: the load test only runs against a server on this machine (loopback)")


def points(p):
    row = {"model": p.model.name, "batch": p.batch, "clients": p.clients, "seconds": p.seconds}
    yield Point(row, None if p.url else dict(models=[p.model.name]), p.model)


def measure(run, point):
    p = run.params
    url, server_pid = (run.server.url, run.server.pid) if run.server else (p.url, p.server_pid)
    from hepinfer.operations.bench.process_memory import tree_rss_bytes

    rss = (lambda: tree_rss_bytes(server_pid, include_root=True) / 2**20) if server_pid else (lambda: float("nan"))
    ctx = mp.get_context("spawn")
    start, queue = ctx.Barrier(p.clients + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(url, p.model, p.batch, p.seconds, k, start, queue), daemon=True)
        for k in range(p.clients)
    ]
    for proc in procs:
        proc.start()
    start.wait(timeout=300)  # every client connected and warmed up
    before = rss()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.wait(0.25):
            peak[0] = max(peak[0], rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    results = [queue.get(timeout=p.seconds + 300) for _ in procs]
    elapsed = time.perf_counter() - t0
    done.set()
    sampler.join()
    for proc in procs:
        proc.join(timeout=30)
    after = rss()
    lat = np.array([x for r in results for x in r[0]]) * 1e3
    return {
        "requests": int(lat.size),
        "errors": sum(r[1] for r in results),
        "rows_per_s": lat.size * p.batch / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "server_rss_mb_before": before,
        "server_rss_mb_peak": max(peak[0], after),
        "server_rss_mb_after": after,
        "first_error": next((r[2] for r in results if r[2]), ""),
        "latencies_ms": lat,
    }


def check(rows, p):
    bad = [r for r in rows if r["errors"]]
    return f"{bad[0]['errors']} errors; first: {bad[0]['first_error']}" if bad else None


STUDY = Study(
    name="load",
    help="K client processes x T seconds against one server",
    columns=COLUMNS,
    params=dict(model="particlenet", batch=16, clients=4, seconds=10.0, url=None, server_pid=None),
    quick=dict(model="bdt", clients=2, seconds=3.0),
    options={
        "model": Option("--model", "the model", choices=tuple(SPECS)),
        "batch": Option("--batch", "rows per request", type=int),
        "clients": Option("--clients", f"client processes (at most {MAX_CLIENTS})", type=int),
        "seconds": Option("--seconds", f"how long each client calls (at most {MAX_SECONDS:g})", type=float),
        "url": Option("--url", "a server already running on this machine (default: embedded)"),
    },
    prepare=prepare,
    points=points,
    measure=measure,
    check=check,
    output="load_{model}",
    title="Load: {clients} clients x {seconds:g} s, {model} batch {batch}",
    plot=lambda rows, path, p: latency_histogram(
        rows[0]["latencies_ms"], path, f"{p.model.name} batch {p.batch}, {p.clients} clients x {p.seconds:g} s"
    ),
)
