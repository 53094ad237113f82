"""Every figure hepinfer draws: analysis histograms, ROC curves, benchmark charts, the panel's
live throughput.

One rule for all of them: figures are ``matplotlib.figure.Figure`` objects drawn and saved directly
(no pyplot, no ``matplotlib.use``), so making a plot never changes the backend of the caller's
notebook or leaves a figure open in it.  Each function writes a PNG and returns its path (or the
PNG's bytes for the panel).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

DPI = 80


def _figure(width: float, height: float, rows: int = 1, cols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(rows, cols, squeeze=False)


def _save(fig, path, dpi: int = DPI, tight: bool = True) -> Path:
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
    fig, axes = _figure(7, 0.8 + 0.32 * len(rows))
    ax = axes[0][0]
    ax.barh(range(len(rows)), [r[value] for r in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)), [label_of(r) for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


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
    fig, axes = _figure(4.5 * len(panels), 3.6, 1, len(panels))
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
    return _save(fig, path)


def latency_histogram(latencies_ms, path, title: str = "") -> Path:
    """Histogram of request latencies with p50 and p99 marked."""
    fig, axes = _figure(6, 3.5)
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
    return _save(fig, path)


# -- physics -------------------------------------------------------------------------------------
def roc(curves: dict, path, title: str = "top vs QCD") -> Path:
    """``curves``: name -> (labels, scores).  Background rejection against signal efficiency, log scale."""
    from .training.metrics import auc, roc_curve

    fig, axes = _figure(5.5, 4.5)
    ax = axes[0][0]
    for name, (labels, scores) in curves.items():
        eff_s, eff_b = roc_curve(labels, scores)
        ok = eff_b > 0
        ax.plot(eff_s[ok], 1.0 / eff_b[ok], label=f"{name} (AUC {auc(labels, scores):.4f})")
    ax.set_yscale("log")
    ax.set_xlabel("signal efficiency (top)")
    ax.set_ylabel("background rejection 1/$\\epsilon_B$ (QCD)")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path, dpi=120)


def analysis_plots(hists: dict, folder, models: Iterable[str], cms_taggers: Iterable[str] = ()) -> list[Path]:
    """The example processor's histograms in the CMS style of mplhep: P(top) per model, the soft-drop
    mass of tagged / untagged jets per model, and, where the files carry CMS's own tagger scores
    (``cms_taggers``), those beside hepinfer's (``score_cms.png``)."""
    import mplhep as hep
    from matplotlib import style
    from matplotlib.figure import Figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models = list(models)
    written = []
    with style.context(hep.style.CMS):
        fig = Figure(figsize=(8, 6))
        ax = fig.subplots()
        for m in models:
            hep.histplot(hists["score"][{"model": m}], ax=ax, label=m)
        ax.set_xlabel("P(top)")
        ax.set_ylabel("fat jets")
        ax.set_yscale("log")
        ax.legend(title="hepinfer")
        written.append(folder / "score.png")
        fig.savefig(written[-1], dpi=DPI, bbox_inches="tight")
        for m in models:
            fig = Figure(figsize=(8, 6))
            ax = fig.subplots()
            for tag in ("tagged", "untagged"):
                hep.histplot(hists["msoftdrop"][{"model": m, "tag": tag}], ax=ax, label=f"{tag}")
            ax.set_xlabel("soft-drop mass [GeV]")
            ax.set_ylabel("fat jets")
            ax.legend(title=m)
            written.append(folder / f"msoftdrop_{m}.png")
            fig.savefig(written[-1], dpi=DPI, bbox_inches="tight")
        cms_taggers = list(cms_taggers)
        if cms_taggers:
            fig = Figure(figsize=(8, 6))
            ax = fig.subplots()
            for m in models:
                hep.histplot(hists["score"][{"model": m}], ax=ax, label=f"hepinfer {m}")
            for tagger in cms_taggers:
                hep.histplot(hists["cms_score"][{"tagger": tagger}], ax=ax, label=f"CMS {tagger}", linestyle="--")
            ax.set_xlabel("top score")
            ax.set_ylabel("fat jets")
            ax.set_yscale("log")
            ax.legend(title="hepinfer and the file's CMS taggers", fontsize="small")
            written.append(folder / "score_cms.png")
            fig.savefig(written[-1], dpi=DPI, bbox_inches="tight")
    return written


# -- the panel -----------------------------------------------------------------------------------
def throughput_png(history) -> bytes:
    """Events/s and seconds per chunk of each round of a run (``Progress`` records), against time."""
    fig, axes = _figure(7, 2.6, 1, 2)
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
