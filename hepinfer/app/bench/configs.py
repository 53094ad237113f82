"""``hepinfer bench configs``: the SageMaker study's tuning table — per model, the server with the
base configuration, with dynamic batching, with two instances, and with both — inferences/s and
p50 / p99 latency with ``concurrency`` callers each sending small batches (``batch`` rows), as many
workers with small chunks do.
"""

from __future__ import annotations

from pathlib import Path

from ...config import InferenceConfig
from ...logs import get_logger
from ...models import get_spec
from ...models.toy import toy_inputs
from .harness import bar_plot, closed_loop, write_rows

log = get_logger(__name__)

CONFIGS = {  # name: (instances, dynamic batching)
    "base": (1, False),
    "dynamic batching": (1, True),
    "2 instances": (2, False),
    "both": (2, True),
}
COLUMNS = ["model", "config", "batch", "concurrency", "rows_per_s", "p50_ms", "p99_ms", "calls"]


def run_configs(
    models=("particlenet", "bdt"),
    batch: int = 4,
    concurrency: int = 8,
    duration_s: float = 3.0,
    max_queue_delay_us: int = 2000,
    out_dir=None,
) -> list[dict]:
    from ...models.build import build_all
    from ...scorer import Scorer
    from ...serving.server import serve

    models = [get_spec(m).name for m in models]
    build_all(models)
    rows = []
    for m in models:
        x = toy_inputs(m, batch, seed=1)
        for name, (instances, dynamic) in CONFIGS.items():
            with serve(
                [m], instances=instances, dynamic_batching=dynamic, max_queue_delay_us=max_queue_delay_us
            ) as srv:
                scorer = Scorer(m, config=InferenceConfig(mode="remote", url=srv.url))
                r = closed_loop(scorer, x, concurrency, duration_s)
                scorer.close()
            rows.append({"model": m, "config": name, "batch": batch, "concurrency": concurrency, **r})
            log.info(
                f"{m} {name}: {r['rows_per_s']:,.0f} inferences/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
            )
    if out_dir:
        write_rows(rows, out_dir, "configs", f"Server configurations ({concurrency} callers x {batch} rows)", COLUMNS)
        bar_plot(
            rows,
            Path(out_dir) / "configs.png",
            lambda r: f"{r['model']}: {r['config']}",
            title=f"{concurrency} callers x {batch} rows",
        )
    return rows


def batching_gain(rows: list[dict]) -> dict[str, float]:
    """Dynamic batching on / off (one instance), per model."""
    by = {(r["model"], r["config"]): r["rows_per_s"] for r in rows}
    return {m: by[(m, "dynamic batching")] / by[(m, "base")] for m, c in by if c == "base"}
