"""``hepinfer bench load``: K client processes against one server for T seconds.

The server is the embedded one (the launcher ``hepinfer serve`` uses, on free loopback ports), or
``--url`` for one already running on this machine: the load never leaves loopback (a non-loopback
URL is refused).  Bounded: at most ``MAX_CLIENTS`` processes and ``MAX_SECONDS`` seconds.

Each client is its own process (``spawn``) with its own hepinfer Scorer, ``retries=0`` (an error
is counted, not hidden by a retry), calling back to back.  Reported: requests, errors, rows/s,
p50 / p99 latency, and the server's memory (RSS of tritonserver and its python-backend stubs)
before the load, at its peak, and after.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from ...logs import get_logger
from ...urls import TritonUrl

log = get_logger(__name__)

MAX_CLIENTS = 32
MAX_SECONDS = 600.0
COLUMNS = [
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
]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MiB (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total_kb, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
        todo += children.get(p, [])
    return total_kb / 1024


def _client(url: str, model: str, batch: int, seconds: float, seed: int, start, queue) -> None:
    from ...config import InferenceConfig
    from ...models.toy import toy_inputs
    from ...scorer import Scorer

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


def run_load(
    model: str = "bdt",
    batch: int = 64,
    clients: int = 4,
    seconds: float = 10.0,
    url: str | None = None,
    server_pid: int | None = None,
    out_dir=None,
) -> dict:
    if not 1 <= clients <= MAX_CLIENTS:
        raise ConfigError(f"clients must be 1..{MAX_CLIENTS}, got {clients}")
    if not 0 < seconds <= MAX_SECONDS:
        raise ConfigError(f"seconds must be in (0, {MAX_SECONDS:g}], got {seconds}")
    if url is not None and not TritonUrl.parse(url).is_loopback:
        raise ConfigError(f"--url {url}: the load test only runs against a server on this machine (loopback)")
    from contextlib import ExitStack

    from ...models.build import build_all
    from ...serving.server import serve
    from .harness import write_rows

    with ExitStack() as stack:
        if url is None:
            build_all([model])
            server = stack.enter_context(serve([model]))
            url, server_pid = server.url, server.pid
            log.info(f"embedded server at {url} (pid {server_pid})")
        rss = (lambda: tree_rss_mb(server_pid)) if server_pid else (lambda: float("nan"))
        ctx = mp.get_context("spawn")
        start, queue = ctx.Barrier(clients + 1), ctx.Queue()
        procs = [
            ctx.Process(target=_client, args=(url, model, batch, seconds, k, start, queue), daemon=True)
            for k in range(clients)
        ]
        for p in procs:
            p.start()
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
        results = [queue.get(timeout=seconds + 300) for _ in procs]
        elapsed = time.perf_counter() - t0
        done.set()
        sampler.join()
        for p in procs:
            p.join(timeout=30)
        after = rss()
    lat = np.array([x for r in results for x in r[0]]) * 1e3
    errors = sum(r[1] for r in results)
    row = {
        "model": model,
        "batch": batch,
        "clients": clients,
        "seconds": seconds,
        "requests": int(lat.size),
        "errors": errors,
        "rows_per_s": lat.size * batch / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "server_rss_mb_before": before,
        "server_rss_mb_peak": max(peak[0], after),
        "server_rss_mb_after": after,
        "first_error": next((r[2] for r in results if r[2]), ""),
    }
    if out_dir:
        write_rows(
            [row], out_dir, f"load_{model}", f"Load: {clients} clients x {seconds:g} s, {model} batch {batch}", COLUMNS
        )
        plot_latencies(
            lat, Path(out_dir) / f"load_{model}.png", f"{model} batch {batch}, {clients} clients x {seconds:g} s"
        )
    return row


def plot_latencies(lat_ms, path, title: str) -> None:
    """Histogram of request latencies with p50 and p99 marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    if len(lat_ms):
        ax.hist(lat_ms, bins=50, color="tab:blue")
        for q, style in ((50, "--"), (99, ":")):
            v = float(np.percentile(lat_ms, q))
            ax.axvline(v, color="k", linestyle=style, label=f"p{q} {v:.1f} ms")
        ax.legend()
    ax.set_xlabel("latency [ms]")
    ax.set_ylabel("requests")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
