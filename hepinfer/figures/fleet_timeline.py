"""The fleet's figures (drawn as :mod:`.figure` draws: a ``Figure`` saved directly, no pyplot): a
fleet's timeline from the series of its recorded history, and the ``hepinfer bench fleet`` timelines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from hepinfer.figures.figure import figure, save

# (key of a series, the panel's title; ``{window}``: the seconds the fleet's rates are taken over)
PANELS = (
    ("replicas", "replicas in rotation (dashed: target)"),
    ("value", "load: the autoscaler's metric"),
    ("requests_per_s", "requests/s at the replicas{window}"),
    ("queue_ms", "queue ms per request{window}"),
)
# a scaling decision's line; decisions of other actions (hold) are not drawn
COLOURS = {
    "up": "#2a9d2a",
    "down": "#d03030",
    "replace": "#e08a00",
    "restart": "#e08a00",
    "saturated": "#8a2be2",
    "admitting": "#8a2be2",
}


def _points(xs, ys) -> list[tuple[float, float]]:
    return [(x, y) for x, y in zip(xs, ys) if y is not None]


def timeline_figure(
    series: Mapping[str, tuple[Sequence[float], Sequence[float | None]]],
    decisions: Sequence[tuple[float, str]],
    *,
    title: str = "",
    window_s: float | None = None,
):
    """A panel per :data:`PANELS` entry: ``series`` {key: (seconds, values; None: no value)} for each
    panel's key and ``target`` (dashed on the replicas panel); ``decisions`` (seconds, action) as
    vertical lines coloured by :data:`COLOURS` on every panel.  ``window_s`` goes into the rates' titles."""
    window = f" ({window_s:g} s window)" if window_s else ""
    fig, axes = figure(8, 1.9 * len(PANELS), len(PANELS), 1)
    span = max((max(xs, default=0.0) for xs, _ in series.values()), default=0.0)
    for (key, name), row in zip(PANELS, axes):
        ax = row[0]
        pts = _points(*series.get(key, ((), ())))
        if key == "replicas":
            target = _points(*series.get("target", ((), ())))
            if target:
                ax.step(*zip(*target), where="post", color="grey", linestyle="--", label="target")
            if pts:
                ax.step(*zip(*pts), where="post", label="in rotation")
            ax.legend(fontsize=6, loc="upper left")
        elif pts:
            ax.plot(*zip(*pts))
        for t, action in decisions:
            if action in COLOURS:
                ax.axvline(t, color=COLOURS[action], linewidth=0.8, alpha=0.7)
        ax.set_ylabel(name.format(window=window), fontsize=7)
        ax.set_ylim(bottom=0)
        ax.set_xlim(0, max(span, 1.0))
    axes[-1][0].set_xlabel("seconds")
    if title:
        axes[0][0].set_title(title, fontsize=9)
    return fig


def timeline_png(series, decisions, path, *, title: str = "", window_s: float | None = None) -> Path:
    """:func:`timeline_figure` written to ``path``."""
    return save(timeline_figure(series, decisions, title=title, window_s=window_s), path)


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
