"""Shared pieces of the benchmarks: a bounded closed-loop load, and CSV / markdown / PNG writers."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import numpy as np


def closed_loop(call, inputs, concurrency: int = 1, duration_s: float = 2.0) -> dict:
    """``concurrency`` threads call ``call(inputs)`` back to back for ``duration_s``; returns rows/s
    (inferences/s), calls, and p50 / p99 latency in ms.  One warm-up call per thread first."""
    rows = len(next(iter(inputs.values())))
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[BaseException] = []
    clock = {}

    def set_deadline():  # runs once, when every thread has warmed up, before any is released
        clock["t0"] = time.perf_counter()
        clock["stop_at"] = clock["t0"] + duration_s

    start = threading.Barrier(concurrency + 1, action=set_deadline)

    def worker(k: int):
        try:
            call(inputs)
            start.wait()
            while time.perf_counter() < clock["stop_at"]:
                t0 = time.perf_counter()
                call(inputs)
                latencies[k].append(time.perf_counter() - t0)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(err)
            start.abort()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - clock.get("t0", time.perf_counter())
    if errors:
        raise errors[0]
    lat = np.array([x for per in latencies for x in per]) * 1e3
    calls = len(lat)
    return {
        "rows_per_s": calls * rows / elapsed,
        "calls": calls,
        "p50_ms": float(np.percentile(lat, 50)) if calls else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if calls else float("nan"),
    }


def write_rows(rows: list[dict], out_dir, name: str, title: str, columns=None) -> str:
    """``name``.csv and ``name``.md in ``out_dir``; returns the markdown table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = columns or list(rows[0])
    with open(out_dir / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    table = markdown(rows, columns)
    (out_dir / f"{name}.md").write_text(f"## {title}\n\n{table}\n")
    return table


def markdown(rows: list[dict], columns) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def bar_plot(
    rows: list[dict], path, label_of, value: str = "rows_per_s", ylabel: str = "inferences/s", title: str = ""
) -> None:
    """A horizontal bar chart of ``value`` per row (``label_of(row)`` names the bar), as a PNG."""
    from matplotlib.figure import Figure

    labels = [label_of(r) for r in rows]
    fig = Figure(figsize=(7, 0.8 + 0.32 * len(rows)))
    ax = fig.subplots()
    ax.barh(range(len(rows)), [r[value] for r in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
