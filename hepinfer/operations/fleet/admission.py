"""Admission control at the fleet's front door (HAProxy's gRPC frontend).

Every refusal is a gRPC answer, not a dropped stream: HTTP 200 with ``grpc-status`` and
``grpc-message`` in the headers (a gRPC "trailers-only" response), sent by a small HAProxy Lua
service once the request's body is read (:func:`lua_services`), so the client sees a status and a
sentence saying why:

* a bearer token (optional): requests without ``authorization: Bearer <token>`` get UNAUTHENTICATED
  (16).  The token reaches HAProxy through its environment (``HEPINFER_FLEET_TOKEN``) and is never
  written into a file; hepinfer's client sends it from the variable named by ``token_env``
  (default ``HEPINFER_TOKEN``);
* per-client limits on the client's address (a stick table): open connections
  (``max_connections``: more are refused at connect) and requests per second averaged over 10 s
  (``rate_limit``: the excess gets UNAVAILABLE (14));
* the saturation guard, SuperSONIC's session rule: while the autoscaler says the fleet is
  saturated, a new session is refused: the gRPC ``RepositoryIndex`` call
  (:data:`NEW_SESSION_PATH`, what SuperSONIC's Envoy filter takes as the start of a client's
  session) gets UNAVAILABLE, saying the fleet admits no new session now.  Inferences and every other
  call pass, so the work of sessions already running is never turned away.  The flag is an ACL file
  that the autoscaler fills and clears through HAProxy's runtime API (``add acl`` / ``clear acl``),
  without a reload.

UNAVAILABLE is what gRPC clients retry (hepinfer's client with backoff: ServerUnavailable), so a
refused client backs off instead of adding a session to a saturated fleet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hepinfer.errors import ConfigError

UNAUTHENTICATED, UNAVAILABLE = 16, 14
TOKEN_VARIABLE = "HEPINFER_FLEET_TOKEN"  # HAProxy's environment: the config reads "${HEPINFER_FLEET_TOKEN}"
SATURATED_VALUE = "saturated"  # the one entry of the saturation ACL file while the fleet is saturated
RATE_PERIOD_S = 10  # the stick table's request rate is counted over this period
NEW_SESSION_PATH = "/inference.GRPCInferenceService/RepositoryIndex"  # refused while saturated


@dataclass(frozen=True)
class AdmissionOptions:
    """What the front refuses.  ``saturation``: new sessions (``RepositoryIndex``) get UNAVAILABLE
    while the autoscaler reports the fleet saturated (its ``admission_ratio``); ``rate_limit``:
    requests per second per client address; ``max_connections``: open connections per client
    address; ``token``: the bearer token clients must send (None: no token check)."""

    saturation: bool = True
    rate_limit: float | None = None
    max_connections: int | None = None
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ConfigError(f"rate_limit must be > 0 requests/s per client, got {self.rate_limit}")
        if self.max_connections is not None and (not isinstance(self.max_connections, int) or self.max_connections < 1):
            raise ConfigError(f"max_connections must be an integer >= 1, got {self.max_connections!r}")
        if self.token is not None and (not self.token or any(c.isspace() or c in "\"'\\$%" for c in self.token)):
            raise ConfigError("token: a non-empty string without spaces, quotes, backslashes, '$' or '%'")

    def environment(self) -> dict[str, str]:
        """What HAProxy's environment needs for these rules (the token)."""
        return {TOKEN_VARIABLE: self.token} if self.token else {}


# refusal kind -> (gRPC status, message); one HAProxy Lua service each (see lua_services)
REFUSALS = {
    "unauthenticated": (UNAUTHENTICATED, "hepinfer fleet: missing or wrong bearer token (authorization header)"),
    "rate_limited": (UNAVAILABLE, "hepinfer fleet: too many requests per second from this client; retry later"),
    "saturated": (
        UNAVAILABLE,
        "hepinfer fleet saturated: it admits no new session now (load above the admission ceiling); "
        "sessions already open go on; retry later",
    ),
}


def lua_services() -> str:
    """HAProxy Lua services answering gRPC refusals.  Each reads the request's whole body before it
    answers: HAProxy's own ``http-request return`` answers as soon as the headers are in, and resets
    the stream (RST_STREAM CANCEL) while the client is still sending, which a gRPC client reports as
    CANCELLED instead of the status (seen for requests beyond the 64 KiB HTTP/2 window)."""
    lines = [
        "-- gRPC refusals of a hepinfer fleet's front (HAProxy Lua services), written by hepinfer.operations.fleet.",
        "-- Each reads the whole request body, then answers HTTP 200 with grpc-status / grpc-message in the",
        "-- headers and no body (a gRPC trailers-only response).",
        "local function refuse(status, message)",
        "    return function(applet)",
        "        repeat",
        "            local chunk = applet:receive()",
        '        until chunk == nil or chunk == ""',
        "        applet:set_status(200)",
        '        applet:add_header("content-type", "application/grpc")',
        '        applet:add_header("grpc-status", status)',
        '        applet:add_header("grpc-message", message)',
        '        applet:add_header("content-length", "0")',
        "        applet:start_response()",
        "    end",
        "end",
    ]
    for kind, (status, message) in REFUSALS.items():
        lines.append(f'core.register_service("hepinfer_{kind}", "http", refuse("{status}", "{message}"))')
    return "\n".join(lines) + "\n"


def refuse(kind: str, condition: str) -> str:
    """The frontend rule sending a request to the refusal ``kind`` when ``condition``."""
    return f"http-request use-service lua.hepinfer_{kind} {condition}"


def frontend_rules(options: AdmissionOptions, saturated_acl: str) -> list[str]:
    """The frontend's admission lines, in the order HAProxy applies them."""
    lines = []
    if options.rate_limit is not None or options.max_connections is not None:
        lines += [
            "# per-client limits, on the client's address",
            f"stick-table type ipv6 size 100k expire 60s store conn_cur,http_req_rate({RATE_PERIOD_S}s)",
            "tcp-request connection track-sc0 src",
        ]
    if options.max_connections is not None:
        lines.append(f"tcp-request connection reject if {{ sc_conn_cur(0) gt {options.max_connections} }}")
    if options.token:
        lines += [
            "# the shared bearer token (from HAProxy's environment, never written here)",
            refuse("unauthenticated", f'unless {{ req.hdr(authorization) -m str "Bearer ${{{TOKEN_VARIABLE}}}" }}'),
        ]
    if options.rate_limit is not None:
        per_period = max(1, round(options.rate_limit * RATE_PERIOD_S))
        lines += [
            f"# at most {options.rate_limit:g} requests/s per client, over {RATE_PERIOD_S} s",
            refuse("rate_limited", f"if {{ sc_http_req_rate(0) gt {per_period} }}"),
        ]
    if options.saturation:
        lines += [
            "# the saturation guard (SuperSONIC's session rule): while the autoscaler has added the entry",
            "# (runtime API), a new session (RepositoryIndex) is refused; inferences and other calls pass",
            f"acl saturated str({SATURATED_VALUE}) -m str -f {saturated_acl}",
            f"acl new_session path {NEW_SESSION_PATH}",
            refuse("saturated", "if saturated new_session"),
        ]
    return lines
