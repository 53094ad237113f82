"""Every figure hepinfer draws: analysis histograms, ROC curves, benchmark charts, the panel's
live throughput, the plan's placement and the fleet's timeline.

One rule for all of them (:mod:`.figure`): figures are ``matplotlib.figure.Figure`` objects drawn
and saved directly (no pyplot, no ``matplotlib.use``), so making a plot never changes the backend of
the caller's notebook or leaves a figure open in it.  Each function writes a PNG and returns its
path (or the PNG's bytes for the panel).  matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

from hepinfer.figures.charts import (
    bar_chart,
    client_chart,
    latency_histogram,
    line_chart,
    throughput_and_ratios,
    throughput_latency,
    throughput_png,
)
from hepinfer.figures.figure import DPI, figure, png_bytes, save
from hepinfer.figures.fleet_timeline import fleet_bench_png, timeline_png
from hepinfer.figures.physics import analysis_plots, learning_curve, roc, score_distributions
from hepinfer.figures.planning import plan_figure

__all__ = [
    "DPI",
    "analysis_plots",
    "bar_chart",
    "client_chart",
    "figure",
    "fleet_bench_png",
    "latency_histogram",
    "learning_curve",
    "line_chart",
    "plan_figure",
    "png_bytes",
    "roc",
    "save",
    "score_distributions",
    "throughput_and_ratios",
    "throughput_latency",
    "throughput_png",
    "timeline_png",
]
