"""Several servers for one model, tried in CMSSW SONIC's order.

A scoring call goes to the first server of the model's list (:func:`hepinfer.runtime.servers.endpoints`)
that is not set aside:

1. before the first inference there, a session is opened (:mod:`hepinfer.runtime.sessions`), with a
   bounded wait;
2. the call is retried on that same server (``retries`` with backoff, :mod:`hepinfer.retry`);
3. a server whose session fails or whose retries are spent is set aside for ``reprobe_interval_s``
   and the whole call goes to the next server: outputs are used only from a call that succeeded
   in full on one server, so no row is lost or scored twice;
4. when every server failed, mode ``auto`` computes the call locally (:class:`hepinfer.Scorer`).

A set-aside server is asked again once its time is over: its session is opened anew (waiting at
most ``probe_timeout_s``), and it serves again when that succeeds.  In mode ``remote``, when every
server is set aside, all are asked again at once rather than failing without a try.

:class:`Servers` keeps this per process (runtimes and states are never pickled).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from hepinfer.caching import ProcessCache
from hepinfer.errors import HepinferError, InferenceTimeout, ModelNotFound, ServerUnavailable
from hepinfer.logs import get_logger
from hepinfer.retry import Attempts, call_with_retries
from hepinfer.runtime.servers import Endpoint, endpoints
from hepinfer.runtime.sessions import open_session

log = get_logger(__name__)
FAILOVER_ERRORS = (ServerUnavailable, InferenceTimeout, ModelNotFound)


@dataclass
class ServerState:
    """One server's state in this process: ``session`` open, set aside until ``aside_until``
    (monotonic time), ``was_aside`` (set aside at least once since it last served)."""

    session: bool = False
    aside_until: float = 0.0
    was_aside: bool = False
    failed_at: float = 0.0
    reason: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Outcome:
    """What one call across the servers gave: ``outputs`` and the ``endpoint`` that computed them
    (None when every server failed: ``error``, the last one), ``notes`` on each server given up on,
    ``returned`` (the endpoint had been set aside before)."""

    outputs: dict | None = None
    endpoint: Endpoint | None = None
    notes: list[str] = field(default_factory=list)
    error: HepinferError | None = None
    returned: bool = False

    @property
    def failovers(self) -> int:
        return len(self.notes)


class _SetAside(ServerUnavailable):
    """The server was set aside by another thread while this one waited for its session."""


def _short(err: BaseException) -> str:
    return str(err).split(". Start one with")[0]


class Servers:
    """The servers of one model under one config, with their runtimes and states in this process."""

    def __init__(self, spec, config):
        self.spec, self.config = spec, config
        self.endpoints = endpoints(spec, config)
        self._runtimes: ProcessCache = ProcessCache()
        self._states: ProcessCache = ProcessCache()

    def runtime(self, ep: Endpoint):
        from hepinfer.runtime.triton import TritonRuntime

        def make():
            return TritonRuntime(
                self.spec, url=ep.url, config=self.config, model_name=ep.model_name, model_version=ep.model_version
            )

        return self._runtimes.get(ep, make)

    def state(self, ep: Endpoint) -> ServerState:
        return self._states.get(ep, ServerState)

    def order(self, *, every_if_none: bool) -> list[Endpoint]:
        """The servers a call tries, in order: those not set aside (all of them, with
        ``every_if_none``, when each is)."""
        now = time.monotonic()
        ready = [ep for ep in self.endpoints if self.state(ep).aside_until <= now]
        return ready or (list(self.endpoints) if every_if_none else [])

    def set_aside(self, ep: Endpoint, err: BaseException) -> None:
        st = self.state(ep)
        with st.lock:
            self._aside(ep, st, err)

    def _aside(self, ep: Endpoint, st: ServerState, err: BaseException) -> None:
        st.session, st.was_aside, st.reason = False, True, _short(err)
        st.failed_at = time.monotonic()
        st.aside_until = st.failed_at + self.config.reprobe_interval_s
        log.warning(
            "%s: server %s set aside for %g s: %s", self.spec.name, ep.server, self.config.reprobe_interval_s, st.reason
        )

    def open(self, ep: Endpoint, wait_s: float, *, since: float, forced: bool) -> None:
        """Open the session on ``ep`` unless it is open, for a call started at ``since``: one thread at a
        time, the others wait for it (and do not ask again a server it has just set aside)."""
        st = self.state(ep)
        with st.lock:
            if st.session:
                return
            if st.aside_until > time.monotonic() and (not forced or st.failed_at >= since):
                raise _SetAside(st.reason)
            wait = wait_s if not st.was_aside else min(wait_s, self.config.probe_timeout_s)
            try:
                made = open_session(self.runtime(ep), wait, self.config.backoff, wait=self.config.retries > 0)
            except FAILOVER_ERRORS as err:
                self._aside(ep, st, err)
                raise
            st.session = True
            log.debug("%s: session opened on %s after %d call(s)", self.spec.name, ep, made.count)

    def call(self, inputs, attempts: Attempts, *, session_wait_s: float, every_if_none: bool) -> Outcome:
        """Score ``inputs`` on the first server that gives the outputs (the module's order);
        ``attempts`` counts the inference attempts on every server."""
        out, started = Outcome(), time.monotonic()
        candidates = self.order(every_if_none=every_if_none)
        forced = bool(candidates) and all(self.state(ep).aside_until > started for ep in candidates)
        for ep in candidates:
            tried = Attempts()
            try:
                outputs = self._on(ep, inputs, tried, out, session_wait_s, started, forced)
            finally:
                attempts.count += tried.count
                attempts.elapsed_s = time.monotonic() - started
            if outputs is not None:
                st = self.state(ep)
                out.outputs, out.endpoint, out.returned, out.error = outputs, ep, st.was_aside, None
                if st.was_aside:
                    log.warning("%s: server %s answers again; in use", self.spec.name, ep.server)
                st.was_aside = False
                return out
        return out

    def _on(self, ep: Endpoint, inputs, tried: Attempts, out: Outcome, session_wait_s: float, since: float, forced):
        """The outputs of ``inputs`` on ``ep``, or None (the server given up on: noted in ``out``)."""
        runtime, t0 = self.runtime(ep), time.monotonic()
        try:
            self.open(ep, session_wait_s, since=since, forced=forced)
        except _SetAside as err:
            out.notes.append(f"server {ep.server}: set aside")
            out.error = ServerUnavailable(str(err))
            return None
        except FAILOVER_ERRORS as err:
            out.notes.append(f"server {ep.server}: no session (after {time.monotonic() - t0:.1f} s)")
            out.error = err.with_traceback(None)  # no cycle through the frames that hold `out`
            return None
        try:
            # A model this process has seen ready and now misses is a restarting server: retried.
            return call_with_retries(
                lambda: runtime.infer(inputs),
                self.config.backoff,
                FAILOVER_ERRORS,
                retry_if=lambda e: runtime.seen_ready or not isinstance(e, ModelNotFound),
                before_retry=lambda e: runtime.reconnect(),
                attempts=tried,
            )
        except FAILOVER_ERRORS as err:
            n = tried.count
            out.notes.append(
                f"server {ep.server}: gave up after {n} attempt{'s' if n > 1 else ''} in {tried.elapsed_s:.1f} s"
            )
            out.error = err.with_traceback(None)  # no cycle through the frames that hold `out`
            self.set_aside(ep, err)
            return None

    def close(self) -> None:
        for runtime in self._runtimes.values():
            runtime.close()
