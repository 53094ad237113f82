"""``hepinfer bench peer``: hepinfer's remote Scorer against ``coffea.ml_tools.triton_wrapper`` on
the same embedded server, model and jets.

What is compared: the inference call of one chunk of events, numpy in, numpy out, on both sides
(coffea's ``numpy_call``, the step under its ``wrapper(*arrays)``; the awkward preparation around
it is the same work for both and is done beforehand, outside the clock).  Chunks are the fat jets of
pT 550-650 GeV, ``|eta| < 2`` (``in_window``: the fixed window the comparison's figures were measured
with) in ``events_per_chunk`` consecutive events of the demo sample (or the given files).  Both sides
must give the same scores (checked to 1e-5; a difference fails the study, exit code 1).  Each side
runs ``repeats`` times, alternating, after one warm-up pass; the best pass counts.

Settings of the peer: gRPC, ``ssl=False`` (coffea's default ``ssl=True`` fails against a plain
loopback server), ``batch_size`` = the model's max batch size (what coffea reads from the model
config when there is no preferred batch size; coffea's own lookup raises KeyError on a
dynamic_batching block without one, as the embedded server's).  coffea pads every request to the
full batch size by repeating rows and sends requests one after the other; hepinfer sends only the
rows it has and keeps split requests in flight.
"""

from __future__ import annotations

import time

import numpy as np

from ...logs import get_logger
from ...models import SPECS, get_spec
from ..plotting import bar_chart
from .study import Option, Point, Study

log = get_logger(__name__)

TARGET = 2.0  # hepinfer / coffea.ml_tools events/s
MAX_ABS_DIFF = 1e-5  # the two clients' scores must agree to this
COLUMNS = (
    "model",
    "events",
    "jets",
    "chunks",
    "server_instances",
    "hepinfer_s",
    "coffea_s",
    "hepinfer_events_per_s",
    "coffea_events_per_s",
    "ratio",
    "max_abs_diff",
)


def event_chunks(files, model: str, events_per_chunk: int):
    """(events in the chunk, model inputs of its window jets) for consecutive event ranges."""
    import awkward as ak

    from ...features import build_inputs, link_constituents
    from ...features.common import in_window
    from ..training.dataset import read_events

    for path in files:
        events = read_events(path)
        jets, cons = events.FatJet, link_constituents(events)
        sel = in_window(jets)
        for s in range(0, len(events), events_per_chunk):
            j, c, m = jets[s : s + events_per_chunk], cons[s : s + events_per_chunk], sel[s : s + events_per_chunk]
            if ak.sum(m) > 0:
                yield len(j), build_inputs(model, j[m], c[m])


def _coffea_wrapper(url: str, model: str, batch_size: int):
    from coffea.ml_tools.triton_wrapper import triton_wrapper

    class Peer(triton_wrapper):
        def prepare_awkward(self, *args, **kwargs):  # not used: the bench calls numpy_call
            raise NotImplementedError

    address = url.split("://", 1)[1]
    return Peer(f"triton+grpc://{address}/{model}/1", client_args={"ssl": False}, batch_size=batch_size)


def prepare(p):
    from ..samples import demo_files

    p.model = get_spec(p.model).name
    p.chunks = list(event_chunks(p.files or demo_files(400), p.model, p.events_per_chunk))[: p.max_chunks]


def measure(run, point):
    p, spec = run.params, get_spec(run.params.model)
    out = spec.output_names[0]
    ours = run.scorer(spec.name)
    peer = _coffea_wrapper(run.server.url, spec.name, spec.max_batch_size)
    sides = {"hepinfer": lambda x: ours(x)[out], "coffea": lambda x: peer.numpy_call([out], x)[out]}
    scores, best = {}, {}
    for side, call in sides.items():  # warm-up: clients, metadata, model instances
        scores[side] = np.concatenate([call(x) for _, x in p.chunks[:1]])
    for _ in range(p.repeats):
        for side, call in sides.items():
            t0 = time.perf_counter()
            scores[side] = np.concatenate([call(x) for _, x in p.chunks])
            best[side] = min(best.get(side, np.inf), time.perf_counter() - t0)
            log.info(f"{side}: {best[side]:.2f} s")
    events = sum(n for n, _ in p.chunks)
    ratio = best["coffea"] / best["hepinfer"]
    return {
        "events": events,
        "jets": len(scores["hepinfer"]),
        "chunks": len(p.chunks),
        "hepinfer_s": best["hepinfer"],
        "coffea_s": best["coffea"],
        "hepinfer_events_per_s": events / best["hepinfer"],
        "coffea_events_per_s": events / best["coffea"],
        "ratio": ratio,
        "verdict": f"{ratio:.2f} ({'met' if ratio >= TARGET else 'MISSED'})",
        "max_abs_diff": float(np.abs(scores["hepinfer"] - scores["coffea"]).max()),
    }


def plot(rows, path, p):
    r = rows[0]
    bars = [
        {"who": "hepinfer", "eps": r["hepinfer_events_per_s"]},
        {"who": "coffea.ml_tools.triton_wrapper", "eps": r["coffea_events_per_s"]},
    ]
    title = f"{r['model']}: ratio {r['ratio']:.2f} (target >= {TARGET:g})"
    bar_chart(bars, path, lambda b: b["who"], value="eps", xlabel="events/s", title=title)


STUDY = Study(
    name="peer",
    help="hepinfer vs coffea.ml_tools.triton_wrapper, same server and jets",
    columns=COLUMNS,
    table=(*COLUMNS[:5], "hepinfer_events_per_s", "coffea_events_per_s", "verdict", "max_abs_diff"),
    headers={
        "server_instances": "server instances",
        "hepinfer_events_per_s": "hepinfer events/s",
        "coffea_events_per_s": "coffea.ml_tools events/s",
        "verdict": f"ratio (target >= {TARGET:g})",
        "max_abs_diff": "max abs diff",
    },
    params=dict(model="particlenet", files=None, events_per_chunk=100, instances=2, repeats=2, max_chunks=None),
    quick=dict(repeats=1, max_chunks=3),
    options={
        "model": Option("--model", "the model", choices=tuple(SPECS)),
        "files": Option("--input", "files (default: the demo sample)", nargs="+"),
        "events_per_chunk": Option("--events-per-chunk", "events per chunk", type=int),
        "instances": Option("--server-instances", "instances of the model on the server", type=int),
        "repeats": Option("--repeats", "timed passes of each side (the best counts)", type=int),
    },
    prepare=prepare,
    points=lambda p: [
        Point({"model": p.model, "server_instances": p.instances}, dict(models=[p.model], instances=p.instances))
    ],
    measure=measure,
    output="peer",
    title="hepinfer vs coffea.ml_tools.triton_wrapper",
    plot=plot,
    summary=lambda rows, p: [f"hepinfer / coffea.ml_tools = {rows[0]['ratio']:.2f} (target >= {TARGET:g})"],
    check=lambda rows, p: (
        f"the two clients' scores differ by {rows[0]['max_abs_diff']:.1e} (more than {MAX_ABS_DIFF:g})"
        if rows[0]["max_abs_diff"] > MAX_ABS_DIFF
        else None
    ),
)
