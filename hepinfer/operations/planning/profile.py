"""``hepinfer profile``: measure serving configurations of each model on this machine's CPU or GPU (the
embedded server) or on a remote server, and save them as a :class:`~.schema.Profile` that
``hepinfer plan`` reads.

For each model a search (:mod:`.search`, a coordinate ascent from one instance, dynamic batching
with a 100 µs delay, 64 rows per request and 4 requests in flight) keeps the fastest configuration
whose p99 latency is under the limit; every configuration tried is a
:class:`~.schema.Measurement` (:mod:`.targets`).  The models are then served together in one
server, each in its best configuration, and loaded at once against each alone: an
:class:`~.schema.Interference`.  The profile goes to ``--out`` (default
``$HEPINFER_HOME/profiles/<host>-<device>.json``) with a PNG beside it: throughput against p99
latency of every configuration, one colour per model, the best marked.

On a remote server (``url``) only the client's load varies (request rows, concurrency): its
instances, batching, precision and batch limits are its own, read from its model config.  The
client runs on this machine in every case: its threads share the CPU with an embedded server.
``quick``: 1 s per configuration, few steps, 16 rows per request and 2 in flight at the start,
ParticleNet and the BDT (what CI runs).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from hepinfer import paths
from hepinfer.errors import ConfigError, HepinferError
from hepinfer.logs import get_logger
from hepinfer.operations.planning.remote import RemoteTarget
from hepinfer.operations.planning.schema import Profile, ServingConfig
from hepinfer.operations.planning.search import Search, SearchSpace, best
from hepinfer.operations.planning.targets import EmbeddedTarget, Target, is_network

log = get_logger(__name__)
DEFAULT_MODELS = ("particlenet", "resnet50", "bdt")
QUICK_MODELS = ("particlenet", "bdt")


@dataclass(frozen=True)
class ProfileSettings:
    """What ``hepinfer profile`` measures; None means the default (the quick one with ``quick``).
    :meth:`resolved` fills the defaults and, for the embedded server, looks the models up once:
    ``specs`` (a remote server's models are the ones it serves, found by the target's Scorers)."""

    models: tuple[str, ...] | None = None
    device: str = "cpu"  # "cpu" | "cuda:N"
    engine: str | None = None  # None: torch on a GPU, the models' own engines on the CPU
    url: str | None = None  # a remote server instead of the embedded one
    metrics_url: str | None = None  # the remote server's metrics (default: its host, port 8002)
    admin_token: str = ""  # sent to the remote server with every request
    latency_p99_ms: float = 100.0
    duration_s: float | None = None  # per configuration: 5 s, quick 1 s
    request_rows: int | None = None  # at the start: 64, quick 16
    concurrency: int | None = None  # at the start: 4, quick 2
    max_steps: int | None = None  # configurations per model: 24, quick 5
    colocate: bool = True
    quick: bool = False
    specs: tuple = field(default=(), repr=False, compare=False)  # the models' ModelSpecs (embedded server)

    def resolved(self) -> ProfileSettings:
        from hepinfer.models.resolved import resolve

        q = self.quick
        engine = self.engine or ("torch" if self.device != "cpu" else "default")
        models = tuple(self.models or (QUICK_MODELS if q else DEFAULT_MODELS))
        known = {s.name: s for s in self.specs}
        specs = () if self.url else tuple(known.get(m) or resolve(m).spec for m in models)
        out = replace(
            self,
            models=tuple(s.name for s in specs) if specs else models,
            specs=specs,
            engine=engine,
            duration_s=self.duration_s or (1.0 if q else 5.0),
            request_rows=self.request_rows or (16 if q else 64),
            concurrency=self.concurrency or (2 if q else 4),
            max_steps=self.max_steps or (5 if q else 24),
        )
        if not out.latency_p99_ms > 0:
            raise ConfigError(f"latency_p99_ms must be > 0, got {out.latency_p99_ms}")
        for name in ("duration_s", "request_rows", "concurrency", "max_steps"):
            if not getattr(out, name) > 0:
                raise ConfigError(f"profile setting {name} must be > 0, got {getattr(out, name)}")
        if out.url is None:
            from hepinfer.serving.repository import check_engine_choice

            check_engine_choice(engine, out.device, "fp32", False)
        return out


def search_space(target: Target, start: ServingConfig, s: ProfileSettings, spec=None) -> SearchSpace:
    """What the search varies for ``start``'s model (``spec``: its ModelSpec; a remote target needs
    none) on ``target``."""
    rows = start.request_rows
    if target.kind == "remote":
        return SearchSpace(
            concurrency_max=start.concurrency * (2 if s.quick else 16),
            instances=(),
            batching=(),
            request_rows=() if s.quick else (max(rows // 4, 1), rows * 4),
            max_steps=s.max_steps,
            second_pass=False,
        )
    if s.quick:
        return SearchSpace(
            concurrency_max=start.concurrency * 2,
            instances=(2,),
            batching=((True, 1000),),
            max_steps=s.max_steps,
            second_pass=False,
        )
    precisions = ()
    if start.engine == "torch" and is_network(spec):
        precisions = ("fp16", "bf16") if start.device != "cpu" else ("bf16",)  # fp16 on a CPU is emulated
    return SearchSpace(precisions=precisions, max_batch_sizes=batch_limits(target, start, spec), max_steps=s.max_steps)


def batch_limits(target: Target, start: ServingConfig, spec) -> tuple[int, ...]:
    """The model's own max_batch_size (``spec``: its ModelSpec), its half, and its double where one
    instance's largest batch fits the device's memory (host memory on the CPU), from the model's
    measured memory per row."""
    own = spec.max_batch_size
    limits = [own // 2] if own >= 2 else []
    try:
        from hepinfer.serving.memory_budget import format_bytes, memory_use
        from hepinfer.serving.repository import RepositoryOptions

        options = RepositoryOptions(
            models=(start.model,), engine=start.engine, device=start.device, precision=start.precision
        )
        use = memory_use(spec, options)
    except HepinferError as err:
        target.problems.append(f"{start.model}: max_batch_size {2 * own} not tried (memory per row unknown: {err})")
        return tuple(limits)
    h = target.hardware
    available = h.device_memory_bytes if start.device != "cpu" else h.memory_bytes
    needed = use.fixed_bytes + use.per_row_bytes * 2 * own
    if needed <= available:
        limits.append(2 * own)
    else:
        target.problems.append(
            f"{start.model}: max_batch_size {2 * own} not tried: one instance would need {format_bytes(needed)} "
            f"of {format_bytes(available)}"
        )
    return tuple(limits)


def make_target(s: ProfileSettings) -> Target:
    if s.url:
        return RemoteTarget(s.url, s.duration_s, metrics_url=s.metrics_url, admin_token=s.admin_token)
    from hepinfer.models.architectures import build_all

    build_all(list(s.specs), level=logging.DEBUG)
    return EmbeddedTarget(s.device, s.engine, s.duration_s)


def profile(settings: ProfileSettings | None = None, target: Target | None = None) -> Profile:
    """Search each model's configurations, then measure the models together; the :class:`Profile`."""
    from hepinfer import __version__

    s = (settings or ProfileSettings()).resolved()
    target = target or make_target(s)
    found = Profile(
        hardware=target.hardware,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        hepinfer_version=__version__,
    )
    try:
        bests = []
        for model in s.specs or s.models:  # ModelSpecs for the embedded server, names for a remote one
            start = target.start_config(model, s.request_rows, s.concurrency)
            spec = model if s.specs else None
            search = Search(target.measure, s.latency_p99_ms, search_space(target, start, s, spec))
            found.measurements += search.run(start)
            if search.best is not None and search.best.errors == 0:
                bests.append(search.best.config)
        found.hardware = target.hardware
        if s.colocate and len(bests) >= 2:
            try:
                found.interference.append(target.colocate(bests))
            except HepinferError as err:
                target.problems.append(f"models together ({', '.join(c.model for c in bests)}): {err}")
    finally:
        target.close()
    found.notes = notes(s, target) + target.problems
    return found


