"""Benchmark and profile charts, the client study's chart and the panel's live throughput."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hepinfer.figures.figure import figure, png_bytes, save


# -- benchmarks ----------------------------------------------------------------------------------
def bar_chart(
    rows: Sequence[dict],
    path,
    label_of: Callable[[dict], str],
    value: str = "rows_per_s",
    xlabel: str = "inferences/s",
    title: str = "",
) -> Path:
    """A horizontal bar per row: ``row[value]``, named ``label_of(row)``."""
    fig, axes = figure(7, 0.8 + 0.32 * len(rows))
    ax = axes[0][0]
    ax.barh(range(len(rows)), [r[value] for r in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)), [label_of(r) for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=9)
    return save(fig, path)


def line_chart(
    rows: Sequence[dict],
    path,
    x: str,
    y: str,
    series: Callable[[dict], str],
    panel: Callable[[dict], str] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    log: bool = False,
) -> Path:
    """``y`` against ``x``, one line per ``series(row)``, one panel per ``panel(row)`` (if given)."""
    panels = sorted({panel(r) for r in rows}) if panel else [""]
    fig, axes = figure(4.5 * len(panels), 3.6, 1, len(panels))
    for ax, name in zip(axes[0], panels):
        mine = [r for r in rows if not panel or panel(r) == name]
        for label in sorted({series(r) for r in mine}):
            pts = sorted((r[x], r[y]) for r in mine if series(r) == label)
            ax.plot(*zip(*pts), "o-", label=label)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        if name:
            ax.set_title(name)
        ax.set_xlabel(xlabel or x)
        ax.set_ylabel(ylabel or y)
        ax.legend(fontsize=6)
    return save(fig, path)


def throughput_and_ratios(
    rows: Sequence[dict],
    path,
    series: Callable[[dict], str],
    panel: Callable[[dict], str],
    ratios: Sequence[tuple[str, float, float | None]],
    x: str = "batch",
    y: str = "rows_per_s",
    title: str = "",
) -> Path:
    """``y`` against ``x`` (log-log), one line per ``series(row)``, one panel per ``panel(row)``; then
    a panel of horizontal bars, one per ratio ``(label, value, target or None)`` (log scale, each
    target marked by a red tick)."""
    panels = list(dict.fromkeys(panel(r) for r in rows))
    fig, axes = figure(4.2 * len(panels) + 5.5, max(3.6, 0.8 + 0.3 * len(ratios)), 1, len(panels) + 1)
    for ax, name in zip(axes[0], panels):
        mine = [r for r in rows if panel(r) == name]
        for label in dict.fromkeys(series(r) for r in mine):
            pts = sorted((r[x], r[y]) for r in mine if series(r) == label and r[y] > 0)
            if pts:
                ax.plot(*zip(*pts), "o-", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = sorted({r[x] for r in mine})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xticks([], minor=True)
        ax.set_title(name)
        ax.set_xlabel("batch size" if x == "batch" else x)
        ax.set_ylabel("inferences/s" if y == "rows_per_s" else y)
        ax.legend(fontsize=6)
    ax = axes[0][-1]
    shown = [(label, value, target) for label, value, target in ratios if value and value > 0]
    ax.barh(range(len(shown)), [v for _, v, _ in shown], color="tab:blue")
    for k, (_, _, target) in enumerate(shown):
        if target:
            ax.plot([target, target], [k - 0.4, k + 0.4], color="tab:red", linewidth=2)
    ax.set_yticks(range(len(shown)), [label for label, _, _ in shown], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="k", linewidth=0.5)
    ax.set_xlabel("ratio (red: the target)")
    if title:
        fig.suptitle(title, fontsize=9)
    return save(fig, path)


def latency_histogram(latencies_ms, path, title: str = "") -> Path:
    """Histogram of request latencies with p50 and p99 marked."""
    fig, axes = figure(6, 3.5)
    ax = axes[0][0]
    if len(latencies_ms):
        ax.hist(latencies_ms, bins=50, color="tab:blue")
        for q, style in ((50, "--"), (99, ":")):
            v = float(np.percentile(latencies_ms, q))
            ax.axvline(v, color="k", linestyle=style, label=f"p{q} {v:.1f} ms")
        ax.legend()
    ax.set_xlabel("latency [ms]")
    ax.set_ylabel("requests")
    ax.set_title(title, fontsize=9)
    return save(fig, path)


# -- the panel -----------------------------------------------------------------------------------
def throughput_png(history) -> bytes:
    """Events/s and seconds per chunk of each round of a run (``Progress`` records), against time."""
    fig, axes = figure(7, 2.6, 1, 2)
    ax1, ax2 = axes[0]
    t = [p.elapsed_s for p in history]
    ax1.plot(t, [p.round_events / p.round_s if p.round_s else 0 for p in history], "o-")
    ax1.set_xlabel("elapsed [s]")
    ax1.set_ylabel("events/s")
    done, per_chunk = 0, []
    for p in history:
        per_chunk.append(p.round_s / max(1, p.chunks_done - done))
        done = p.chunks_done
    ax2.plot(t, per_chunk, "o-", color="C1")
    ax2.set_xlabel("elapsed [s]")
    ax2.set_ylabel("s per chunk")
    return png_bytes(fig)


# -- the client study ----------------------------------------------------------------------------
def client_chart(rows: Sequence[dict], path, worker_step: str, gpu_rate: float, targets: dict) -> Path:
    """``hepinfer bench client``: µs per jet of each step against jets per call (log-log; a step's
    target dashed in its colour), and one worker's jets/s beside the GPU's rate."""
    fig, axes = figure(11, 4.2, 1, 2)
    ax, bx = axes[0]
    calls = [r for r in rows if isinstance(r.get("jets"), int) and r["step"] != worker_step]
    for i, step in enumerate(dict.fromkeys(r["step"] for r in calls)):
        pts = sorted((r["jets"], r["us_per_jet"]) for r in calls if r["step"] == step)
        ax.plot(*zip(*pts), "o-", color=f"C{i % 10}", label=step)
        if step in targets:
            ax.axhline(targets[step], color=f"C{i % 10}", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("selected jets per call")
    ax.set_ylabel("µs per jet (one core)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6)
    workers = [r for r in rows if r["step"] == worker_step]
    names = [f"one worker\n({r['jets']:,} jets)" for r in workers] + ["one GPU\n(--gpu-rate)"]
    values = [r["jets_per_s"] for r in workers] + [gpu_rate]
    bx.barh(range(len(values)), values, color=["tab:blue"] * len(workers) + ["tab:green"])
    bx.set_yticks(range(len(values)), names, fontsize=7)
    bx.invert_yaxis()
    for r in workers:
        bx.set_title(f"{gpu_rate / r['jets_per_s']:.1f} worker cores per GPU", fontsize=9)
    bx.set_xlabel("jets/s")
    return save(fig, path)


# -- profiles ------------------------------------------------------------------------------------
def throughput_latency(points: Sequence[dict], path, p99_limit_ms: float, title: str = "") -> Path:
    """Throughput against p99 latency of each configuration ``{"model", "throughput", "p99_ms",
    "best", "failed"}`` (log-log), one colour per model, each model's best (``best``) a star, the
    latency limit a dashed line; failed configurations are left out."""
    fig, axes = figure(6.5, 4.2)
    ax = axes[0][0]
    shown = [p for p in points if not p["failed"] and p["throughput"] > 0 and p["p99_ms"] > 0]
    for k, model in enumerate(dict.fromkeys(p["model"] for p in points)):
        colour = f"C{k % 10}"
        mine = [p for p in shown if p["model"] == model]
        ax.scatter([p["p99_ms"] for p in mine], [p["throughput"] for p in mine], color=colour, s=18, label=model)
        for p in (p for p in mine if p["best"]):
            ax.scatter([p["p99_ms"]], [p["throughput"]], color=colour, marker="*", s=220, edgecolors="k", zorder=3)
    ax.axvline(p99_limit_ms, color="k", linestyle="--", linewidth=0.8, label=f"p99 limit {p99_limit_ms:g} ms")
    if shown:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("p99 latency [ms]")
    ax.set_ylabel("rows/s")
    star = "star: each model's best (the fastest under the limit, else the lowest p99)"
    ax.set_title(f"{title}\n{star}" if title else star, fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, path)
