"""``hepinfer bench peer``: hepinfer's remote Scorer against ``coffea.ml_tools.triton_wrapper`` on
the same embedded server, model and jets.

What is compared: the inference call of one chunk, numpy in, numpy out, on both sides (coffea's
``numpy_call``, the step under its ``wrapper(*arrays)``; the awkward preparation around it is the
same work for both and is done beforehand, outside the clock).  A chunk is the consecutive events of
the demo sample (or the given files) that hold ``jets_per_chunk`` fat jets of the model's domain
(the processor's selection, :func:`hepinfer.analysis.selection.selection_for`); the events left over at
the end of a file, fewer jets than that, are left out.  Both sides must give the same scores
(checked to 1e-5; a difference fails the study, exit code 1).  Each side runs ``repeats`` times, in
turn, after one warm-up chunk; the best pass counts.

The sides:

* hepinfer at its default settings (gRPC, requests sized by :mod:`hepinfer.runtime.pieces` and kept
  in flight);
* coffea at its **default** batch: what it reads from the model config (the first preferred batch
  size, else the max batch size; its own lookup raises KeyError on a dynamic_batching block without
  preferred sizes, as the embedded server's, so the bench reads it for it);
* coffea at its **best** batch: the fastest of ``coffea_batches``.

coffea runs with ``ssl=False`` (its default ``ssl=True`` fails against a plain loopback server); it
pads every request to its batch size by repeating rows and sends requests one after the other.
The goal: hepinfer at >= 1.5 times the events/s of coffea at its best batch.
"""

from __future__ import annotations

import math
import time

import numpy as np

from hepinfer.figures import bar_chart
from hepinfer.logs import get_logger
from hepinfer.models import SPECS
from hepinfer.operations.bench.study import Option, Point, Study

log = get_logger(__name__)

GOAL = 1.5  # hepinfer / coffea.ml_tools at its best batch, events/s
MAX_ABS_DIFF = 1e-5  # the two clients' scores must agree to this
COLUMNS = (
    "model",
    "events",
    "jets",
    "chunks",
    "jets_per_chunk",
    "server_instances",
    "hepinfer_requests_per_chunk",
    "hepinfer_s",
    "hepinfer_events_per_s",
    "coffea_default_batch",
    "coffea_default_events_per_s",
    "ratio_default",
    "coffea_best_batch",
    "coffea_best_events_per_s",
    "ratio_best",
    "coffea_sweep",
    "max_abs_diff",
)


def event_chunks(files, spec, jets_per_chunk: int):
    """(events, model inputs of its selected jets) for runs of consecutive events holding at least
    ``jets_per_chunk`` jets of the domain of the model of ``spec`` (its ModelSpec)."""
    import awkward as ak

    from hepinfer.analysis.selection import selection_for
    from hepinfer.features.common import link_constituents
    from hepinfer.ml.training.dataset import read_events
    from hepinfer.models.resolved import Model

    model = Model(spec)
    selection = selection_for([spec.domain])
    for path in files:
        events = read_events(path)
        jets, cons = events.FatJet, link_constituents(events)
        sel = selection.mask(jets)
        ends = np.cumsum(ak.to_numpy(ak.sum(sel, axis=1)))  # selected jets up to each event
        start = 0
        while True:
            reach = (int(ends[start - 1]) if start else 0) + jets_per_chunk
            stop = int(np.searchsorted(ends, reach)) + 1  # up to the first event that reaches it
            if stop > len(ends):
                break
            j, c, m = jets[start:stop], cons[start:stop], sel[start:stop]
            yield stop - start, model.build_inputs(j[m], c[m])
            start = stop


def coffea_default_batch(config: dict) -> int:
    """The batch size coffea's triton_wrapper reads from a model config: the first preferred batch
    size of its dynamic batcher, else its max batch size."""
    from hepinfer.runtime.pieces import preferred_batch_sizes

    preferred = preferred_batch_sizes(config)
    return preferred[0] if preferred else int(config.get("max_batch_size", 0) or 0)


