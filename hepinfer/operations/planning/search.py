"""The search over one model's serving configurations: a coordinate ascent, not a full grid (in the
spirit of NVIDIA Model Analyzer's quick search).

From a start configuration (one instance, dynamic batching with a 100 µs delay, 64 rows per request,
4 requests in flight), each knob is varied in turn while the others stay at the best found so far:

1. **concurrency**: doubled while the throughput rises by more than ``gain`` (5 %) and the p99
   latency stays under the limit; when the start is already over the limit, halved instead;
2. **instances**: 2, then 4 only when 2 won;
3. **batching**: the dynamic batcher's delay (0 and 1000 µs besides the start's) and batching off;
4. **precision** (the networks on the torch engine), **max_batch_size** (the model's own, half,
   double where memory allows), **request rows** (a remote server, where only the client varies);
5. concurrency again when the best server-side configuration is no longer the start's.

A configuration is measured once (``measure(config) -> Measurement``, the caller's); the search
stops measuring after ``max_steps``, and at once when the start fails (a server that cannot start
there will not start with other knobs either).  Ranking (:func:`rank`): configurations without errors and with
p99 under the limit by throughput, above those over the limit by lower p99, above failed ones.  A
candidate replaces the best when it ranks higher, so the best is the highest-ranked configuration
measured: the fastest under the limit, or the one closest to it when none is under it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from hepinfer.logs import get_logger
from hepinfer.operations.planning.schema import Measurement, ServingConfig

log = get_logger(__name__)


@dataclass(frozen=True)
class SearchSpace:
    """The values the search tries besides the start's."""

    concurrency_max: int = 64
    instances: tuple[int, ...] = (2, 4)  # in order; the next only when the one before won
    batching: tuple[tuple[bool, int], ...] = ((True, 0), (True, 1000), (False, 100))  # (dynamic, delay µs)
    precisions: tuple[str, ...] = ()
    max_batch_sizes: tuple[int, ...] = ()  # 0: the model's own
    request_rows: tuple[int, ...] = ()
    gain: float = 0.05  # the least relative rise in throughput that keeps concurrency doubling
    max_steps: int = 24
    second_pass: bool = True


def acceptable(m: Measurement, p99_limit_ms: float) -> bool:
    return m.errors == 0 and m.throughput > 0 and m.p99_ms <= p99_limit_ms


def rank(m: Measurement, p99_limit_ms: float) -> tuple[int, float]:
    """Higher is better: under the limit by throughput, then over it by lower p99, then failed."""
    if acceptable(m, p99_limit_ms):
        return (2, m.throughput)
    if m.errors == 0 and m.throughput > 0:
        return (1, -m.p99_ms)
    return (0, 0.0)


def best(measurements, p99_limit_ms: float) -> Measurement | None:
    """The highest-ranked of ``measurements`` (the first of equals), or None."""
    found = None
    for m in measurements:
        if found is None or rank(m, p99_limit_ms) > rank(found, p99_limit_ms):
            found = m
    return found


def server_side(c: ServingConfig) -> ServingConfig:
    """The part of a configuration that needs another server (everything but the client's load)."""
    return replace(c, request_rows=0, concurrency=0)


class Search:
    """One model's search; :meth:`run` returns every measurement in the order taken."""

    def __init__(
        self,
        measure: Callable[[ServingConfig], Measurement],
        p99_limit_ms: float = 100.0,
        space: SearchSpace | None = None,
    ):
        self.measure = measure
        self.limit = p99_limit_ms
        self.space = space or SearchSpace()
        self.tried: dict[ServingConfig, Measurement] = {}

    # -- steps -----------------------------------------------------------------------------------
    def _try(self, config: ServingConfig) -> Measurement | None:
        if config in self.tried:
            return self.tried[config]
        if len(self.tried) >= self.space.max_steps:
            return None
        m = self.measure(config)
        self.tried[config] = m
        log.info(
            "profile %s: %.1f rows/s, p50 %.1f ms, p99 %.1f ms%s",
            config.key(),
            m.throughput,
            m.p50_ms,
            m.p99_ms,
            f", {m.errors} errors" if m.errors else "",
        )
        return m

    def _better(self, candidate: ServingConfig, incumbent: ServingConfig) -> bool:
        return rank(self.tried[candidate], self.limit) > rank(self.tried[incumbent], self.limit)

    def _concurrency(self, inc: ServingConfig) -> ServingConfig:
        m = self._try(inc)
        if m is None:
            return inc
        if m.errors == 0 and m.throughput > 0 and m.p99_ms > self.limit:
            while inc.concurrency > 1:  # over the limit: fewer requests in flight
                cand = replace(inc, concurrency=inc.concurrency // 2)
                if self._try(cand) is None or not self._better(cand, inc):
                    break
                inc = cand
                if acceptable(self.tried[inc], self.limit):
                    break
            return inc
        while inc.concurrency * 2 <= self.space.concurrency_max:
            cand = replace(inc, concurrency=inc.concurrency * 2)
            mc = self._try(cand)
            if mc is None:
                break
            current = self.tried[inc]
            rising = acceptable(mc, self.limit) and mc.throughput > current.throughput * (1 + self.space.gain)
            if self._better(cand, inc):
                inc = cand
            if not rising:
                break
        return inc

    def _choose(self, inc: ServingConfig, candidates) -> ServingConfig:
        """The best of ``inc`` and ``candidates`` (each measured in turn)."""
        for cand in candidates:
            if cand == inc:
                continue
            if self._try(cand) is None:
                break
            if self._better(cand, inc):
                inc = cand
        return inc

    def _instances(self, inc: ServingConfig) -> ServingConfig:
        for n in self.space.instances:
            cand = replace(inc, instances=n)
            if cand == inc:
                continue
            if self._try(cand) is None or not self._better(cand, inc):
                break
            inc = cand
        return inc

    # -- the whole search ------------------------------------------------------------------------
    def run(self, start: ServingConfig) -> list[Measurement]:
        s = self.space
        first = self._try(start)
        if first is None or (first.errors and first.throughput <= 0):
            return list(self.tried.values())  # nothing to ascend from
        inc = self._concurrency(start)
        if self.tried:
            inc = self._instances(inc)
            inc = self._choose(
                inc, [replace(inc, dynamic_batching=on, max_queue_delay_us=delay) for on, delay in s.batching]
            )
            inc = self._choose(inc, [replace(inc, precision=p) for p in s.precisions])
            inc = self._choose(inc, [replace(inc, max_batch_size=b) for b in s.max_batch_sizes])
            inc = self._choose(inc, [replace(inc, request_rows=r) for r in s.request_rows])
            if s.second_pass and server_side(inc) != server_side(start):
                inc = self._concurrency(inc)
        return list(self.tried.values())

    @property
    def best(self) -> Measurement | None:
        return best(self.tried.values(), self.limit)
