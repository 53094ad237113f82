"""``hepinfer bench client``: how fast one analysis worker can feed a GPU server.

1. Each step of the example processor's path (:class:`hepinfer.analysis.processor.TopTagProcessor`),
   timed on its own for chunks of about ``chunks`` selected jets: ``read`` (coffea NanoEvents of the
   chunk's events, the branches the steps use read at once), ``select`` (fat jets in the tagging
   window and their constituents), each input builder (``particles`` for ParticleNet,
   ``jet_variables`` for the BDT, ``image`` for ResNet50), ``request`` (what
   :class:`~hepinfer.runtime.triton.TritonRuntime` does before sending: non-finite values, checks,
   splitting, tritonclient's InferInput per piece; nothing is sent), ``round trip`` (ParticleNet's
   whole call to the server: prepared, sent, answered at once, unpacked) and ``fill`` (scores unflattened
   back to events, histograms filled as the processor fills them).  Each call is timed ``repeats``
   times after a warm-up; the best counts.  Per step, ``time = fixed + per_jet x jets`` is fitted by
   least squares over the chunk sizes (on relative deviations: every size counts alike).
2. One worker's jets/s and events/s: the processor, run by coffea's Runner (iterative executor) over
   the whole sample, against an embedded server whose models answer zeros at once (engine ``null``):
   the ceiling one worker can feed.  ``gpu_rate / worker jets/s`` is the number of worker cores one
   GPU at that rate needs.

Everything runs in this process pinned to one CPU core (its threads too: gRPC's and the request
pool's); no model runs here, so no engine threads need limiting.  The sample is the demo sample
repeated (:func:`repeated_sample`), cached in ``$HEPINFER_HOME/samples``.  The targets are printed
beside the measured values; none fails the study.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

from hepinfer.logs import get_logger
from hepinfer.operations.bench.client_steps import (
    BUILDERS,
    STEPS,
    Chunk,
    best_of,
    branches_read,
    one_core,
    step_call,
    step_models,
)
from hepinfer.operations.bench.study import Option, Point, Study

log = get_logger(__name__)

WORKER = "worker (null server)"
# per-jet targets (µs/jet, for calls of >= TARGET_CALL_JETS jets and the fitted slope); fixed cost (ms/call)
TARGET_US = {"particles": 20.0, "jet_variables": 10.0, "image": 10.0}
TARGET_FIXED_MS = {"particles": 5.0}
TARGET_CALL_JETS = 10_000
TARGET_WORKER = 20_000.0  # ParticleNet jets/s one worker feeds the null server
GPU_RATE = 24_000.0  # ParticleNet jets/s of one H100 through the server (fp16)
COLUMNS = (
    "step",
    "jets",
    "events",
    "ms_per_call",
    "fixed_ms",
    "us_per_jet",
    "jets_per_s",
    "events_per_s",
    "cores_per_gpu",
    "target",
)


# -- the sample ----------------------------------------------------------------------------------
def window_counts(path) -> np.ndarray:
    """Selected fat jets per event of a file: the processor's selection for the shipped taggers
    (their domain)."""
    import awkward as ak
    import uproot

    from hepinfer.models import TAGGER_DOMAIN

    with uproot.open(path) as f:
        jets = f["Events"].arrays(["FatJet_pt", "FatJet_eta"])
    return ak.to_numpy(ak.sum(TAGGER_DOMAIN.contains(jets.FatJet_pt, jets.FatJet_eta), axis=1))


def _collections(path) -> dict:
    """A file's Events as write_events takes them: nX + X_* branches as one jagged record X."""
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        arrays = f["Events"].arrays()
    names = arrays.fields
    counted = {k[1:] for k in names if k.startswith("n") and any(j.startswith(k[1:] + "_") for j in names)}
    out = {k: arrays[k] for k in names if k.partition("_")[0] not in counted and k[1:] not in counted}
    for c in counted:
        out[c] = ak.zip({k[len(c) + 1 :]: arrays[k] for k in names if k.startswith(c + "_")})
    return out


def repeated_sample(files, copies: int) -> Path:
    """The events of ``files`` repeated ``copies`` times in one file (one basket per copy and file),
    written once to ``$HEPINFER_HOME/samples``."""
    import uproot

    from hepinfer import paths

    files = [Path(f) for f in files]
    path = paths.home() / "samples" / f"client_{'_'.join(f.stem for f in files)}_x{copies}.root"
    if path.exists():
        return path
    log.info(f"writing {copies} copies of {', '.join(f.name for f in files)} -> {path}")
    blocks = [_collections(f) for f in files]
    part = path.with_suffix(f".{os.getpid()}.part")
    with uproot.recreate(part, compression=uproot.ZLIB(4)) as out:
        tree = out.mktree("Events", {k: v.type.content for k, v in blocks[0].items()})
        for _ in range(copies):
            for block in blocks:
                tree.extend(block)
    part.rename(path)
    return path


