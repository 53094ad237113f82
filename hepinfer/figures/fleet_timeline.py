"""The fleet's figures (drawn as :mod:`.figure` draws: a ``Figure`` saved directly, no pyplot): a
fleet's timeline from its recorded history, and the ``hepinfer bench fleet`` timelines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hepinfer.figures.figure import figure, save

if TYPE_CHECKING:  # the fleet package is imported when a fleet figure is drawn, not with hepinfer.figures
    from hepinfer.operations.fleet.timeline import Timeline


def _decision_lines(ax, timeline: Timeline, t0: float) -> None:
    from hepinfer.operations.fleet.timeline import COLOURS

    for d in timeline.scaling:
        ax.axvline(d["time"] - t0, color=COLOURS[d["action"]], linewidth=0.8, alpha=0.7)


def timeline_png(timeline: Timeline, path, title: str = "") -> Path:
    """A panel per :data:`~hepinfer.operations.fleet.timeline.PANELS` entry against seconds since the
    first sample; scaling decisions as vertical lines (up green, down red, replace orange)."""
    from hepinfer.operations.fleet.timeline import PANELS

    fig, axes = figure(8, 1.9 * len(PANELS), len(PANELS), 1)
    span = max((timeline.samples[-1]["time"] - timeline.t0) if timeline.samples else 0.0, 1.0)
    for (key, name), row in zip(PANELS, axes):
        ax = row[0]
        xs, ys = timeline.series(key)
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if key == "replicas":
            _, targets = timeline.series("target")
            tp = [(x, y) for x, y in zip(xs, targets) if y is not None]
            if tp:
                ax.step(*zip(*tp), where="post", color="grey", linestyle="--", label="target")
            if pts:
                ax.step(*zip(*pts), where="post", label="in rotation")
            ax.legend(fontsize=6, loc="upper left")
        elif pts:
            ax.plot(*zip(*pts))
        _decision_lines(ax, timeline, timeline.t0)
        ax.set_ylabel(name, fontsize=7)
        ax.set_ylim(bottom=0)
        ax.set_xlim(0, span)
    axes[-1][0].set_xlabel("seconds")
    if title:
        axes[0][0].set_title(title, fontsize=9)
    return save(fig, path)


def fleet_bench_png(rows: Sequence[dict], path, max_replicas: int) -> Path:
    """``hepinfer bench fleet``: rows/s (the workers' completions, per second), replicas in rotation
    and queue ms per request against the seconds of each run, a line per (setup, workers); the
    autoscaled runs' scale-ups (+) and scale-downs (-) marked on the replicas panel."""
    panels = (
        ("rows_t", "rows_per_s", "rows/s (workers)"),
        ("t", "replicas", "replicas in rotation"),
        ("t", "queue_ms", "queue ms per request"),
    )
    fig, axes = figure(8, 2.1 * len(panels), len(panels), 1)
    for k, r in enumerate(rows):
        run, colour = r.get("timeline") or {}, f"C{k % 10}"
        label = f"{r['setup']}, {r['workers']} worker{'s' if r['workers'] > 1 else ''}"
        style = "-" if r["setup"] == "autoscaled" else ":"
        for (x, y, _), row in zip(panels, axes):
            pts = [(a, b) for a, b in zip(run.get(x, []), run.get(y, [])) if b is not None and a >= 0]
            if not pts:
                continue
            draw = row[0].step if y == "replicas" else row[0].plot
            draw(
                *zip(*pts), linestyle=style, color=colour, label=label, **({"where": "post"} if y == "replicas" else {})
            )
        for t, action in run.get("decisions", []):
            axes[1][0].annotate("+" if action == "up" else "-", (t, 0.2), color=colour, fontsize=9, ha="center")
    for (_, _, name), row in zip(panels, axes):
        row[0].set_ylabel(name, fontsize=7)
        row[0].set_ylim(bottom=0)
        row[0].set_xlim(left=0)
    axes[0][0].legend(fontsize=6)
    axes[-1][0].set_xlabel("seconds since the load started")
    axes[0][0].set_title(f"dotted: one fixed replica; solid: autoscaled, 1 to {max_replicas} replicas", fontsize=9)
    return save(fig, path)
