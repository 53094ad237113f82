"""The steps of one analysis worker, each callable on its own, for ``hepinfer bench client``
(:mod:`.client`): read, select, build inputs, prepare the request, fill; and the one-core clock
that times them.
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np

BUILDERS = {"particles": "particlenet", "jet_variables": "bdt", "image": "resnet50"}  # builder -> its model
SENT = "particlenet"  # the model whose whole call to the server is timed too ("round trip")
STEPS = ("read", "select", *BUILDERS, *(f"request {m}" for m in BUILDERS.values()), f"round trip {SENT}", "fill")


def step_models() -> dict:
    """{name: resolved Model} of the models the steps name (looked up once, by the study's ``prepare``)."""
    from hepinfer.models.resolved import resolve

    return {m: resolve(m) for m in dict.fromkeys(BUILDERS.values())}


# -- one core --------------------------------------------------------------------------------------
def _set_affinity(cpus) -> None:
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


@contextlib.contextmanager
def one_core():
    """Every thread of this process (and those it starts meanwhile) on one CPU core."""
    if not hasattr(os, "sched_getaffinity") or not os.path.isdir("/proc/self/task"):
        yield
        return
    before = os.sched_getaffinity(0)
    _set_affinity({max(before)})
    try:
        yield
    finally:
        _set_affinity(before)


def best_of(call, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls, after a warm-up call."""
    call()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return min(times)


# -- the steps -------------------------------------------------------------------------------------
def read(path: str, events: int, branches=None, access_log=None):
    """NanoEvents (PFNano schema, virtual, as coffea's Runner makes them) of the first ``events``
    events, with ``branches`` read at once."""
    from coffea import nanoevents

    factory = nanoevents.NanoEventsFactory.from_root(
        {path: "Events"},
        schemaclass=nanoevents.PFNanoAODSchema,
        mode="virtual",
        entry_start=0,
        entry_stop=events,
        preload=branches,
        access_log=access_log,
    )
    return factory.events()


def branches_read(path: str, models: dict, events: int = 50) -> frozenset[str]:
    """The branches the steps read (selection, every builder of ``models``: :func:`step_models`, the
    soft-drop mass histogram), from coffea's access log of a few events: what ``read`` loads."""
    import awkward as ak

    log: list = []
    jets, cons = select(read(path, events, access_log=log))
    for model in models.values():
        model.build_inputs(jets, cons)
    ak.flatten(jets.msoftdrop)
    return frozenset(a.branch for a in log)


def select(events):
    """The processor's selection for the shipped taggers (their domain): fat jets and their constituents."""
    from hepinfer.coffea import constituents_of
    from hepinfer.models import TAGGER_DOMAIN

    fat = events.FatJet
    cons = constituents_of(events, fat)
    sel = TAGGER_DOMAIN.contains(fat.pt, fat.eta)
    return fat[sel], cons[sel]


def request(runtime, inputs) -> list:
    """What :meth:`TritonRuntime.infer` does before sending: the tagger's non-finite replacement,
    the checks against the spec and the server, the split, one tritonclient request per piece."""
    from hepinfer.features.common import finite_inputs
    from hepinfer.runtime import split_rows

    inputs, _ = finite_inputs(inputs)
    n = runtime.spec.validate(inputs)
    runtime.validate_against_server(inputs)
    step = runtime.rows_per_request(inputs)
    return [runtime._request_args({k: v[s] for k, v in inputs.items()}) for s in split_rows(n, step)]


def fill(proc, model: str, jets, outputs) -> dict:
    """The tagger's answer unflattened back to events, then the processor's histograms and counts."""
    import awkward as ak

    from hepinfer.features.common import plain

    tagger = proc.taggers[model]
    scores = outputs[tagger.spec.output_names[0]][:, tagger.column].astype(np.float32)
    n = len(scores)
    flat = ak.zip(
        {"score": scores, "remote": np.ones(n, bool), "fallback": np.zeros(n, bool), "nonfinite": np.zeros(n, bool)}
    )
    tags = ak.flatten(ak.unflatten(flat, ak.num(plain(jets), axis=1)))
    hists = proc._hists(False)
    msd = ak.flatten(jets.msoftdrop)
    scores = tags["score"]
    tagged = scores > proc.threshold
    hists["score"].fill(model=model, score=scores)
    hists["msoftdrop"].fill(model=model, tag="tagged", msd=msd[tagged])
    hists["msoftdrop"].fill(model=model, tag="untagged", msd=msd[~tagged])
    counts = {k: ak.sum(tags[k]) for k in ("remote", "fallback", "nonfinite")}
    return {"hists": hists, "tagged": ak.sum(tagged), **counts}


class Chunk:
    """One chunk's objects, made as the steps need them (the last chunk is kept)."""

    def __init__(self, path: str, events: int, branches):
        self.path, self.events, self.branches = path, events, branches
        self._made: dict = {}

    def get(self, key, make):
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    @property
    def selected(self):
        return self.get("selected", lambda: select(self.events_read))

    @property
    def events_read(self):
        return self.get("events", lambda: read(self.path, self.events, self.branches))

    def inputs(self, model) -> dict:
        """The inputs of ``model`` (a resolved Model) for the selected jets."""
        return self.get(model.name, lambda: model.build_inputs(*self.selected))


def step_call(run, chunk: Chunk, step: str):
    """A call of ``step`` on ``chunk`` (what it needs made beforehand, untimed)."""
    if step == "read":
        return lambda: read(chunk.path, chunk.events, chunk.branches)
    if step == "select":
        events = chunk.events_read
        return lambda: select(events)
    jets, cons = chunk.selected
    models = run.params.step_models
    if step in BUILDERS:
        model = models[BUILDERS[step]]
        return lambda: model.build_inputs(jets, cons)
    if step.startswith(("request ", "round trip ")):
        from hepinfer.features.common import finite_inputs
        from hepinfer.runtime.triton import TritonRuntime

        model, url = models[step.split()[-1]], run.server.url
        runtime = run.keep(("runtime", model.name, url), lambda: TritonRuntime(model.spec, url))
        inputs = chunk.inputs(model)
        if step.startswith("request "):
            return lambda: request(runtime, inputs)
        return lambda: runtime.infer(finite_inputs(inputs)[0])  # prepared, sent, answered, unpacked
    import awkward as ak

    from hepinfer.analysis.processor import TopTagProcessor  # fill

    proc = run.keep("processor", lambda: TopTagProcessor(models=("particlenet",)), with_server=False)
    answer = {"softmax": np.zeros((int(ak.sum(ak.num(jets, axis=1))), 2), np.float32)}  # the null server's
    return lambda: fill(proc, "particlenet", jets, answer)
