"""``hepinfer bench peer``: hepinfer's remote Scorer against ``coffea.ml_tools.triton_wrapper`` on
the same embedded server, model and jets.

What is compared: the inference call of one chunk of events, numpy in, numpy out, on both sides
(coffea's ``numpy_call``, the step under its ``wrapper(*arrays)``; the awkward preparation around
it is the same work for both and is done beforehand, outside the clock).  Chunks are the fat jets of
the tagging window in ``events_per_chunk`` consecutive events of the demo sample (or the given
files).  Both sides must give the same scores (checked to 1e-5).  Each side runs ``repeats`` times,
alternating, after one warm-up pass; the best pass counts.

Settings of the peer: gRPC, ``ssl=False`` (coffea's default ``ssl=True`` fails against a plain
loopback server), ``batch_size`` = the model's max batch size (what coffea reads from the model
config when there is no preferred batch size; coffea's own lookup raises KeyError on a
dynamic_batching block without one, as the embedded server's).  coffea pads every request to the
full batch size by repeating rows and sends requests one after the other; hepinfer sends only the
rows it has and keeps split requests in flight.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...logs import get_logger
from ...models import get_spec

log = get_logger(__name__)

TARGET = 2.0


@dataclass
class PeerResult:
    model: str
    events: int
    jets: int
    chunks: int
    hepinfer_s: float
    coffea_s: float
    max_abs_diff: float
    server_instances: int

    @property
    def hepinfer_events_per_s(self) -> float:
        return self.events / self.hepinfer_s

    @property
    def coffea_events_per_s(self) -> float:
        return self.events / self.coffea_s

    @property
    def ratio(self) -> float:
        return self.coffea_s / self.hepinfer_s

    def table(self) -> str:
        return "\n".join(
            [
                "| model | events | jets | chunks | server instances | hepinfer events/s | coffea.ml_tools events/s | "
                f"ratio (target >= {TARGET:g}) | max abs diff |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
                f"| {self.model} | {self.events} | {self.jets} | {self.chunks} | {self.server_instances} | "
                f"{self.hepinfer_events_per_s:,.1f} | {self.coffea_events_per_s:,.1f} | {self.ratio:.2f} "
                f"({'met' if self.ratio >= TARGET else 'MISSED'}) | {self.max_abs_diff:.1e} |",
            ]
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


def run_peer(
    model: str = "particlenet",
    files=None,
    events_per_chunk: int = 100,
    instances: int = 2,
    repeats: int = 2,
    max_chunks: int | None = None,
    out_dir=None,
) -> PeerResult:
    from ...config import InferenceConfig
    from ...models.build import build_all
    from ...scorer import Scorer
    from ...serving.server import serve
    from ..samples import demo_files

    spec = get_spec(model)
    build_all([spec.name])
    files = files or demo_files(400)
    chunks = list(event_chunks(files, spec.name, events_per_chunk))[:max_chunks]
    out = spec.output_names[0]
    with serve([spec.name], instances=instances) as server:
        ours = Scorer(spec.name, config=InferenceConfig(mode="remote", url=server.url))
        peer = _coffea_wrapper(server.url, spec.name, spec.max_batch_size)
        sides = {"hepinfer": lambda x: ours(x)[out], "coffea": lambda x: peer.numpy_call([out], x)[out]}
        scores, best = {}, {}
        for side, call in sides.items():  # warm-up: clients, metadata, model instances
            scores[side] = np.concatenate([call(x) for _, x in chunks[:1]])
        for _ in range(repeats):
            for side, call in sides.items():
                t0 = time.perf_counter()
                scores[side] = np.concatenate([call(x) for _, x in chunks])
                best[side] = min(best.get(side, np.inf), time.perf_counter() - t0)
                log.info(f"{side}: {best[side]:.2f} s")
        ours.close()
    result = PeerResult(
        spec.name,
        sum(n for n, _ in chunks),
        len(scores["hepinfer"]),
        len(chunks),
        best["hepinfer"],
        best["coffea"],
        float(np.abs(scores["hepinfer"] - scores["coffea"]).max()),
        instances,
    )
    if out_dir:
        write(result, out_dir)
    return result


def write(result: PeerResult, out_dir) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "peer.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
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
            ]
        )
        w.writerow(
            [
                result.model,
                result.events,
                result.jets,
                result.chunks,
                result.server_instances,
                f"{result.hepinfer_s:.4f}",
                f"{result.coffea_s:.4f}",
                f"{result.hepinfer_events_per_s:.2f}",
                f"{result.coffea_events_per_s:.2f}",
                f"{result.ratio:.3f}",
                f"{result.max_abs_diff:.2e}",
            ]
        )
    (out_dir / "peer.md").write_text("## hepinfer vs coffea.ml_tools.triton_wrapper\n\n" + result.table() + "\n")
    from .harness import bar_plot

    bars = [
        {"who": "hepinfer", "eps": result.hepinfer_events_per_s},
        {"who": "coffea.ml_tools.triton_wrapper", "eps": result.coffea_events_per_s},
    ]
    bar_plot(
        bars,
        out_dir / "peer.png",
        lambda r: r["who"],
        value="eps",
        ylabel="events/s",
        title=f"{result.model}: ratio {result.ratio:.2f} (target >= {TARGET:g})",
    )
