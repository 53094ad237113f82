"""``hepinfer demo``: score the same jets locally and on the embedded Triton server, with each model,
and report agreement, jets/s of both paths and each model's AUC on those jets.

Jets are generated: ``events`` ttbar and QCD events each (Pythia + FastJet, seeds 7001 / 7002, never
used in training), cached in $HEPINFER_HOME/samples; the fat jets inside the taggers' domain go through
hepinfer.features.  ``toy=True`` uses :mod:`hepinfer.models.toy`'s arrays instead (no generator needed).  Both paths
get one CPU thread (local: onnxruntime/xgboost with 1 thread; remote: one server instance with
1 thread), and jets are sent in chunks of ``chunk`` jets, as an analysis would.  The first chunk
of each path is a warm-up and is not timed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np

from hepinfer.config import InferenceConfig
from hepinfer.logs import get_logger
from hepinfer.ml.samples import demo_sample
from hepinfer.models import SPECS
from hepinfer.models.resolved import resolve
from hepinfer.models.toy import toy_inputs
from hepinfer.scorer import Scorer

log = get_logger(__name__)

TOLERANCE = 1e-5


@dataclass
class Comparison:
    model: str
    jets: int
    local_jets_per_s: float
    remote_jets_per_s: float
    max_abs_diff: float
    weights: str = "trained"
    auc: float | None = None

    @property
    def agree(self) -> bool:
        return self.max_abs_diff <= TOLERANCE


def _timed(scorer: Scorer, inputs: dict, chunk: int) -> tuple[dict, float]:
    n = len(next(iter(inputs.values())))
    warm = {k: v[: min(chunk, n)] for k, v in inputs.items()}
    scorer(warm)
    t0 = time.perf_counter()
    parts = [scorer({k: v[s : s + chunk] for k, v in inputs.items()}) for s in range(0, n, chunk)]
    elapsed = time.perf_counter() - t0
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, elapsed


def call_overhead_ms(url: str, calls: int = 200) -> float:
    """Median round trip of a one-row BDT request through hepinfer's remote Scorer (ms): the fixed
    cost of one call to the server (client, gRPC, server, python backend; the BDT itself is ~µs)."""
    scorer = Scorer("bdt", config=InferenceConfig(mode="remote", url=url))
    x = toy_inputs(scorer.spec, 1, seed=0)
    scorer(x)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        scorer(x)
        times.append(time.perf_counter() - t0)
    scorer.close()
    return float(np.median(times) * 1e3)


def compare(
    models=None,
    *,
    jets: int = 2000,
    url: str | None = None,
    chunk: int = 256,
    seed: int = 1,
    events: int = 400,
    toy: bool = False,
) -> list[Comparison]:
    from hepinfer.models.architectures import build_all

    resolved = {model.name: model for model in map(resolve, models or SPECS)}
    models = list(resolved)
    build_all(list(resolved.values()))
    sample = None if toy else demo_sample(events)
    if sample is not None:
        counts = sample.counts()
        log.info(f"{len(sample)} fat jets in the taggers' domain ({counts['top']} top, {counts['qcd']} QCD)")
    results = []
    with contextlib.ExitStack() as stack:
        if url is None:
            from hepinfer.serving.server import serve

            log.info("starting the embedded Triton server ...")
            server = stack.enter_context(serve(models))
            log.info(f"server ready in {server.startup_seconds:.2f} s at {server.url} (log {server.log_path})")
            url = server.url
        if "bdt" in models:
            log.info(f"per-call overhead (1-row bdt request, median of 200): {call_overhead_ms(url):.2f} ms")
        for name in models:
            if sample is None:
                n = jets if name != "resnet50" else min(jets, 500)
                inputs = toy_inputs(resolved[name], n, seed=seed)
            else:
                from hepinfer.ml.training import build_chunked

                inputs = build_chunked(resolved[name], sample)
                n = len(sample)
            spec = resolved[name].spec
            local = Scorer(spec, config=InferenceConfig(mode="local", threads=1))
            remote = stack.enter_context(Scorer(spec, config=InferenceConfig(mode="remote", url=url)))
            out_local, t_local = _timed(local, inputs, chunk)
            out_remote, t_remote = _timed(remote, inputs, chunk)
            diff = max(float(np.abs(out_local[k] - out_remote[k]).max()) for k in out_local)
            from hepinfer.models.catalogue import is_untrained

            row = Comparison(name, n, n / t_local, n / t_remote, diff, "UNTRAINED" if is_untrained(spec) else "trained")
            if sample is not None:
                from hepinfer.ml.training.roc import auc

                row.auc = auc(sample.labels, out_local[resolved[name].spec.output_names[0]][:, 1])
            results.append(row)
            log.info(
                f"{name}: {n} jets, local {row.local_jets_per_s:,.0f} jets/s, remote {row.remote_jets_per_s:,.0f} "
                f"jets/s, max |local - remote| = {diff:.2e}"
            )
    return results


def format_table(rows: list[Comparison]) -> str:
    lines = [
        "| model | weights | jets | AUC | local jets/s | remote jets/s | remote/local | max abs diff "
        "| agree (<=1e-5) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.weights} | {r.jets} | {'-' if r.auc is None else f'{r.auc:.4f}'} | "
            f"{r.local_jets_per_s:,.0f} | {r.remote_jets_per_s:,.0f} | "
            f"{r.remote_jets_per_s / r.local_jets_per_s:.2f} | {r.max_abs_diff:.1e} | {'yes' if r.agree else 'NO'} |"
        )
    if any(r.weights != "trained" for r in rows):
        lines.append("")
        lines += [
            f"{r.model}: scores come from an UNTRAINED network (random weights); `hepinfer train {r.model}` trains it"
            for r in rows
            if r.weights != "trained"
        ]
    return "\n".join(lines)
