"""A fleet's run over time: its recorded history (``history.jsonl`` in the run directory, written by
:func:`.status.append_history`) read back, and drawn as a self-contained HTML page (inline SVG, no
script, no external file).  The PNG of the same panels is drawn by
:func:`hepinfer.figures.timeline_png`; ``hepinfer fleet status --timeline DIR`` and
``hepinfer fleet up --timeline DIR`` write both.

Panels, against seconds since the first sample: the replicas in rotation (and the target), the
autoscaler's metric (the load), the replicas' requests/s, their queue milliseconds per request.
Scaling decisions are vertical lines on every panel (up green, down red, replace / restart orange,
saturated / admitting purple); holds are listed in the table only.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from hepinfer.errors import ConfigError
from hepinfer.operations.fleet.status import HISTORY, STATUS_WINDOW_S, find_status

# (key of a sample, the panel's title)
PANELS = (
    ("replicas", "replicas in rotation (dashed: target)"),
    ("value", "load: the autoscaler's metric"),
    ("requests_per_s", f"requests/s at the replicas ({STATUS_WINDOW_S:g} s window)"),
    ("queue_ms", f"queue ms per request ({STATUS_WINDOW_S:g} s window)"),
)
COLOURS = {
    "up": "#2a9d2a",
    "down": "#d03030",
    "replace": "#e08a00",
    "restart": "#e08a00",
    "saturated": "#8a2be2",
    "admitting": "#8a2be2",
}


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

    @property
    def scaling(self) -> list[dict]:
        """The decisions drawn as lines (every action but hold)."""
        return [d for d in self.decisions if d["action"] in COLOURS]


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


# -- HTML ------------------------------------------------------------------------------------------
_W, _H, _LEFT, _BOTTOM, _TOP = 760, 130, 56, 22, 18


def _points(xs, ys, sx, sy, step: bool) -> list[str]:
    """Polylines through (x, y), broken where y is None; ``step``: horizontal then vertical."""
    lines, current, last = [], [], None
    for x, y in zip(xs, ys):
        if y is None:
            if current:
                lines.append(" ".join(current))
            current, last = [], None
            continue
        if step and last is not None:
            current.append(f"{sx(x):.1f},{sy(last):.1f}")
        current.append(f"{sx(x):.1f},{sy(y):.1f}")
        last = y
    if current:
        lines.append(" ".join(current))
    return lines


def _panel(timeline: Timeline, key: str, title: str, span: float) -> str:
    xs, ys = timeline.series(key)
    values = [y for y in ys if y is not None]
    if key == "replicas":
        values += [s.get("target") or 0 for s in timeline.samples]
    top = max(values, default=0) or 1.0
    top *= 1.1

    def sx(x):
        return _LEFT + (_W - _LEFT - 10) * x / span

    def sy(y):
        return _TOP + (_H - _TOP - _BOTTOM) * (1 - y / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" data-panel="{key}">',
        f'<text x="{_LEFT}" y="12" font-size="11">{html.escape(title)}</text>',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{_W - _LEFT - 10}" height="{_H - _TOP - _BOTTOM}" '
        'fill="none" stroke="#999"/>',
        f'<text x="{_LEFT - 4}" y="{_TOP + 8}" font-size="10" text-anchor="end">{top / 1.1:.3g}</text>',
        f'<text x="{_LEFT - 4}" y="{_H - _BOTTOM}" font-size="10" text-anchor="end">0</text>',
        f'<text x="{_W - 10}" y="{_H - 6}" font-size="10" text-anchor="end">{span:.0f} s</text>',
    ]
    for d in timeline.scaling:
        x = sx(d["time"] - timeline.t0)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_H - _BOTTOM}" stroke="{COLOURS[d["action"]]}" '
            f'stroke-width="1" data-action="{d["action"]}"><title>{html.escape(d.get("text", ""))}</title></line>'
        )
    if key == "replicas":
        _, targets = timeline.series("target")
        for line in _points(xs, targets, sx, sy, step=True):
            parts.append(f'<polyline points="{line}" fill="none" stroke="#888" stroke-dasharray="4 3"/>')
    for line in _points(xs, ys, sx, sy, step=key == "replicas"):
        parts.append(f'<polyline points="{line}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def timeline_html(timeline: Timeline, title: str = "hepinfer fleet") -> str:
    """The timeline as one HTML page: a panel per :data:`PANELS` entry and the table of decisions."""
    span = max((timeline.samples[-1]["time"] - timeline.t0) if timeline.samples else 0.0, 1.0)
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
            *(_panel(timeline, key, name, span) for key, name in PANELS),
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
