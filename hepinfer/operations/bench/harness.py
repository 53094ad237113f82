"""The benchmark harness: runs a declared :class:`~.study.Study` point by point.

It builds the artefacts of each server's models, starts the embedded server a point asks for (one
server is kept while consecutive points ask for the same options, and stopped when they change or
at the end), hands ``measure`` cached Scorers and toy inputs and a bounded closed loop, and writes
the rows as CSV, markdown and a PNG.  :func:`run` is the Python entry, :func:`main` the command's
(it also prints the table, the summary lines and the check).
"""

from __future__ import annotations

import csv
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hepinfer.logs import get_logger
from hepinfer.operations.bench.study import Params, Point, Study

log = get_logger(__name__)


def closed_loops(jobs: dict, duration_s: float) -> tuple[dict[str, list[float]], float]:
    """Every job ``{name: (call, inputs, concurrency)}`` at once: ``concurrency`` threads each call
    ``call(inputs)`` back to back, released together after every thread's warm-up call, for
    ``duration_s``.  Returns each job's latencies in seconds and the elapsed time; the first error
    of any thread is raised here."""
    latencies = {name: [[] for _ in range(c)] for name, (_, _, c) in jobs.items()}
    errors: list[BaseException] = []
    clock = {}

    def set_deadline():  # runs once, when every thread has warmed up, before any is released
        clock["t0"] = time.perf_counter()
        clock["stop_at"] = clock["t0"] + duration_s

    start = threading.Barrier(sum(c for _, _, c in jobs.values()) + 1, action=set_deadline)

    def worker(name: str, k: int):
        call, inputs, _ = jobs[name]
        try:
            call(inputs)
            start.wait()
            while time.perf_counter() < clock["stop_at"]:
                t0 = time.perf_counter()
                call(inputs)
                latencies[name][k].append(time.perf_counter() - t0)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(err)
            start.abort()

    threads = [
        threading.Thread(target=worker, args=(name, k), daemon=True)
        for name, (_, _, c) in jobs.items()
        for k in range(c)
    ]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - clock.get("t0", time.perf_counter())
    if errors:
        raise errors[0]
    return {name: [x for per in lat for x in per] for name, lat in latencies.items()}, elapsed


def closed_loop(call, inputs, concurrency: int = 1, duration_s: float = 2.0) -> dict:
    """``concurrency`` threads call ``call(inputs)`` back to back for ``duration_s``; returns rows/s
    (inferences/s), calls, and p50 / p99 latency in ms.  One warm-up call per thread first."""
    rows = len(next(iter(inputs.values())))
    latencies, elapsed = closed_loops({"": (call, inputs, concurrency)}, duration_s)
    lat = np.array(latencies[""]) * 1e3
    calls = len(lat)
    return {
        "rows_per_s": calls * rows / elapsed,
        "calls": calls,
        "p50_ms": float(np.percentile(lat, 50)) if calls else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if calls else float("nan"),
    }


