"""``hepinfer bench models``: throughput of each model against batch size, locally (onnxruntime /
XGBoost, one thread: one CPU core) and on the embedded Triton server (one instance per core)
against batch size and concurrency.  The best local figure per model is this machine's
one-core ceiling.  Toy inputs (:mod:`hepinfer.models.toy`): the engines' cost does not depend on the values.
"""

from __future__ import annotations

from hepinfer.figures import line_chart
from hepinfer.operations.bench.study import Point, Study, cores

COLUMNS = ("model", "path", "batch", "concurrency", "rows_per_s", "p50_ms", "p99_ms", "calls")


def points(p):
    server = dict(models=[m.name for m in p.models], instances=cores())
    for m in p.models:
        for b in [b for b in p.batches if b <= m.max_batch_size]:
            yield Point({"model": m.name, "path": "local (1 thread)", "batch": b, "concurrency": 1}, server, m)
            for c in p.concurrency:
                row = {"model": m.name, "path": f"triton ({cores()} instances)", "batch": b, "concurrency": c}
                yield Point(row, server, m)


def measure(run, point):
    m, b, c = point.model, point.row["batch"], point.row["concurrency"]
    local = point.row["path"].startswith("local")
    return run.loop(run.scorer(m, mode="local", threads=1) if local else run.scorer(m), run.inputs(m, b, seed=b), c)


def ceiling(rows: list[dict]) -> dict[str, float]:
    """Best local rows/s per model: the one-core ceiling."""
    out: dict[str, float] = {}
    for r in rows:
        if r["path"].startswith("local"):
            out[r["model"]] = max(out.get(r["model"], 0.0), r["rows_per_s"])
    return out


def plot(rows, path, p):
    line_chart(
        rows,
        path,
        "batch",
        "rows_per_s",
        series=lambda r: f"{r['path']}, c={r['concurrency']}",
        panel=lambda r: r["model"],
        xlabel="batch size",
        ylabel="inferences/s",
        log=True,
    )


STUDY = Study(
    name="models",
    help="throughput vs batch size and concurrency, local and Triton",
    columns=COLUMNS,
    params=dict(
        models=("particlenet", "resnet", "resnet50", "bdt"),
        batches=(1, 16, 64, 256),
        concurrency=(1, 2, 4),
        duration_s=2.0,
    ),
    quick=dict(models=("particlenet", "bdt"), batches=(1, 64), concurrency=(1, 2), duration_s=0.5),
    points=points,
    measure=measure,
    output="models",
    title="Throughput against batch size and concurrency",
    plot=plot,
    summary=lambda rows, p: [
        "one-core ceiling (best local rows/s): " + ", ".join(f"{m} {v:,.0f}" for m, v in ceiling(rows).items())
    ],
)