def prepare(p):
    from hepinfer.ml.samples import demo_files

    demo = demo_files(p.demo_events)
    per_copy = np.concatenate([window_counts(f) for f in demo])
    need = max(max(p.chunks), p.worker_jets)
    copies = max(1, math.ceil(need / max(1, int(per_copy.sum()))))
    p.sample = str(repeated_sample(demo, copies))
    p.cumulative = np.cumsum(np.tile(per_copy, copies))  # selected jets in events [0, i]
    p.step_models = step_models()
    with _quiet():
        p.branches = branches_read(p.sample, p.step_models)


def events_for(p, jets: int) -> int:
    """The fewest leading events of the sample that hold ``jets`` selected jets."""
    return min(len(p.cumulative), int(np.searchsorted(p.cumulative, jets)) + 1)


# -- measuring -------------------------------------------------------------------------------------
def fit(points) -> tuple[float, float]:
    """(fixed seconds, seconds per jet) of ``time = fixed + per_jet x jets`` over (jets, seconds)
    points: least squares on relative deviations (every size counts alike), neither term negative
    (a term the fit would make negative is 0 and the other refitted alone); fixed is NaN with fewer
    than two sizes."""
    n = np.array([j for j, _ in points], float)
    t = np.array([s for _, s in points], float)
    if len(set(n)) < 2:
        return float("nan"), float(np.mean(t / n)) if len(n) else float("nan")
    ones, per_jet_only = 1 / t, n / t  # the design's columns, relative to the times
    (fixed, per_jet), *_ = np.linalg.lstsq(np.stack([ones, per_jet_only], axis=1), np.ones_like(t), rcond=None)
    if fixed < 0:
        fixed, per_jet = 0.0, per_jet_only.sum() / (per_jet_only**2).sum()
    elif per_jet < 0:
        fixed, per_jet = ones.sum() / (ones**2).sum(), 0.0
    return float(fixed), float(per_jet)


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def call_target(step: str, jets: int, us: float) -> str:
    if step not in TARGET_US or jets < TARGET_CALL_JETS:
        return ""
    return f"<= {TARGET_US[step]:g} µs/jet: {_met(us <= TARGET_US[step])}"


def fit_target(step: str, fixed_ms: float, us: float) -> str:
    parts, ok = [], True
    if step in TARGET_FIXED_MS:
        parts.append(f"{TARGET_FIXED_MS[step]:g} ms")
        ok = ok and fixed_ms <= TARGET_FIXED_MS[step]
    if step in TARGET_US:
        parts.append(f"{TARGET_US[step]:g} µs/jet")
        ok = ok and us <= TARGET_US[step]
    return f"<= {' + '.join(parts)}: {_met(ok)}" if parts else ""


def worker(run, p) -> dict:
    """The processor through coffea's Runner (iterative executor) against the null server."""
    from coffea import nanoevents, processor

    from hepinfer.analysis.processor import TopTagProcessor
    from hepinfer.config import InferenceConfig

    proc = TopTagProcessor(models=p.worker_models, config=InferenceConfig(mode="remote", url=run.server.url))
    fileset = {"client": {"files": {p.sample: "Events"}}}

    def runner(chunksize: int, maxchunks: int):
        executor = processor.IterativeExecutor(status=False)
        schema = nanoevents.PFNanoAODSchema
        return processor.Runner(executor=executor, schema=schema, chunksize=chunksize, maxchunks=maxchunks)

    chunks = math.ceil(events_for(p, p.worker_jets) / p.worker_chunk)
    runner(1000, 1)(fileset, proc, treename="Events")  # warm-up: client, metadata, request pool
    with one_core():
        t0 = time.perf_counter()
        out = runner(p.worker_chunk, chunks)(fileset, proc, treename="Events")
        wall = time.perf_counter() - t0
    jets, events = int(out["cutflow"]["selected_fatjets"]), int(out["cutflow"]["events"])
    remote = {m: int(out["inference"][m]["remote_jets"]) for m in proc.models}
    if any(r != jets for r in remote.values()):
        raise RuntimeError(f"the worker's jets were not all scored by the server: {remote} of {jets}")
    rate = jets / wall
    return {
        "jets": jets,
        "events": events,
        "ms_per_call": wall * 1e3 / chunks,
        "us_per_jet": 1e6 / rate,
        "jets_per_s": rate,
        "events_per_s": events / wall,
        "cores_per_gpu": p.gpu_rate / rate,
        "target": f">= {TARGET_WORKER:,.0f} jets/s: {_met(rate >= TARGET_WORKER)}",
    }


@contextlib.contextmanager
def _quiet():
    """Without coffea's warnings about the PFNano tables generated files lack."""
    from hepinfer.analysis.schema_warnings import quiet_schema_warnings

    with warnings.catch_warnings():
        quiet_schema_warnings()
        yield