class Run:
    """What ``measure`` works with: ``params``, ``server`` (the embedded server of the current
    point, or None), and cached Scorers, toy inputs and other objects (closed by the harness)."""

    def __init__(self, params: Params):
        self.params = params
        self.server = None
        self._options = None
        self._inputs: dict[tuple, dict] = {}
        self._built: set[str] = set()  # models whose artefacts this run has built (or found)
        self._kept: dict[tuple, tuple[object, bool]] = {}  # key -> (object, tied to the server)

    def use(self, server: dict | None) -> None:
        """Make ``server`` (``serve`` keyword arguments) the running server, or none."""
        from hepinfer.serving.server import ServerOptions

        options = None if server is None else ServerOptions(**{**server, "models": tuple(server["models"])})
        if options == self._options:
            return
        self._stop()
        if options is not None:
            from hepinfer.models.architectures import build_all
            from hepinfer.serving.server import EmbeddedServer

            missing = [s for s in options.specs if s.name not in self._built]  # resolved by ServerOptions
            if missing:
                build_all(missing, level=logging.DEBUG)
                self._built.update(s.name for s in missing)
            self.server = EmbeddedServer(options).start()
            log.info(f"embedded server at {self.server.url} (pid {self.server.pid}): {_describe_server(server)}")
        self._options = options

    def keep(self, key, make: Callable[[], object], with_server: bool = True):
        """``make()``'s result, made once per ``key``; closed (if it can be) when the server stops
        (``with_server``) or at the end."""
        if key not in self._kept:
            self._kept[key] = (make(), with_server)
        return self._kept[key][0]

    def scorer(self, model, mode: str = "remote", **settings):
        """A Scorer of ``model`` (a ModelSpec): remote ones talk to the current server; ``settings``
        are :class:`~hepinfer.config.InferenceConfig` fields."""
        from hepinfer.scorer import Scorer

        remote = mode != "local"
        url = self.server.url if remote else None
        key = ("scorer", model.name, mode, url, tuple(sorted(settings.items())))
        return self.keep(key, lambda: Scorer(model, mode=mode, url=url, **settings), with_server=remote)

    def inputs(self, model, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Toy inputs of ``model`` (a ModelSpec; :func:`hepinfer.models.toy.toy_inputs`), ``batch`` rows."""
        from hepinfer.models.toy import toy_inputs

        key = (model.name, batch, seed)
        if key not in self._inputs:
            self._inputs[key] = toy_inputs(model, batch, seed=seed)
        return self._inputs[key]

    def loop(self, call, inputs, concurrency: int = 1) -> dict:
        """:func:`closed_loop` for the study's ``duration_s``."""
        return closed_loop(call, inputs, concurrency, self.params.duration_s)

    def _release(self, only_server: bool) -> None:
        errors = []
        for key, (obj, tied) in list(self._kept.items()):
            if tied or not only_server:
                del self._kept[key]
                try:
                    if hasattr(obj, "close"):
                        obj.close()
                except Exception as err:  # noqa: BLE001 - the first is raised once every object is closed
                    errors.append(err)
        if errors:
            raise errors[0]

    def _stop(self) -> None:
        try:
            self._release(only_server=True)
        finally:
            if self.server is not None:
                self.server.stop()
            self.server, self._options = None, None

    def close(self) -> None:
        try:
            self._release(only_server=False)
        finally:
            self._stop()


def _describe_server(server: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in server.items())


def _describe(point: Point, measured: dict) -> str:
    what = ", ".join(f"{k} {v}" for k, v in point.row.items())
    figures = [
        f"{measured[k]:,.1f} {unit}"
        for k, unit in (("rows_per_s", "rows/s"), ("events_per_s", "events/s"), ("p50_ms", "ms p50"))
        if k in measured
    ]
    return f"{what}: {', '.join(figures)}" if figures else what


def get_study(name: str | Study) -> Study:
    """A registered study by name (:data:`hepinfer.operations.bench.studies.STUDIES`)."""
    if isinstance(name, Study):
        return name
    from hepinfer.operations.bench.studies import STUDIES

    if name not in STUDIES:
        from hepinfer.errors import ConfigError

        raise ConfigError(f"no bench study {name!r}; studies: {', '.join(STUDIES)}")
    return STUDIES[name]


def run(name: str | Study, out_dir=None, quick: bool = False, **params) -> list[dict]:
    """Measure every point of a study and return its rows; with ``out_dir``, also write
    ``<output>.csv``, ``.md`` and ``.png`` there.  ``params`` override the study's defaults (and
    its quick ones)."""
    s = get_study(name)
    return measure(s, s.resolve(quick, **params), out_dir)


def measure(s: Study, p: Params, out_dir=None) -> list[dict]:
    """:func:`run` with the parameters resolved."""
    if s.prepare is not None:
        s.prepare(p)
    rows = []
    ctx = Run(p)
    try:
        for point in s.points(p):
            ctx.use(point.server)
            measured = s.measure(ctx, point)
            log.info(f"{s.name}: {_describe(point, measured)}")
            rows.append({**point.row, **measured})
    finally:
        ctx.close()
    if out_dir:
        write(s, rows, p, out_dir)
    return rows


def write(s: Study, rows: list[dict], p: Params, out_dir) -> list[Path]:
    """The study's CSV (its ``columns``), markdown table and plot in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = s.stem(p)
    with open(out_dir / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(s.columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out_dir / f"{stem}.md").write_text(f"## {s.heading(p)}\n\n{table(s, rows)}\n")
    written = [out_dir / f"{stem}.csv", out_dir / f"{stem}.md"]
    if s.plot is not None:
        s.plot(rows, out_dir / f"{stem}.png", p)
        written.append(out_dir / f"{stem}.png")
    return written


def table(s: Study, rows: list[dict]) -> str:
    """The study's markdown table of ``rows``."""
    return markdown(rows, s.table or s.columns, s.headers)


def markdown(rows: list[dict], columns, headers: dict | None = None) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
        return str(v)

    headers = headers or {}
    lines = ["| " + " | ".join(headers.get(c, c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main(name: str, out_dir, quick: bool = False, options: dict | None = None) -> int:
    """``hepinfer bench``: run the study with the command line's ``options`` (flag -> value; they
    win over ``--quick``), print its table, summary and check; 1 when the check fails, else 0."""
    s = get_study(name)
    flags = {opt.flag: param for param, opt in s.options.items()}
    given = {}
    for flag, value in (options or {}).items():
        if flag in flags:
            given[flags[flag]] = value
        else:
            print(f"hepinfer bench {s.name}: {flag} does not apply to this study (ignored)", file=sys.stderr)
    p = s.resolve(quick, **given)
    rows = measure(s, p, out_dir)
    print("\n" + table(s, rows))
    lines = list(s.summary(rows, p)) if s.summary else []
    if lines:
        print("\n" + "\n".join(lines))
    if out_dir:
        stem = s.stem(p)
        print(f"\nwrote {stem}.csv, {stem}.md{f', {stem}.png' if s.plot else ''} in {out_dir}")
    failure = s.check(rows, p) if s.check else None
    if failure:
        print(f"\n{failure}", file=sys.stderr)
        return 1
    return 0
