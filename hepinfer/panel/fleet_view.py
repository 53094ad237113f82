"""The control panel's fleet section: when the panel's server URL is a running fleet's (one started on
this machine, :class:`hepinfer.operations.fleet.Fleet` or ``hepinfer fleet up``), its replicas, the
autoscaler's metric and guard, and the recent decisions, read from the fleet's ``status.json``."""

from __future__ import annotations

import html
import time

from hepinfer.errors import HepinferError
from hepinfer.operations.fleet.status import read_status


def find_fleet(url: str | None) -> dict | None:
    """The status document of the running fleet on this machine whose gRPC URL is ``url``, else None."""
    from hepinfer import paths

    if not url:
        return None
    found = sorted(paths.runs_dir().glob("fleet-*/status.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in found:
        try:
            doc = read_status(run_dir=path.parent)  # "running" only while its process lives
        except (OSError, ValueError, HepinferError):
            continue  # being replaced, or gone
        if doc.get("url") == url and doc.get("state") == "running":
            return doc
    return None


def _num(value, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def fleet_html(doc: dict | None, decisions: int = 5) -> str:
    """The fleet section of the panel for the status document ``doc`` (empty when None)."""
    if not doc:
        return ""
    auto = doc.get("autoscaler", {})
    serving = [r for r in doc.get("replicas", []) if r.get("state") == "serving"]
    guard = "SATURATED" if auto.get("saturated") else "admitting"
    rows = "".join(
        f"<tr><td>{html.escape(r['name'])}</td><td>{html.escape(r['state'])}</td>"
        f"<td>{_num(r.get('requests_per_s'))}</td><td>{_num(r.get('queue_ms'))}</td></tr>"
        for r in doc.get("replicas", [])
    )
    recent = "".join(
        f"<li>{time.strftime('%H:%M:%S', time.localtime(d['time']))} {html.escape(d['text'])} &rarr; {d['target']}</li>"
        for d in doc.get("decisions", [])[-decisions:][::-1]
    )
    return (
        f"<div class='hepinfer-fleet' data-replicas='{len(serving)}'>"
        f"<b>fleet</b>: {len(serving)} replicas in rotation, target {doc.get('target')} "
        f"(min {doc.get('min_replicas')}, max {doc.get('max_replicas')}); "
        f"{html.escape(str(auto.get('metric')))} {_num(auto.get('value'), '{:.3g}')} "
        f"(threshold {auto.get('threshold')}); front {guard}"
        "<table style='font-size: 11px'><tr><th>replica</th><th>state</th><th>req/s</th><th>queue ms</th></tr>"
        f"{rows}</table>"
        + (f"<ul class='hepinfer-fleet-decisions' style='font-size: 11px'>{recent}</ul>" if recent else "")
        + "</div>"
    )