def measure(run, point):
    with _quiet():
        return _measure(run, point)


def _measure(run, point):
    p, step, size = run.params, point.row["step"], point.row["jets"]
    if step == WORKER:
        return worker(run, p)
    timings = run.keep("timings", dict, with_server=False)
    if size == "fit":
        fixed, per_jet = fit(timings.get(step, []))
        fixed_ms, us = fixed * 1e3, per_jet * 1e6
        rate = {"jets_per_s": 1e6 / us} if us > 0 else {}  # the rate of large calls; none for a fixed cost alone
        return {"fixed_ms": fixed_ms, "us_per_jet": us, **rate, "target": fit_target(step, fixed_ms, us)}
    state = run.keep("chunk", dict, with_server=False)
    if state.get("size") != size:  # one chunk's objects at a time
        state.clear()
        state.update(size=size, chunk=Chunk(p.sample, events_for(p, size), p.branches))
    chunk = state["chunk"]
    call = step_call(run, chunk, step)
    with one_core():
        seconds = best_of(call, p.repeats)
    jets = int(p.cumulative[chunk.events - 1])
    timings.setdefault(step, []).append((jets, seconds))
    us = seconds * 1e6 / jets
    return {
        "jets": jets,
        "events": chunk.events,
        "ms_per_call": seconds * 1e3,
        "us_per_jet": us,
        "jets_per_s": jets / seconds,
        "events_per_s": chunk.events / seconds,
        "target": call_target(step, jets, us),
    }


def points(p):
    server = dict(models=sorted({*BUILDERS.values(), *p.worker_models}), engine="null")
    for size in p.chunks:
        for step in STEPS:
            yield Point({"step": step, "jets": size}, server)
    for step in STEPS:
        yield Point({"step": step, "jets": "fit"}, server)
    yield Point({"step": WORKER, "jets": p.worker_jets}, server)


# -- reporting -------------------------------------------------------------------------------------
PATH = ("read", "select", "particles", "round trip particlenet", "fill")  # one ParticleNet jet's steps


def summary(rows, p):
    calls = [r for r in rows if isinstance(r["jets"], int) and r["step"] in PATH]
    largest = max((r["jets"] for r in calls), default=0)
    at = {r["step"]: r["us_per_jet"] for r in calls if r["jets"] == largest}
    lines = []
    if len(at) == len(PATH):
        total = sum(at.values())
        lines.append(
            f"steps of a ParticleNet jet at {largest:,} jets/call: "
            + " + ".join(f"{s} {at[s]:.1f}" for s in PATH)
            + f" = {total:.1f} µs/jet -> {1e6 / total:,.0f} jets/s on one core"
        )
    for r in rows:
        if r["step"] == WORKER:
            lines += [
                f"one worker (one core) against the null server: {r['jets_per_s']:,.0f} "
                f"{'+'.join(p.worker_models)} jets/s, {r['events_per_s']:,.0f} events/s "
                f"(target >= {TARGET_WORKER:,.0f} jets/s: {_met(r['jets_per_s'] >= TARGET_WORKER)})",
                f"one GPU at {p.gpu_rate:,.0f} jets/s (--gpu-rate) needs {p.gpu_rate:,.0f} / "
                f"{r['jets_per_s']:,.0f} = {r['cores_per_gpu']:.1f} worker cores",
            ]
    return lines


def plot(rows, path, p):
    from hepinfer.figures import client_chart

    client_chart(rows, path, WORKER, p.gpu_rate, TARGET_US)


STUDY = Study(
    name="client",
    help="one worker's steps (µs/jet) and jets/s against a server that answers at once",
    columns=COLUMNS,
    headers={
        "ms_per_call": "ms/call",
        "us_per_jet": "µs/jet",
        "fixed_ms": "fixed ms/call",
        "jets_per_s": "jets/s",
        "events_per_s": "events/s",
        "cores_per_gpu": "cores per GPU",
    },
    params=dict(
        chunks=(100, 300, 1000, 3000, 10_000, 30_000),
        repeats=3,
        worker_jets=30_000,
        worker_chunk=15_000,
        worker_models=("particlenet",),
        gpu_rate=GPU_RATE,
        demo_events=400,
    ),
    quick=dict(chunks=(100, 1000, 10_000), repeats=2, worker_jets=10_000),
    options={
        "gpu_rate": Option("--gpu-rate", f"jets/s one GPU scores (default {GPU_RATE:,.0f})", type=float),
        "chunks": Option("--chunks", "selected jets per timed call", type=int, nargs="+"),
        "repeats": Option("--repeats", "timed passes of each step (the best counts)", type=int),
        "worker_chunk": Option("--worker-chunk", "events per chunk of the worker's run", type=int),
    },
    prepare=prepare,
    points=points,
    measure=measure,
    output="client",
    title="One worker feeding a GPU server: steps per jet and jets/s against a server that answers at once",
    plot=plot,
    summary=summary,
)
