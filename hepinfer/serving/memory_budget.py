"""Memory-aware batch limits: each model's ``max_batch_size`` chosen so that its largest batches fit a
memory budget (``hepinfer.serve(..., memory_budget=...)``, ``hepinfer serve --gpu-memory 40GB``).

**Memory per row.**  For each model, as the embedded server runs it (the networks' exported program
with torch when ``engine="torch"``, otherwise the model's own engine, on the same device and in the
same precision), :mod:`hepinfer.serving.measure_memory` runs batches of :data:`MEASURE_ROWS` rows in
a fresh process of the server environment's interpreter (its device, its libraries, the server's
engine code) and takes the slope of the peak memory between them:

* on a GPU (``cuda:N``): ``torch.cuda.max_memory_allocated`` above what the loaded engine holds;
  the CUDA context of each instance process and the allocator's unused reserve come on top, so a
  budget should leave some headroom below the card's memory;
* on the CPU: the process's peak **resident** memory during each batch above the memory just before
  it (sampled every millisecond), not the virtual size, with glibc's mmap threshold fixed
  (``MALLOC_MMAP_THRESHOLD_``, :data:`MMAP_THRESHOLD`) so that large buffers go back to the system
  when freed and the peak follows live memory (glibc's adaptive threshold makes the slope vary from
  run to run; the figures are in the GPU serving guide).

Fixed memory is what one loaded instance holds before a batch (weights on a GPU; interpreter,
libraries and weights on a CPU) plus the line's intercept.  Results are kept in
``$HEPINFER_HOME/models/<model>/<version>/memory.json``, keyed by engine, device, precision, engine
threads and the artefact's sha256, so a model is measured once, at its first sized load, and again
only when its artefact or the serving setup changes.  Uncompiled programs are measured (compiling
takes minutes); a compiled program fuses operations and needs no more per row.

**The budget** covers every instance of every served model that runs on its device: the torch
engine's device (``options.device``) when the networks run on a GPU, where the other models (on CPU
instances) are left as they are; every model when all run on the CPU.  After each instance's fixed
memory, the rest is split so that **every model gets the same number of rows per batch**, that is
in proportion to memory per row (times instances).  The analysis sends the same jets to every
model, so equal rows keep the models in step, and a heavy model is not starved by light ones.  A
model whose cap (its spec's ``max_batch_size``, or the repository's override) is below that number
keeps its cap and hands the rest back to the others.  Each ``max_batch_size`` is then rounded down
to a power of two (never above the cap, at least 1); what the rounding leaves over doubles limits
again while it lasts, the model with the cheapest rows first (a BDT's rows cost bytes, a network's
megabytes: the BDT reaches its cap at no cost to the networks).  The preferred batch sizes are the
largest power of two up to ``max_batch_size`` and its half.  A budget that cannot hold one row of
every model is a ConfigError naming the models and the budget.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from hepinfer import paths
from hepinfer.errors import ArtefactMissing, ConfigError, ServerError
from hepinfer.logs import get_logger
from hepinfer.models.spec import ModelSpec, spec_of
from hepinfer.serving.repository import ENGINE_MODULE, RepositoryOptions, runs_torch

log = get_logger(__name__)

MEASURE_SCRIPT = Path(__file__).resolve().with_name("measure_memory.py")
MEASURE_ROWS = (16, 64)  # the two batch sizes of the slope
MEASURE_TIMEOUT_S = 900
MEMORY_FILE = "memory.json"
MMAP_THRESHOLD = 128 * 1024  # glibc's default starting threshold, kept fixed while measuring
_LAST: list[SizingPlan] = []


@dataclass(frozen=True)
class MemoryUse:
    """What one instance of ``model`` takes: ``fixed_bytes`` loaded, plus ``per_row_bytes`` per row
    of a batch (``measure``: ``cuda_max_memory_allocated`` or ``peak_resident_memory``)."""

    model: str
    per_row_bytes: int
    fixed_bytes: int = 0
    engine: str = ""
    device: str = "cpu"
    precision: str = "fp32"
    measure: str = ""
    cached: bool = field(default=False, compare=False)  # read from memory.json, not measured now


@dataclass(frozen=True)
class SizingPlan:
    """The batch limits chosen for one model: its budget share (per instance) and what fits in it."""

    model: str
    device: str
    per_row_bytes: int
    fixed_bytes: int
    instances: int
    share_bytes: int  # the budget share of each instance: fixed memory + its largest batch
    budget_bytes: int  # the whole budget of the device
    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]

    def describe(self) -> str:
        return (
            f"{self.model} on {self.device}: {format_bytes(self.per_row_bytes)} per row + "
            f"{format_bytes(self.fixed_bytes)} fixed; share {format_bytes(self.share_bytes)} x {self.instances} "
            f"instance(s) of {format_bytes(self.budget_bytes)} -> max_batch_size {self.max_batch_size}, "
            f"preferred {list(self.preferred_batch_sizes)}"
        )


def format_bytes(n: float) -> str:
    """Bytes in decimal units (``4.9 MB``, ``40 GB``)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def power_of_two_floor(n: int) -> int:
    """The largest power of two <= ``n`` (``n`` >= 1)."""
    return 1 << (int(n).bit_length() - 1)


