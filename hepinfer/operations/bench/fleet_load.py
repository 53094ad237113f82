"""``hepinfer bench fleet``: Dask workers scoring through (a) a fleet of one fixed replica and (b) the
autoscaled fleet (HAProxy, Prometheus, the autoscaler; min 1, max ``--max-replicas`` replicas), one
run per worker count: rows/s, latency, queue time and replicas over time.

Each Dask worker (a LocalCluster process) runs a closed loop of Scorer calls (``--threads`` calls
in flight per worker, ``--batch`` toy rows per call) for ``--duration`` seconds against the fleet's
one gRPC URL, as the workers of an analysis would.  The autoscaler is made fast for the bench
(:func:`bench_autoscaler`: a decision every second over a 3 s window) so that its decisions show
within a short run; the autoscaled fleet goes back to one replica before each run.  Rows/s over
time come from the workers' own completions; replicas, queue time and decisions from the fleet's
recorded history (:mod:`hepinfer.operations.fleet.timeline`); the queue time per request of a whole
run from its Prometheus.  A call that fails fails the study (exit code 1): no scale event may lose one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time

import numpy as np

from hepinfer.errors import ConfigError, HepinferError
from hepinfer.figures import fleet_bench_png
from hepinfer.models import SPECS
from hepinfer.operations.bench.study import Option, Point, Study

SETUPS = ("fixed", "autoscaled")
MAX_WORKERS = 16
COLUMNS = (
    "setup",
    "workers",
    "seconds",
    "calls",
    "failures",
    "rows_per_s",
    "p50_ms",
    "p99_ms",
    "queue_ms_per_request",
    "replicas_mean",
    "replicas_max",
    "scale_ups",
    "scale_downs",
)


def bench_autoscaler(threshold: float):
    """The autoscaler of the bench: SuperSONIC's in-flight metric, decisions every second over a 3 s
    window, short cool-downs; no saturation guard (refusals would hide the queue)."""
    from hepinfer.operations.fleet import AutoscalerSettings

    return AutoscalerSettings(
        metric="in_flight",
        threshold=threshold,
        window_s=3.0,
        poll_s=1.0,
        tick_s=0.5,
        up_cooldown_s=2.0,
        down_cooldown_s=4.0,
        admission_ratio=None,
    )


def prepare(p) -> None:
    from hepinfer.models.architectures import build_all
    from hepinfer.operations.fleet.processes import find_binary

    for binary in ("haproxy", "prometheus"):
        find_binary(binary)
    try:
        p.workers = tuple(int(w) for item in p.workers for w in str(item).split(",") if w.strip())
    except ValueError as err:
        raise ConfigError(f"--workers: whole numbers, e.g. 1,2,4 ({err})") from None
    if not p.workers or not all(1 <= w <= MAX_WORKERS for w in p.workers):
        raise ConfigError(f"--workers: each between 1 and {MAX_WORKERS}, got {p.workers}")
    if not (p.duration_s > 0 and p.threads >= 1 and p.batch >= 1 and p.max_replicas >= 1):
        raise ConfigError("bench fleet: --duration > 0, --threads, --batch and --max-replicas >= 1")
    build_all([p.model], level=logging.DEBUG)


def points(p):
    for setup in SETUPS:
        for n in p.workers:
            yield Point({"setup": setup, "workers": n})


class Fleets:
    """One fleet at a time: started when a point asks for its setup, stopped when the setup changes."""

    def __init__(self, p):
        self.p, self.setup, self.fleet = p, None, None

    def get(self, setup: str):
        from hepinfer.operations.fleet import Fleet

        if setup != self.setup:
            self.close()
            p, autoscaled = self.p, setup == "autoscaled"
            settings = bench_autoscaler(p.threshold)  # the fixed fleet reads the same metric, never scales
            self.fleet = Fleet(
                [p.model.name],
                replicas=1,
                min_replicas=1,
                max_replicas=p.max_replicas if autoscaled else 1,
                autoscaler=settings if autoscaled else dataclasses.replace(settings, scale=False),
                drain_timeout_s=20.0,
            ).start()
            self.setup = setup
        return self.fleet

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
        self.fleet, self.setup = None, None


def load_worker(url: str, model, batch: int, threads: int, start_at: float, duration_s: float) -> dict:
    """In a Dask worker: ``threads`` closed loops of Scorer calls from ``start_at`` (Unix time) for
    ``duration_s``; returns each call's (end time, latency s) and the failures.  ``model``: its ModelSpec."""
    from hepinfer.models.toy import toy_inputs
    from hepinfer.scorer import Scorer

    scorer = Scorer(model, mode="remote", url=url)
    x = toy_inputs(model, batch, seed=os.getpid() % 1000)
    scorer(x)  # connection and metadata before the clock starts
    done: list[tuple[float, float]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def loop():
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < start_at + duration_s:
            t0 = time.perf_counter()
            try:
                scorer(x)
            except HepinferError as err:
                with lock:
                    failures.append(f"{type(err).__name__}: {err}")
                time.sleep(0.05)
                continue
            with lock:
                done.append((time.time(), time.perf_counter() - t0))

    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    scorer.close()
    return {"done": done, "failures": failures}


def _run_load(fleet, p, workers: int) -> tuple[float, float, list[dict]]:
    from distributed import Client

    from hepinfer.analysis.clusters import local_cluster

    with local_cluster(workers) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        addresses = list(client.scheduler_info()["workers"])
        fleet.autoscaler.paused = False
        start_at = time.time() + 2.0  # every worker's warm-up call done before the clock starts
        futures = [
            client.submit(
                load_worker, fleet.url, p.model, p.batch, p.threads, start_at, p.duration_s, workers=[a], pure=False
            )
            for a in addresses
        ]
        results = client.gather(futures)
    return start_at, start_at + p.duration_s, results


def _queue_ms(fleet, seconds: float) -> float | None:
    """Queue ms per request at the replicas over the last ``seconds`` (Prometheus)."""
    from hepinfer.operations.fleet.prometheus import TRITON_JOB, duration

    w, j = duration(math.ceil(seconds)), f'{{job="{TRITON_JOB}"}}'
    try:
        queued = fleet.prometheus.scalar(f"sum(increase(nv_inference_queue_duration_us{j}[{w}]))")
        served = fleet.prometheus.scalar(f"sum(increase(nv_inference_request_success{j}[{w}]))")
    except HepinferError:
        return None
    return queued / served / 1e3 if queued is not None and served else None


def _mean_replicas(samples, start: float, end: float) -> float:
    """Time-weighted mean of the replicas in rotation from ``start`` to ``end``."""
    total, last_t, last_n = 0.0, start, None
    for s in samples:
        if last_n is not None:
            total += last_n * (min(s["time"], end) - last_t)
        last_t, last_n = max(s["time"], start), s["replicas"]
    if last_n is not None:
        total += last_n * max(0.0, end - last_t)
    return total / (end - start)


def measure(run, point):
    from hepinfer.operations.fleet.timeline import read_history

    p, setup, n = run.params, point.row["setup"], point.row["workers"]
    fleet = run.keep("fleets", lambda: Fleets(p), with_server=False).get(setup)
    fleet.autoscaler.paused = True
    fleet.scale_to(1)
    time.sleep(fleet.options.autoscaler.window_s)  # the previous run's load out of the metric's window
    start, end, results = _run_load(fleet, p, n)
    time.sleep(2 * fleet.options.scrape_interval_s + 0.5)  # the last requests scraped
    fleet.autoscaler.paused = True
    queue_ms = _queue_ms(fleet, end - start)
    history = read_history(fleet.run_dir).between(start - 1.0, end)
    done = sorted(c for r in results for c in r["done"])
    failures = [f for r in results for f in r["failures"]]
    latencies = np.array([lat for _, lat in done]) * 1e3
    bins = np.arange(0.0, p.duration_s + 1.0, 1.0)
    per_s = np.histogram([t - start for t, _ in done], bins=bins)[0] * p.batch
    samples = [s for s in history.samples if s["time"] >= start]
    return {
        "seconds": round(end - start, 1),
        "calls": len(done),
        "failures": len(failures),
        "first_failure": failures[0] if failures else "",
        "rows_per_s": len(done) * p.batch / (end - start),
        "p50_ms": float(np.percentile(latencies, 50)) if len(done) else math.nan,
        "p99_ms": float(np.percentile(latencies, 99)) if len(done) else math.nan,
        "queue_ms_per_request": math.nan if queue_ms is None else queue_ms,
        "replicas_mean": _mean_replicas(history.samples, start, end) if history.samples else math.nan,
        "replicas_max": max((s["replicas"] for s in samples), default=0),
        "scale_ups": sum(d["action"] == "up" for d in history.decisions),
        "scale_downs": sum(d["action"] == "down" for d in history.decisions),
        "timeline": {
            "rows_t": list(bins[:-1] + 0.5),
            "rows_per_s": per_s.tolist(),
            "t": [s["time"] - start for s in history.samples],
            "replicas": [s["replicas"] for s in history.samples],
            "queue_ms": [s.get("queue_ms") for s in history.samples],
            "decisions": [(d["time"] - start, d["action"]) for d in history.decisions if d["action"] in ("up", "down")],
        },
    }


def summary(rows, p):
    by = {(r["setup"], r["workers"]): r for r in rows}
    for n in p.workers:
        fixed, auto = by.get(("fixed", n)), by.get(("autoscaled", n))
        if fixed and auto and fixed["rows_per_s"]:
            yield (
                f"{n} worker(s): autoscaled {auto['rows_per_s']:,.0f} rows/s on up to {auto['replicas_max']} replicas "
                f"({auto['scale_ups']} up, {auto['scale_downs']} down) vs fixed {fixed['rows_per_s']:,.0f} rows/s "
                f"on 1 (x{auto['rows_per_s'] / fixed['rows_per_s']:.2f}); queue ms per request "
                f"{auto['queue_ms_per_request']:.2f} vs {fixed['queue_ms_per_request']:.2f}"
            )
    yield (
        f"On this machine ({os.cpu_count()} cores) the replicas share the cores with each other and with the Dask "
        "workers: the timeline shows the autoscaler following the load (replicas added as requests queue, removed "
        "when they stop) and that no call fails across scale events; it cannot show capacity: replicas on shared "
        "cores add no throughput, so autoscaled vs fixed rows/s here says nothing about replicas on their own GPUs."
    )


def check(rows, p):
    failed = [r for r in rows if r["failures"]]
    if failed:
        r = failed[0]
        return f"bench fleet: {sum(r['failures'] for r in failed)} calls failed; first: {r['first_failure']}"
    return None


STUDY = Study(
    name="fleet",
    help="Dask workers against one fixed replica and the autoscaled fleet: rows/s, queue time, replicas over time",
    columns=COLUMNS,
    params=dict(workers=(1, 2, 4), model="bdt", batch=2000, threads=2, duration_s=60.0, max_replicas=3, threshold=1.0),
    quick=dict(workers=(1, 2), duration_s=12.0),
    options={
        "workers": Option("--workers", "Dask worker counts, e.g. 1,2,4", nargs="+"),
        "model": Option("--model", "the model", choices=tuple(SPECS)),
        "batch": Option("--batch", "rows per request", type=int),
        "threads": Option("--threads", "calls in flight per Dask worker", type=int),
        "duration_s": Option("--duration", "seconds per measurement", type=float),
        "max_replicas": Option("--max-replicas", "the autoscaled fleet's maximum", type=int),
        "threshold": Option("--threshold", "the autoscaler's in_flight threshold", type=float),
    },
    prepare=prepare,
    points=points,
    measure=measure,
    output="fleet",
    title="Dask workers against a fixed replica and the autoscaled fleet ({model}, batch {batch})",
    plot=lambda rows, path, p: fleet_bench_png(rows, path, max_replicas=p.max_replicas),
    summary=summary,
    check=check,
    table=COLUMNS,
)
