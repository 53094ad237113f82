"""``hepinfer bench configs``: the SageMaker study's tuning table — per model, the server with the
base configuration, with dynamic batching, with two instances, and with both — inferences/s and
p50 / p99 latency with ``concurrency`` callers each sending small batches (``batch`` rows), as many
workers with small chunks do.  Each configuration is a fresh server serving that model alone.
"""

from __future__ import annotations

from hepinfer.figures import bar_chart
from hepinfer.operations.bench.study import Point, Study

CONFIGS = {  # name: (instances, dynamic batching)
    "base": (1, False),
    "dynamic batching": (1, True),
    "2 instances": (2, False),
    "both": (2, True),
}
COLUMNS = ("model", "config", "batch", "concurrency", "rows_per_s", "p50_ms", "p99_ms", "calls")


def points(p):
    for m in p.models:
        for name, (instances, dynamic) in CONFIGS.items():
            server = dict(
                models=[m.name], instances=instances, dynamic_batching=dynamic, max_queue_delay_us=p.max_queue_delay_us
            )
            row = {"model": m.name, "config": name, "batch": p.batch, "concurrency": p.concurrency}
            yield Point(row, server, m)


def measure(run, point):
    m = point.model
    return run.loop(run.scorer(m), run.inputs(m, run.params.batch, seed=1), run.params.concurrency)


def batching_gain(rows: list[dict]) -> dict[str, float]:
    """Dynamic batching on / off (one instance), per model."""
    by = {(r["model"], r["config"]): r["rows_per_s"] for r in rows}
    return {m: by[(m, "dynamic batching")] / by[(m, "base")] for m, c in by if c == "base"}


STUDY = Study(
    name="configs",
    help="base / dynamic batching / 2 instances / both, many callers with small batches",
    columns=COLUMNS,
    params=dict(models=("particlenet", "bdt"), batch=4, concurrency=8, duration_s=3.0, max_queue_delay_us=2000),
    quick=dict(models=("bdt",), duration_s=1.0),
    points=points,
    measure=measure,
    output="configs",
    title="Server configurations ({concurrency} callers x {batch} rows)",
    plot=lambda rows, path, p: bar_chart(
        rows, path, lambda r: f"{r['model']}: {r['config']}", title=f"{p.concurrency} callers x {p.batch} rows"
    ),
    summary=lambda rows, p: [
        "dynamic batching on / off (target >= 2.0): "
        + ", ".join(f"{m} {g:.2f}" for m, g in batching_gain(rows).items())
    ],
)