def _coffea_wrapper(url: str, model: str, batch_size: int):
    from coffea.ml_tools.triton_wrapper import triton_wrapper

    class Peer(triton_wrapper):
        def prepare_awkward(self, *args, **kwargs):  # not used: the bench calls numpy_call
            raise NotImplementedError

    address = url.split("://", 1)[1]
    return Peer(f"triton+grpc://{address}/{model}/1", client_args={"ssl": False}, batch_size=batch_size)


def prepare(p):
    from hepinfer.errors import ConfigError
    from hepinfer.ml.samples import demo_files

    if p.jets_per_chunk < 1:
        raise ConfigError(f"--jets-per-chunk must be >= 1, got {p.jets_per_chunk}")
    if not p.coffea_batches or min(p.coffea_batches) < 1:
        raise ConfigError(f"--coffea-batches must be batch sizes >= 1, got {p.coffea_batches}")
    p.chunks = list(event_chunks(p.files or demo_files(400), p.model, p.jets_per_chunk))[: p.max_chunks]
    if not p.chunks:
        raise ConfigError(f"no file holds {p.jets_per_chunk} jets of {p.model.name}'s domain: no chunk to compare")


def _timed(sides: dict, chunks, repeats: int) -> tuple[dict, dict]:
    """Each side's scores of ``chunks`` and its best time over ``repeats`` passes (sides in turn)."""
    scores, best = {}, {}
    for call in sides.values():  # warm-up: clients, metadata, model instances
        call(chunks[0][1])
    for _ in range(repeats):
        for name, call in sides.items():
            t0 = time.perf_counter()
            scores[name] = np.concatenate([call(x) for _, x in chunks])
            best[name] = min(best.get(name, np.inf), time.perf_counter() - t0)
            log.info(f"{name}: {best[name]:.2f} s")
    return scores, best


def measure(run, point):
    from hepinfer.runtime.triton import TritonRuntime

    p, spec = run.params, point.model
    out = spec.output_names[0]
    with TritonRuntime(spec, run.server.url) as runtime:
        default = coffea_default_batch(runtime.model_info()[1])
        requests = [math.ceil(len(next(iter(x.values()))) / runtime.rows_per_request(x)) for _, x in p.chunks]
    ours = run.scorer(spec)
    batches = sorted({default, *p.coffea_batches})
    peers = {b: _coffea_wrapper(run.server.url, spec.name, b) for b in batches}
    sides = {"hepinfer": lambda x: ours(x)[out]}
    sides.update({f"coffea {b}": lambda x, peer=peers[b]: peer.numpy_call([out], x)[out] for b in batches})
    scores, best = _timed(sides, p.chunks, p.repeats)
    events = sum(n for n, _ in p.chunks)
    eps = {name: events / t for name, t in best.items()}
    swept = {b: eps[f"coffea {b}"] for b in batches if b in p.coffea_batches}
    top = max(swept, key=swept.get)
    ratio_default, ratio_best = eps["hepinfer"] / eps[f"coffea {default}"], eps["hepinfer"] / swept[top]
    return {
        "events": events,
        "jets": len(scores["hepinfer"]),
        "chunks": len(p.chunks),
        "jets_per_chunk": len(scores["hepinfer"]) / len(p.chunks),
        "hepinfer_requests_per_chunk": sum(requests) / len(requests),
        "hepinfer_s": best["hepinfer"],
        "hepinfer_events_per_s": eps["hepinfer"],
        "coffea_default_batch": default,
        "coffea_default_events_per_s": eps[f"coffea {default}"],
        "ratio_default": ratio_default,
        "coffea_best_batch": top,
        "coffea_best_events_per_s": swept[top],
        "ratio_best": ratio_best,
        "verdict": f"{ratio_best:.2f} ({'met' if ratio_best >= GOAL else 'MISSED'})",
        "coffea_sweep": ", ".join(f"{b}: {e:.1f}" for b, e in swept.items()),
        "max_abs_diff": max(float(np.abs(scores["hepinfer"] - s).max()) for s in scores.values()),
    }


