"""The figure of ``hepinfer plan``: which model runs on which device, and how much of each device's
utilisation and memory it takes, with the headroom left (drawn as :mod:`.figure` draws: a
``Figure`` saved directly, no pyplot)."""

from __future__ import annotations

from pathlib import Path

from hepinfer.figures.figure import figure, save

HEADROOM = "#e6e6e6"


def plan_figure(plan, path) -> Path:
    """Two panels, a bar per device: utilisation (of the GPU or slice, of the CPU cores) and memory
    (of what the plan may use), a segment per model; modelled segments are hatched."""
    devices = plan.devices
    models = list(dict.fromkeys([*plan.demand, *(p.model for p in plan.placements)]))
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    fig, axes = figure(10, 1.4 + 0.45 * max(len(devices), 1), 1, 2)
    panels = (
        ("utilisation (of the device)", lambda p, d: p.share / d.capacity, lambda d: 1.0),
        ("memory (of the device's, less the margin kept free)", lambda p, d: p.memory_bytes, plan.usable_memory),
    )
    for ax, (title, amount, capacity) in zip(axes[0], panels):
        for row, d in enumerate(devices):
            cap = capacity(d) or 1.0
            left = 0.0
            for p in plan.on(d):
                width = amount(p, d) / cap
                ax.barh(
                    row,
                    width,
                    left=left,
                    color=colours[p.model],
                    hatch="//" if p.modelled else None,
                    edgecolor="white",
                )
                if width > 0.15:
                    ax.text(left + width / 2, row, p.model, ha="center", va="center", fontsize=7, color="white")
                left += width
            if left < 1:
                ax.barh(row, 1 - left, left=left, color=HEADROOM, edgecolor="white")
            if left < 0.85:
                ax.text(
                    left + (1 - left) / 2, row, f"{100 * (1 - left):.0f} % free", ha="center", va="center", fontsize=7
                )
        ax.set_yticks(range(len(devices)), [d.name for d in devices], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel(title, fontsize=8)
    from matplotlib.patches import Patch

    handles = [Patch(color=colours[m], label=m) for m in models]
    handles.append(Patch(facecolor="white", edgecolor="grey", hatch="//", label="modelled"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False)
    status = (
        "demand met"
        if plan.feasible
        else "demand NOT met: " + ", ".join(f"{s.model} {100 * s.possible / s.demand:.0f} %" for s in plan.shortfalls)
    )
    fig.suptitle(f"serving plan: {status}", fontsize=9, y=0.02, va="bottom")
    fig.tight_layout(rect=(0, 0.05, 1, 0.9))
    return save(fig, path, tight=False)
