"""A fleet's run over time: its recorded history (``history.jsonl`` in the run directory, written by
:func:`.status.append_history`) read back, and drawn by :func:`hepinfer.figures.timeline_png`: a PNG,
and a self-contained HTML page (that PNG inline, no script, no external file) with the table of every
decision.  ``hepinfer fleet status --timeline DIR`` and ``hepinfer fleet up --timeline DIR`` write both.

Panels, against seconds since the first sample: the replicas in rotation (and the target), the
autoscaler's metric (the load), the replicas' requests/s, their queue milliseconds per request.
Scaling decisions are vertical lines on every panel (up green, down red, replace / restart orange,
saturated / admitting purple); holds are listed in the table only.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from hepinfer.errors import ConfigError
from hepinfer.operations.fleet.status import HISTORY, STATUS_WINDOW_S, find_status

SERIES = ("replicas", "target", "value", "requests_per_s", "queue_ms")  # the keys of a sample drawn


@dataclass
class Timeline:
    """``samples``: the history's lines (time, replicas, target, requests_per_s, queue_ms, metric,
    value, saturated); ``decisions``: every decision they carry, in order."""

    samples: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)

    @property
    def t0(self) -> float:
        return self.samples[0]["time"] if self.samples else 0.0

    def between(self, start: float, end: float) -> Timeline:
        """The samples and decisions from ``start`` to ``end`` (Unix times)."""
        return Timeline(
            [s for s in self.samples if start <= s["time"] <= end],
            [d for d in self.decisions if start <= d["time"] <= end],
        )

    def series(self, key: str, t0: float | None = None) -> tuple[list[float], list[float | None]]:
        """(seconds since ``t0`` (default: the first sample), values of ``key``; None: no value)."""
        t0 = self.t0 if t0 is None else t0
        return [s["time"] - t0 for s in self.samples], [s.get(key) for s in self.samples]


def find_history(run_dir=None) -> Path:
    """``history.jsonl`` of ``run_dir``, else of the newest fleet under ``$HEPINFER_HOME/runs``."""
    path = find_status(run_dir).with_name(HISTORY)
    if not path.is_file():
        raise ConfigError(f"{path.parent} has no {HISTORY}: the fleet recorded no history")
    return path


def read_history(path) -> Timeline:
    """The history at ``path`` (a ``history.jsonl`` or a fleet's run directory).  A line cut short
    (the fleet's process killed while writing) is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / HISTORY
    if not path.is_file():
        raise ConfigError(f"no fleet history at {path}")
    out = Timeline()
    for line in path.read_text().splitlines():
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        if not isinstance(sample, dict) or "time" not in sample:
            continue
        out.decisions += sample.pop("decisions", [])
        out.samples.append(sample)
    return out


# -- drawn ---------------------------------------------------------------------------------------
def _figure_data(timeline: Timeline) -> tuple[dict, list[tuple[float, str]]]:
    """(series, decisions) of :func:`hepinfer.figures.timeline_png`: seconds since the first sample."""
    series = {key: timeline.series(key) for key in SERIES}
    return series, [(d["time"] - timeline.t0, d["action"]) for d in timeline.decisions]


def write_png(timeline: Timeline, path, title: str = "") -> Path:
    """The timeline's panels as a PNG at ``path``."""
    from hepinfer.figures import timeline_png

    return timeline_png(*_figure_data(timeline), path, title=title, window_s=STATUS_WINDOW_S)


def timeline_html(timeline: Timeline, title: str = "hepinfer fleet") -> str:
    """The timeline as one HTML page: the panels (the PNG, inline) and the table of decisions."""
    from hepinfer.figures import DPI, png_bytes
    from hepinfer.figures.fleet_timeline import timeline_figure

    png = png_bytes(timeline_figure(*_figure_data(timeline), window_s=STATUS_WINDOW_S), dpi=DPI)
    rows = "\n".join(
        f"<tr><td>{d['time'] - timeline.t0:.1f}</td><td>{html.escape(d['action'])}</td>"
        f"<td>{d.get('replicas', '')}</td><td>{d.get('target', '')}</td><td>{html.escape(d.get('text', ''))}</td></tr>"
        for d in timeline.decisions
    )
    first = timeline.samples[0] if timeline.samples else {}
    what = f"{len(timeline.samples)} samples, {len(timeline.decisions)} decisions"
    if first.get("metric"):
        what += f"; metric {html.escape(str(first['metric']))}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>',
            '<body style="font-family: sans-serif">',
            f"<h3>{html.escape(title)}</h3><p>{what}</p>",
            f'<img alt="the fleet\'s timeline" src="data:image/png;base64,{base64.b64encode(png).decode()}">',
            '<table border="1" cellspacing="0" cellpadding="3" style="font-size: 12px">',
            "<tr><th>s</th><th>action</th><th>replicas</th><th>target</th><th>decision</th></tr>",
            rows,
            "</table></body></html>",
        ]
    )


def write_html(timeline: Timeline, path, title: str = "hepinfer fleet") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(timeline_html(timeline, title))
    return path