def plot(rows, path, p):
    r = rows[0]
    eps = {int(b): float(e) for b, e in (item.split(": ") for item in r["coffea_sweep"].split(", "))}
    eps.setdefault(r["coffea_default_batch"], r["coffea_default_events_per_s"])

    def label(batch):
        notes = [n for n, b in (("default", r["coffea_default_batch"]), ("best", r["coffea_best_batch"])) if b == batch]
        return f"coffea.ml_tools, batch {batch}" + (f" ({', '.join(notes)})" if notes else "")

    bars = [{"who": "hepinfer", "eps": r["hepinfer_events_per_s"]}]
    bars += [{"who": label(b), "eps": e} for b, e in sorted(eps.items())]
    title = (
        f"{r['model']}, {r['jets_per_chunk']:.0f} jets a chunk\nhepinfer / coffea.ml_tools: "
        f"{r['ratio_best']:.2f} at its best batch (goal >= {GOAL:g}), {r['ratio_default']:.2f} at its default"
    )
    bar_chart(bars, path, lambda b: b["who"], value="eps", xlabel="events/s", title=title)


def summary(rows, p):
    r = rows[0]
    return [
        f"hepinfer / coffea.ml_tools at its default batch ({r['coffea_default_batch']}) = {r['ratio_default']:.2f}",
        f"hepinfer / coffea.ml_tools at its best batch ({r['coffea_best_batch']}) = {r['ratio_best']:.2f} "
        f"(goal >= {GOAL:g}: {'met' if r['ratio_best'] >= GOAL else 'MISSED'})",
        f"coffea.ml_tools events/s by batch: {r['coffea_sweep']}",
    ]


STUDY = Study(
    name="peer",
    help="hepinfer vs coffea.ml_tools.triton_wrapper (its default and its best batch), same server and jets",
    columns=COLUMNS,
    table=(
        "model",
        "jets_per_chunk",
        "chunks",
        "server_instances",
        "hepinfer_events_per_s",
        "coffea_default_batch",
        "coffea_default_events_per_s",
        "ratio_default",
        "coffea_best_batch",
        "coffea_best_events_per_s",
        "verdict",
        "max_abs_diff",
    ),
    headers={
        "jets_per_chunk": "jets a chunk",
        "server_instances": "server instances",
        "hepinfer_events_per_s": "hepinfer events/s",
        "coffea_default_batch": "coffea default batch",
        "coffea_default_events_per_s": "coffea.ml_tools events/s (default)",
        "ratio_default": "ratio (default)",
        "coffea_best_batch": "coffea best batch",
        "coffea_best_events_per_s": "coffea.ml_tools events/s (best)",
        "verdict": f"ratio (best; goal >= {GOAL:g})",
        "max_abs_diff": "max abs diff",
    },
    params=dict(
        model="particlenet",
        files=None,
        jets_per_chunk=280,
        instances=2,
        repeats=2,
        max_chunks=None,
        coffea_batches=(8, 16, 32, 64, 128, 256),
    ),
    quick=dict(jets_per_chunk=60, repeats=1, max_chunks=2, coffea_batches=(16,)),
    options={
        "model": Option("--model", "the model", choices=tuple(SPECS)),
        "files": Option("--input", "files (default: the demo sample)", nargs="+"),
        "jets_per_chunk": Option("--jets-per-chunk", "jets of the model's domain per chunk", type=int),
        "instances": Option("--server-instances", "instances of the model on the server", type=int),
        "repeats": Option("--repeats", "timed passes of each side (the best counts)", type=int),
        "coffea_batches": Option("--coffea-batches", "coffea batch sizes swept (its best counts)", type=int, nargs="+"),
    },
    prepare=prepare,
    points=lambda p: [
        Point(
            {"model": p.model.name, "server_instances": p.instances},
            dict(models=[p.model.name], instances=p.instances),
            p.model,
        )
    ],
    measure=measure,
    output="peer",
    title="hepinfer vs coffea.ml_tools.triton_wrapper",
    plot=plot,
    summary=summary,
    check=lambda rows, p: (
        f"the two clients' scores differ by {rows[0]['max_abs_diff']:.1e} (more than {MAX_ABS_DIFF:g})"
        if rows[0]["max_abs_diff"] > MAX_ABS_DIFF
        else None
    ),
)
