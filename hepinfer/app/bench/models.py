"""``hepinfer bench models``: throughput of each model against batch size, locally (onnxruntime /
XGBoost, one thread: one CPU core) and on the embedded Triton server (one instance per core)
against batch size and concurrency.  The best local figure per model is this machine's
one-core ceiling.  Toy inputs (:mod:`hepinfer.models.toy`): the engines' cost does not depend on the values.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...config import InferenceConfig
from ...logs import get_logger
from ...models import get_spec
from ...models.toy import toy_inputs
from .harness import closed_loop, write_rows

log = get_logger(__name__)

COLUMNS = ["model", "path", "batch", "concurrency", "rows_per_s", "p50_ms", "p99_ms", "calls"]


def run_models(
    models=("particlenet", "resnet50", "bdt"),
    batches=(1, 16, 64, 256),
    concurrency=(1, 2, 4),
    duration_s: float = 2.0,
    out_dir=None,
) -> list[dict]:
    from ...models.build import build_all
    from ...scorer import Scorer
    from ...serving.server import serve

    models = [get_spec(m).name for m in models]
    build_all(models)
    rows = []
    instances = os.cpu_count() or 1
    with serve(models, instances=instances) as server:
        for m in models:
            spec = get_spec(m)
            local = Scorer(m, config=InferenceConfig(mode="local", threads=1))
            remote = Scorer(m, config=InferenceConfig(mode="remote", url=server.url))
            for b in [b for b in batches if b <= spec.max_batch_size]:
                x = toy_inputs(m, b, seed=b)
                r = closed_loop(local, x, 1, duration_s)
                rows.append({"model": m, "path": "local (1 thread)", "batch": b, "concurrency": 1, **r})
                log.info(f"{m} local batch {b}: {r['rows_per_s']:,.0f} rows/s")
                for c in concurrency:
                    r = closed_loop(remote, x, c, duration_s)
                    rows.append(
                        {"model": m, "path": f"triton ({instances} instances)", "batch": b, "concurrency": c, **r}
                    )
                    log.info(f"{m} triton batch {b} concurrency {c}: {r['rows_per_s']:,.0f} rows/s")
            remote.close()
    if out_dir:
        write_rows(rows, out_dir, "models", "Throughput against batch size and concurrency", COLUMNS)
        plot(rows, Path(out_dir) / "models.png")
    return rows


def ceiling(rows: list[dict]) -> dict[str, float]:
    """Best local rows/s per model: the one-core ceiling."""
    out: dict[str, float] = {}
    for r in rows:
        if r["path"].startswith("local"):
            out[r["model"]] = max(out.get(r["model"], 0.0), r["rows_per_s"])
    return out


def plot(rows: list[dict], path) -> None:
    from matplotlib.figure import Figure

    models = sorted({r["model"] for r in rows})
    fig = Figure(figsize=(4.5 * len(models), 3.6))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, m in zip(axes, models):
        for label in sorted({(r["path"], r["concurrency"]) for r in rows if r["model"] == m}):
            pts = sorted(
                (r["batch"], r["rows_per_s"])
                for r in rows
                if (r["path"], r["concurrency"]) == label and r["model"] == m
            )
            ax.plot(*zip(*pts), "o-", label=f"{label[0]}, c={label[1]}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(m)
        ax.set_xlabel("batch size")
        ax.set_ylabel("inferences/s")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
