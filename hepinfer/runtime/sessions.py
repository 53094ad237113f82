"""The session rule of SuperSONIC's proxy, kept by the client: before its first inference on a server,
a client opens a session there with a repository index call (gRPC ``RepositoryIndex``; over HTTP
``POST v2/repository/index``: tritonclient's ``get_model_repository_index``).

A proxy in front of the servers admits or refuses new sessions at that call: SuperSONIC's Envoy
refuses it (UNAVAILABLE) while the servers are saturated and never refuses an inference in flight,
and a deployment that scales from zero starts a server when it sees the call.  So the client waits
for an answer for a bounded time (:func:`open_session`): UNAVAILABLE or no answer in time is asked
again, with the retry backoff's delays, until the wait is over.  A refused connection (nothing
listens at the address: no proxy is there to start a server) is asked again only as often as
``retries`` says, like any call.  The index that comes back must list the model READY (LOADING:
asked again); a server that keeps its index to its administrator (hepinfer's embedded server
restricts the repository protocol) has answered, and its readiness call says whether it has the
model.
"""

from __future__ import annotations

import time

from hepinfer.errors import InferenceTimeout, ModelNotFound, ServerError, ServerUnavailable
from hepinfer.logs import get_logger
from hepinfer.retry import Attempts, Backoff, call_with_retries

log = get_logger(__name__)
SESSION = "opening a session (repository index)"
_RESTRICTED = "is restricted, expecting header"  # Triton's answer on a restricted protocol
_UNBOUNDED = 10**9  # retries of the session call: bounded by the wait, not counted


def repository_index(runtime, timeout_s: float) -> list[dict]:
    """The repository index of the runtime's server: [{"name", "version", "state", ...}]."""
    client = runtime.client
    kw: dict = {"headers": runtime.request_headers()}
    if runtime.url.protocol == "grpc":
        answer = runtime._call(SESSION, client.get_model_repository_index, as_json=True, client_timeout=timeout_s, **kw)
        return list(answer.get("models", []))
    return list(runtime._call(SESSION, client.get_model_repository_index, **kw))


def _index_says(runtime, models: list[dict]) -> None:
    """Returns when ``models`` lists the runtime's model READY; raises ServerUnavailable while it is
    LOADING (asked again) and ModelNotFound otherwise."""
    name, version = runtime.model_name, runtime.model_version
    entries = [m for m in models if m.get("name") == name and (not version or str(m.get("version", "")) == version)]
    states = {str(m.get("state", "")).upper() for m in entries}
    if "READY" in states:
        return
    where = f"model {name!r} (version {version or 'latest'}) on the Triton server at {runtime.url}"
    if "LOADING" in states:
        raise ServerUnavailable(f"{SESSION}: {where} is loading")
    listed = ", ".join(f"{m.get('name')} {m.get('version', '')} {m.get('state', '')}".strip() for m in entries)
    raise ModelNotFound(
        f"{where} is not ready: the server's repository index lists {listed or 'no such model'}"
        + ("" if entries else f" (it has: {', '.join(sorted({str(m.get('name')) for m in models})) or 'none'})")
    )


def _ask(runtime, deadline: float) -> None:
    timeout_s = max(0.2, min(runtime.config.timeout_s, deadline - time.monotonic()))
    try:
        return _index_says(runtime, repository_index(runtime, timeout_s))
    except ServerError as err:
        if _RESTRICTED not in str(err):
            raise
    # the server answered and keeps its index to its administrator: its readiness call decides
    if runtime.is_ready():
        return None
    raise ModelNotFound(
        f"model {runtime.model_name!r} (version {runtime.model_version or 'latest'}) is not ready on the Triton "
        f"server at {runtime.url}: it is not loaded, or still loading"
    )


def _refused(err: BaseException) -> bool:
    """Nothing listens at the address (the connection was refused): no proxy is there to start a
    server, unlike a deployment scaled to zero, whose proxy answers UNAVAILABLE while it starts one."""
    text = str(err).lower()
    return "connection refused" in text or "errno 111" in text


def open_session(runtime, wait_s: float, backoff: Backoff, *, wait: bool = True) -> Attempts:
    """Open a session on the runtime's server for its model: the repository index call, asked again
    with ``backoff``'s delays for up to ``wait_s`` while the server is unavailable or does not answer
    (``wait=False``: asked once).  Raises ServerUnavailable / InferenceTimeout once the wait is
    over, ModelNotFound at once for a server without the model; returns the calls made."""
    deadline = time.monotonic() + wait_s
    bounded = Backoff(_UNBOUNDED if wait else 0, backoff.initial_ms, backoff.max_ms, wait_s)
    attempts = Attempts()

    def again(err: BaseException) -> None:
        if attempts.count == 1:
            more = f"up to {backoff.retries} times" if _refused(err) else f"for up to {wait_s:g} s"
            log.warning("%s: no session yet (%s); asking again %s", runtime.url, err, more)
        runtime.reconnect()  # a fresh channel, not one in gRPC's reconnect backoff

    call_with_retries(
        lambda: _ask(runtime, deadline),
        bounded,
        (ServerUnavailable, InferenceTimeout),
        # a wrong certificate does not heal; nothing listening is retried like any call, not waited for
        retry_if=lambda err: (
            "TLS handshake" not in str(err) and not (_refused(err) and attempts.count > backoff.retries)
        ),
        before_retry=again,
        attempts=attempts,
    )
    return attempts
