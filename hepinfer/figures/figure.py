"""The one way hepinfer draws: ``matplotlib.figure.Figure`` objects drawn and saved directly (no
pyplot, no ``matplotlib.use``), so making a plot never changes the backend of the caller's notebook
or leaves a figure open in it."""

from __future__ import annotations

import io
from pathlib import Path

DPI = 80


def figure(width: float, height: float, rows: int = 1, cols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(rows, cols, squeeze=False)


def save(fig, path, dpi: int = DPI, tight: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path


def png_bytes(fig, dpi: int = 70) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