def notes(s: ProfileSettings, target: Target) -> list[str]:
    out = [
        f"target: remote server {s.url}" if s.url else f"target: embedded server on {s.device}, engine {s.engine}",
        f"p99 latency limit {s.latency_p99_ms:g} ms; {s.duration_s:g} s per configuration"
        + ("; quick search" if s.quick else ""),
        "the client (hepinfer Scorers in threads) runs on this machine",
    ]
    if s.url:
        out.append("remote server: only request rows and concurrency varied; its serving configuration is its own")
        out.append("memory: the server's GPU metrics where it publishes them, else not measured (0)")
    elif s.device != "cpu":
        out.append(f"models other than the networks run on the CPU of this machine, not on {s.device}")
    return out


def best_per_model(p: Profile, p99_limit_ms: float) -> dict:
    return {m: best(p.for_model(m), p99_limit_ms) for m in p.models()}


def default_path(hardware, settings: ProfileSettings) -> Path:
    """``$HEPINFER_HOME/profiles/<host>-<device>.json``."""
    if settings.url:
        from hepinfer.urls import TritonUrl

        u = TritonUrl.parse(settings.url)
        name = f"{u.host}-remote-{u.port}"
    else:
        name = f"{hardware.host or 'host'}-{settings.device.replace(':', '')}"
    return paths.home() / "profiles" / f"{name}.json"


