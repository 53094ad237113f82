"""How the workers of a run reach its inference server: where the embedded server listens, its
token, and each worker's check of the URL when it joins.

* Workers on this host (the iterative and futures executors, a LocalCluster): the embedded server
  listens on 127.0.0.1 and needs no token.
* Workers on other hosts (``cluster`` a scheduler address or ``htcondor``): it listens on the address
  this host uses towards them, found without sending anything (the local address of a UDP socket
  ``connect``-ed to the scheduler's host; for HTCondor, to ``scheduler_host``, else to the outside
  world, the address dask-jobqueue's scheduler gives the jobs too), or on ``server_host`` when given.
* Then, and whenever it listens on an address that is not loopback, it has a bearer token: one made
  for the run (:func:`secrets.token_urlsafe`) that every client request must carry.  The token is
  never in the config pickled into the tasks: the config names a variable (``token_env``, one per
  run) and the token is put in that variable of this process's environment (and of the processes
  it starts) and, on a Dask cluster, of each worker's, by :class:`~hepinfer.analysis.worker_plugins.ServerCheck`
  (which carries it once, over Dask's connection, and removes it at the end of the run).
* TLS when asked (``server_tls_cert`` / ``server_tls_key``): the server speaks gRPC over TLS and the
  clients trust that certificate (``root_certificates``; the file must be readable on the workers).
* Each worker checks the URL when it joins (the plugin's ``setup``): the server answers and has every
  model ready.  In ``remote`` mode a run whose workers cannot reach the server stops there, before
  its first chunk, naming the URL and each such worker's host; in ``auto`` mode it goes on (they
  score locally) and the summary says which worker could not reach what, and why.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass, field

from hepinfer.config import InferenceConfig
from hepinfer.errors import ConfigError, ServerUnavailable
from hepinfer.logs import get_logger

log = get_logger(__name__)

LOOPBACK = "127.0.0.1"
OUTSIDE = ("192.0.2.1", 9)  # TEST-NET-1: a UDP socket connected there shows the outbound address; nothing is sent


@dataclass(frozen=True)
class ServerAccess:
    """Where the embedded server of a run listens and what its clients need: ``token`` (None: none),
    put in the variable ``token_env`` of every process that scores; ``tls_cert`` / ``tls_key``."""

    host: str = LOOPBACK
    token: str | None = field(default=None, repr=False)
    token_env: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def server_options(self) -> dict:
        """The :class:`~hepinfer.serving.server_options.ServerOptions` fields of this access."""
        return {"host": self.host, "token": self.token, "tls_cert": self.tls_cert, "tls_key": self.tls_key}

    def config(self, base: InferenceConfig, url: str) -> InferenceConfig:
        """``base`` pointed at the server at ``url``: its token looked for in ``token_env`` only (an
        ``authorization`` header or token file meant for another server is left out), its
        certificate trusted."""
        changes: dict = {"url": url}
        if self.token is not None:
            headers = {k: v for k, v in base.headers.items() if k.lower() != "authorization"}
            changes.update(token_env=self.token_env, token_file=None, token_discovery=False, headers=headers)
        if self.tls_cert and not base.root_certificates:
            changes.update(root_certificates=str(self.tls_cert), ssl=None)
        return base.replace(**changes)

    def as_dict(self) -> dict:
        return {"host": self.host, "token": self.token is not None, "tls": self.tls_cert is not None}


def workers_elsewhere(settings) -> bool:
    """Whether the run's workers may be on other hosts: Dask on a scheduler's or HTCondor's workers."""
    return settings.executor == "dask" and settings.cluster != "local"


def server_access(settings) -> ServerAccess:
    """The access of the embedded server the run ``settings`` starts (module docstring)."""
    host = settings.server_host or (server_host_for(settings) if workers_elsewhere(settings) else LOOPBACK)
    token = None
    if workers_elsewhere(settings) or not is_loopback(host):
        token = secrets.token_urlsafe(32)
    return ServerAccess(
        host=host,
        token=token,
        token_env=f"HEPINFER_RUN_TOKEN_{secrets.token_hex(4).upper()}" if token else None,
        tls_cert=str(settings.server_tls_cert) if settings.server_tls_cert else None,
        tls_key=str(settings.server_tls_key) if settings.server_tls_key else None,
    )


def server_host_for(settings) -> str:
    """The address this host uses towards the run's workers."""
    if settings.cluster == "htcondor":
        host, port = settings.htcondor.scheduler_host, 9
        if not host or host in ("0.0.0.0", "::", "[::]"):  # no address, or every one: the outbound one
            return outbound_address()
    else:
        host, port = scheduler_host_port(settings.cluster)
    try:
        return address_towards(host, port)
    except OSError as err:
        raise ConfigError(
            f"cannot tell this host's address towards {host} ({err}): give the embedded server's with --server-host"
        ) from None


def scheduler_host_port(address: str) -> tuple[str, int]:
    """("10.0.0.5", 8786) from "tcp://10.0.0.5:8786" (tls://, [IPv6] and names too)."""
    rest = address.split("://", 1)[-1].rstrip("/")
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = rest.partition(":")
    return host, int(port) if port.isdigit() else 8786


def address_towards(host: str, port: int = 9) -> str:
    """The local address of a UDP socket connected to ``host`` (no packet is sent): the address this
    host's packets to ``host`` leave from, the one ``host`` reaches it at."""
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect(sockaddr)
        return s.getsockname()[0]


def outbound_address() -> str:
    """This host's address towards the outside world (its default route's source), else its name's address."""
    try:
        return address_towards(*OUTSIDE)
    except OSError:
        return socket.gethostbyname(socket.gethostname())


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


@contextlib.contextmanager
def token_in_environment(access: ServerAccess | None):
    """The run's token in this process's environment (variable ``token_env``) for the run."""
    if access is None or access.token is None:
        yield
        return
    os.environ[access.token_env] = access.token
    try:
        yield
    finally:
        os.environ.pop(access.token_env, None)


def stop_if_unreachable(unreachable: dict[str, dict], config: InferenceConfig) -> None:
    """Remote mode: raise ServerUnavailable naming the URL and every worker that cannot reach it.
    Auto mode: log that they will score locally."""
    if not unreachable:
        return
    who = "; ".join(f"worker {host} {p['reason']}" for host, p in unreachable.items())
    if config.mode == "remote":
        detail = next(iter(unreachable.values()))["detail"]
        raise ServerUnavailable(
            f"{who}: stopped before the first chunk. The server must listen where the workers reach it "
            f"(hepinfer run --server-host ADDRESS, or --url of a server they reach) ({detail})"
        )
    log.warning(f"auto mode: {who}; those workers score locally")
