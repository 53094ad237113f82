"""A tagger's performance across jet pT: AUC and background rejection per pT bin."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hepinfer.figures.figure import figure, save


def pt_bins(rows: Sequence[dict], path, *, title: str) -> Path:
    """AUC (with its bootstrap uncertainty) and 1/eps_B at eps_S = 50 % against jet pT, one point per
    bin spanning its width (log pT axis).  ``rows``: {pt: [lo, hi], auc, auc_error, rejection_at_50, rejection_bounded};
    a bin without figures (``auc`` None) is left out, a rejection bounded by the bin's QCD jets drawn
    as an open marker (a lower bound)."""
    fig, axes = figure(9.0, 3.6, cols=2)
    auc_ax, rej_ax = axes[0]
    shown = [r for r in rows if r.get("auc") is not None]
    for row in shown:
        lo, hi = row["pt"]
        centre = (lo * hi) ** 0.5  # the middle of the bin on the log axis
        half = [[centre - lo], [hi - centre]]
        auc_ax.errorbar(centre, row["auc"], xerr=half, yerr=row.get("auc_error") or 0, fmt="o", color="C0", ms=4)
        bounded = "rejection_at_50" in row.get("rejection_bounded", ())
        rej_ax.errorbar(
            centre,
            row["rejection_at_50"],
            xerr=half,
            fmt="o",
            color="C1",
            ms=4,
            mfc="none" if bounded else "C1",
        )
    from matplotlib.ticker import NullFormatter

    edges = sorted({e for r in rows for e in r["pt"]})
    for ax, label in ((auc_ax, "AUC"), (rej_ax, "background rejection 1/$\\epsilon_B$ at $\\epsilon_S$ = 50 %")):
        ax.set_xscale("log")
        if edges:
            ax.set_xlim(edges[0] * 0.9, edges[-1] * 1.1)
            ax.set_xticks(edges, [f"{e:g}" for e in edges])  # the bin edges, not the log scale's decades
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("fat-jet $p_T$ [GeV]")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    if shown:
        rej_ax.set_yscale("log")
    if any("rejection_at_50" in r.get("rejection_bounded", ()) for r in shown):
        rej_ax.set_title("open marker: no QCD jet passes, a lower bound", fontsize=8)
    missing = len(rows) - len(shown)
    note = f" ({missing} bin{'s' if missing > 1 else ''} with too few jets left out)" if missing else ""
    fig.suptitle(title + note, fontsize=10)
    return save(fig, path, dpi=100)
