"""Physics figures: ROC curves, score distributions, learning curves and the example processor's
histograms (CMS style, mplhep)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hepinfer.figures.figure import DPI, figure, save


# -- physics -------------------------------------------------------------------------------------
def roc(curves: dict, path, title: str = "top vs QCD") -> Path:
    """``curves``: name -> (signal efficiencies, background efficiencies, AUC), a point per threshold.
    Background rejection against signal efficiency, log scale."""
    fig, axes = figure(5.5, 4.5)
    ax = axes[0][0]
    for name, (eff_s, eff_b, area) in curves.items():
        eff_s, eff_b = np.asarray(eff_s, dtype=np.float64), np.asarray(eff_b, dtype=np.float64)
        ok = eff_b > 0
        ax.plot(eff_s[ok], 1.0 / eff_b[ok], label=f"{name} (AUC {area:.4f})")
    ax.set_yscale("log")
    ax.set_xlabel("signal efficiency (top)")
    ax.set_ylabel("background rejection 1/$\\epsilon_B$ (QCD)")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title)
    ax.legend()
    return save(fig, path, dpi=120)


def analysis_plots(
    hists: dict, folder, models: Iterable[str], cms_taggers: Iterable[str] = (), pairs: dict | None = None
) -> list[Path]:
    """The example processor's histograms in the CMS style of mplhep: P(top) per model, the soft-drop
    mass of tagged / untagged jets per model, and, where the files carry CMS's own tagger scores
    (``cms_taggers``), those beside hepinfer's (``score_cms.png``) and, from ``pairs`` ({model:
    {CMS tagger: (jets, 2) array of (model score, CMS score)}}), a scatter of the two per model
    (``score_vs_cms_<model>.png``)."""
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
    for m, per_tagger in (pairs or {}).items():
        if per_tagger:
            written.append(score_scatter(m, per_tagger, folder / f"score_vs_cms_{m}.png"))
    return written


def score_scatter(model: str, per_tagger: dict, path) -> Path:
    """One panel per CMS tagger: the model's score against CMS's, one point per jet both scored."""
    fig, axes = figure(4.2 * len(per_tagger), 4.0, cols=len(per_tagger))
    for ax, (tagger, both) in zip(axes[0], per_tagger.items()):
        both = np.asarray(both, dtype=np.float64).reshape(-1, 2)
        ax.scatter(both[:, 1], both[:, 0], s=10, alpha=0.6)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"CMS {tagger}")
        ax.set_ylabel(f"{model} score")
        ax.set_title(f"{len(both)} jets", fontsize=9)
        ax.grid(alpha=0.3)
    return save(fig, path, dpi=100)


def score_distributions(labels, values, path, *, title: str, working_points: dict | None = None) -> Path:
    """Score distributions of top and QCD jets (normalised, log scale), with the working points' thresholds."""
    fig, axes = figure(5.5, 4.0)
    ax = axes[0][0]
    labels = np.asarray(labels).astype(bool)
    values = np.asarray(values, dtype=np.float64)
    bins = np.linspace(0.0, 1.0, 51) if values.min() >= 0 and values.max() <= 1 else 50
    ax.hist(values[labels], bins=bins, histtype="step", density=True, lw=1.5, label="top")
    ax.hist(values[~labels], bins=bins, histtype="step", density=True, lw=1.5, label="QCD")
    for i, (name, wp) in enumerate((working_points or {}).items()):
        ax.axvline(wp["threshold"], color=f"C{i + 2}", ls="--", lw=0.8, label=f"{name}: {wp['threshold']:.4g}")
    ax.set_yscale("log")
    ax.set_xlabel("score P(top)")
    ax.set_ylabel("jets (normalised)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save(fig, path, dpi=100)


def learning_curve(curve: dict, path, *, title: str) -> Path:
    """A training's learning curve: ``curve`` {x_label, x, series: {name: values}, best, y_label?}."""
    fig, axes = figure(5.5, 3.8)
    ax = axes[0][0]
    marker = "o-" if len(curve["x"]) <= 60 else "-"
    for name, values in curve["series"].items():
        ax.plot(curve["x"], values, marker, ms=3, label=name)
    if curve.get("best") is not None:
        ax.axvline(curve["best"], color="grey", ls=":", lw=1, label=f"kept: {curve['best']}")
    ax.set_xlabel(curve["x_label"])
    ax.set_ylabel(curve.get("y_label", "loss"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, path, dpi=100)