def preferred_sizes(max_batch_size: int) -> tuple[int, ...]:
    """The dynamic batcher's targets: the largest power of two <= ``max_batch_size`` and its half."""
    top = power_of_two_floor(max_batch_size)
    return (top // 2, top) if top > 1 else (1,)


def batch_limit(
    per_row_bytes: int, fixed_bytes: int, budget_bytes: int, instances: int, spec_max: int, model: str = "model"
) -> int:
    """The ``max_batch_size`` of ``model`` when ``budget_bytes`` is its whole share, split equally
    over its ``instances``: the rows that fit after each instance's fixed memory, rounded down to a
    power of two, capped at ``spec_max``.  ConfigError when not even one row fits."""
    if instances < 1:
        raise ConfigError(f"model {model!r}: instances must be >= 1, got {instances}")
    if spec_max < 1:
        raise ConfigError(f"model {model!r}: max_batch_size must be >= 1 to be sized, got {spec_max}")
    room = budget_bytes // instances - fixed_bytes
    rows = (spec_max if room >= 0 else 0) if per_row_bytes <= 0 else room // per_row_bytes
    if rows < 1:
        raise ConfigError(
            f"model {model!r}: one row does not fit the memory budget {format_bytes(budget_bytes)} "
            f"({instances} instance(s), each {format_bytes(fixed_bytes)} fixed + "
            f"{format_bytes(per_row_bytes)} per row)"
        )
    return min(power_of_two_floor(rows), spec_max)


def plan_batches(
    uses: Iterable[MemoryUse], budget_bytes: int, caps: Mapping[str, int], instances: int = 1, device: str = "cpu"
) -> list[SizingPlan]:
    """Split ``budget_bytes`` over ``instances`` instances of each model of ``uses`` (the module doc
    says how) and size each one's batches; ``caps``: each model's largest allowed ``max_batch_size``."""
    uses = list(uses)
    if budget_bytes <= 0:
        raise ConfigError(f"memory budget must be a positive number of bytes, got {budget_bytes}")
    if instances < 1:
        raise ConfigError(f"instances must be >= 1, got {instances}")
    free = budget_bytes - instances * sum(u.fixed_bytes for u in uses)
    if free < instances * sum(max(u.per_row_bytes, 0) for u in uses):
        needs = ", ".join(
            f"{u.model} {format_bytes(u.fixed_bytes)} + {format_bytes(u.per_row_bytes)} per row" for u in uses
        )
        raise ConfigError(
            f"memory budget {format_bytes(budget_bytes)} on {device} does not hold one row of "
            f"{'model' if len(uses) == 1 else 'every model'} ({instances} instance(s) each): {needs}"
        )
    rows: dict[str, float] = {}
    active = list(uses)
    while active:  # equal rows for all; a model capped below them hands its part back
        rate = instances * sum(max(u.per_row_bytes, 0) for u in active)
        n = free // rate if rate else math.inf
        capped = [u for u in active if caps[u.model] <= n]
        if not capped:
            rows.update({u.model: n for u in active})
            break
        for u in capped:
            rows[u.model] = caps[u.model]
            free -= instances * caps[u.model] * max(u.per_row_bytes, 0)
            active.remove(u)
    limits = {}
    for u in uses:
        share = int(u.fixed_bytes + rows[u.model] * max(u.per_row_bytes, 0))
        limits[u.model] = batch_limit(
            u.per_row_bytes, u.fixed_bytes, share * instances, instances, caps[u.model], u.model
        )
    left = budget_bytes - instances * sum(u.fixed_bytes + limits[u.model] * max(u.per_row_bytes, 0) for u in uses)
    for u in sorted(uses, key=lambda u: u.per_row_bytes):  # what the rounding left: cheapest rows first
        cost = instances * max(u.per_row_bytes, 0)
        while limits[u.model] < caps[u.model]:
            grow = min(2 * limits[u.model], caps[u.model]) - limits[u.model]
            if grow * cost > left:
                break
            left -= grow * cost
            limits[u.model] += grow
    return [
        SizingPlan(
            model=u.model,
            device=device,
            per_row_bytes=u.per_row_bytes,
            fixed_bytes=u.fixed_bytes,
            instances=instances,
            share_bytes=u.fixed_bytes + limits[u.model] * max(u.per_row_bytes, 0),
            budget_bytes=budget_bytes,
            max_batch_size=limits[u.model],
            preferred_batch_sizes=preferred_sizes(limits[u.model]),
        )
        for u in uses
    ]


# -- measurement --------------------------------------------------------------------------------


def memory_path(model) -> Path:
    """``$HEPINFER_HOME/models/<model>/<version>/memory.json`` of ``model`` (its ModelSpec or resolved
    Model; also for a user model: the cache, never beside the user's file)."""
    spec = spec_of(model)
    return paths.artefact_dir(spec.name, spec.version) / MEMORY_FILE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def served_artefact(model, options: RepositoryOptions) -> tuple[str, Path, str, str]:
    """(engine, artefact, device, precision) that serve ``model`` (its ModelSpec or resolved Model)
    under ``options``."""
    from hepinfer.models.catalogue import artefact_path

    spec = spec_of(model)
    if runs_torch(spec, options):
        from hepinfer.models.architectures.torch_export import build_torch

        return "torch", build_torch(spec), options.device, options.precision
    path = artefact_path(spec)
    if not path.exists():
        raise ArtefactMissing(f"model {spec.name!r}: artefact {path} not built yet; run `hepinfer models build`")
    return spec.engine, path, "cpu", "fp32"


def memory_use(model, options: RepositoryOptions, environment=None, *, refresh: bool = False) -> MemoryUse:
    """The memory one instance of ``model`` (its ModelSpec or resolved Model) takes as ``options`` serve
    it: from memory.json, or
    measured in the server environment (``environment``, default :func:`ensure_server_env`) and
    recorded there.  ``refresh`` measures again."""
    spec = spec_of(model)
    engine, artefact, device, precision = served_artefact(spec, options)
    sha = _sha256(artefact)
    key = f"{engine}/{device}/{precision}/threads={options.threads}/{sha}"
    cache = memory_path(spec)
    try:
        known = json.loads(cache.read_text()).get("entries", {})
    except (OSError, ValueError):
        known = {}
    entry = known.get(key)
    same_method = entry is not None and entry.get("method") == _method()
    if not same_method or refresh:
        if environment is None:
            from hepinfer.serving.environment import ensure_server_env

            environment = ensure_server_env(torch=engine == "torch", gpu=device != "cpu")
        entry = _measure(spec, engine, artefact, device, precision, options.threads, environment)
        entry.update(
            artefact=artefact.name, sha256=sha, method=_method(), measured=time.strftime("%Y-%m-%dT%H:%M:%S%z")
        )
        entry["server_torch"] = getattr(environment, "torch_version", "")
        _record(cache, spec.name, key, entry)
        cached = False
    else:
        cached = True
    return MemoryUse(
        spec.name,
        int(entry["per_row_bytes"]),
        int(entry["fixed_bytes"]),
        engine,
        device,
        precision,
        entry.get("measure", ""),
        cached=cached,
    )


def _method() -> dict:
    """How a figure is measured; a cached one measured otherwise is measured again."""
    return {"rows": list(MEASURE_ROWS), "mmap_threshold": MMAP_THRESHOLD, "cpu": "sampled peak above the batch"}


def _record(cache: Path, model: str, key: str, entry: dict) -> None:
    """Add ``entry`` under ``key`` to ``cache`` (written whole, then renamed over the old file).
    Figures of an earlier version of the same artefact (same file name, other sha256) are dropped:
    that file is gone, and its figures would only be mistaken for the current one's."""
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        data = {}
    kept = {
        k: e
        for k, e in data.get("entries", {}).items()
        if not (isinstance(e, dict) and e.get("artefact") == entry["artefact"] and e.get("sha256") != entry["sha256"])
    }
    data = {"model": model, "entries": {**kept, key: entry}}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(cache)


def _measure(spec, engine: str, artefact: Path, device: str, precision: str, threads: int, environment) -> dict:
    request = {
        "engines": str(ENGINE_MODULE),
        "kind": engine,
        "artefact": str(artefact),
        "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in spec.inputs],
        "outputs": list(spec.output_names),
        "output_row_bytes": sum(t.row_bytes for t in spec.outputs),
        "device": device,
        "precision": precision,
        "threads": threads,
        "rows": list(MEASURE_ROWS),
    }
    python = Path(environment.root) / "bin" / "python"
    what = f"model {spec.name!r} ({engine} on {device}, {precision})"
    log.info(f"measuring the memory per row of {what} ...")
    try:
        done = subprocess.run(
            [str(python), "-I", str(MEASURE_SCRIPT), json.dumps(request)],
            env={**environment.process_env(), "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)},
            capture_output=True,
            text=True,
            timeout=MEASURE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:
        raise ServerError(f"measuring the memory of {what} took over {MEASURE_TIMEOUT_S} s") from err
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise ServerError(f"measuring the memory of {what} with {python} failed:\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the repository ---------------------------------------------------------------------------------


def budget_models(options: RepositoryOptions) -> tuple[ModelSpec, ...]:
    """The models that share the budget: those on the torch engine's GPU, or all when all run on CPU."""
    if options.device == "cpu":
        return tuple(options.models)
    return tuple(spec for spec in options.models if runs_torch(spec, options))


def size_options(
    options: RepositoryOptions, budget_bytes: int, environment=None
) -> tuple[RepositoryOptions, list[SizingPlan]]:
    """``options`` with the batch limits of the models on the budget's device sized to
    ``budget_bytes`` (see the module doc), and the plan of each of those models."""
    if options.flavour != "embedded":
        raise ConfigError(f"memory budgets size the embedded server's repository, not the {options.flavour!r} one")
    if budget_bytes is None or budget_bytes <= 0:
        raise ConfigError(f"memory budget must be a positive number of bytes, got {budget_bytes}")
    specs = budget_models(options)
    uses = [memory_use(spec, options, environment) for spec in specs]
    caps = {spec.name: int(options.max_batch_size.get(spec.name, spec.max_batch_size)) for spec in specs}
    plans = plan_batches(uses, int(budget_bytes), caps, options.instances, options.device)
    max_batch = {**options.max_batch_size, **{p.model: p.max_batch_size for p in plans}}
    preferred = {**options.preferred_batch_sizes, **{p.model: p.preferred_batch_sizes for p in plans}}
    return replace(options, max_batch_size=max_batch, preferred_batch_sizes=preferred), plans


def sized_options(options: RepositoryOptions, budget_bytes: int, environment=None) -> RepositoryOptions:
    """:func:`size_options` without the plans, which go to the log (one line per model) and to
    :func:`last_plans`."""
    sized, plans = size_options(options, budget_bytes, environment)
    _LAST[:] = plans
    for p in plans:
        log.info(f"batch limit: {p.describe()}")
    return sized


def last_plans() -> list[SizingPlan]:
    """The plans of the latest :func:`sized_options` in this process (what ``hepinfer serve`` prints)."""
    return list(_LAST)