def table(p: Profile, p99_limit_ms: float) -> str:
    """The best configuration of each model (markdown), then the interference lines."""
    from hepinfer.operations.bench.harness import markdown
    from hepinfer.serving.memory_budget import format_bytes

    rows = []
    for model, m in best_per_model(p, p99_limit_ms).items():
        if m is None:
            continue
        over = " (failed)" if m.errors else " (over limit)" if m.p99_ms > p99_limit_ms else ""
        rows.append(
            {
                "model": model,
                "best configuration": m.config.key().removeprefix(model + " "),
                "rows/s": m.throughput,
                "p50 ms": m.p50_ms,
                "p99 ms": f"{m.p99_ms:,.1f}{over}",
                "memory": format_bytes(m.memory_bytes) if m.memory_bytes else "-",
                "GPU busy": f"{m.gpu_utilisation:.0%}" if m.gpu_utilisation is not None else "-",
                "queue µs": m.queue_us,
                "compute µs": m.compute_us,
                "tried": len(p.for_model(model)),
            }
        )
    columns = list(rows[0]) if rows else ["model"]
    lines = [markdown(rows, columns)]
    for i in p.interference:
        each = ", ".join(
            f"{m} {i.alone[m]:,.0f} alone, {i.together[m]:,.0f} together (slowdown x{i.slowdown[m]:.2f})"
            for m in i.models
        )
        lines.append(f"served together, rows/s: {each}")
    return "\n\n".join(lines)


def plot(p: Profile, path, p99_limit_ms: float) -> Path:
    from hepinfer.figures import throughput_latency

    bests = {id(m) for m in best_per_model(p, p99_limit_ms).values() if m is not None}
    points = [
        {
            "model": m.config.model,
            "throughput": m.throughput,
            "p99_ms": m.p99_ms,
            "best": id(m) in bests,
            "failed": bool(m.errors) or m.throughput <= 0,
        }
        for m in p.measurements
    ]
    return throughput_latency(points, path, p99_limit_ms, title=f"{p.hardware.name}")


def main(settings: ProfileSettings, out=None) -> int:
    """``hepinfer profile``: measure, save the JSON and the PNG, print the table; 1 when no model
    has a configuration that ran without errors."""
    s = settings.resolved()
    found = profile(s)
    path = Path(out) if out else default_path(found.hardware, s)
    try:
        found.save(path)
        png = plot(found, path.with_suffix(".png"), s.latency_p99_ms)
    except OSError as err:
        raise ConfigError(f"profile output {path}: cannot be written ({err})") from err
    print(f"\nprofile of {found.hardware.name} ({found.hardware.kind}), p99 limit {s.latency_p99_ms:g} ms\n")
    print(table(found, s.latency_p99_ms))
    for line in found.notes:
        print(f"note: {line}")
    print(f"\nwrote {path} and {png}")
    ok = [m for m in best_per_model(found, s.latency_p99_ms).values() if m is not None and not m.errors]
    return 0 if ok else 1
