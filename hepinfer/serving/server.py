"""The embedded Triton server: the real ``tritonserver`` binary on loopback, started and stopped by PID.

``hepinfer.serve(...)`` is a context manager; ``hepinfer serve`` is the CLI around it.  Choices:

* listens on 127.0.0.1 unless a host is given explicitly (then a warning says it is exposed, unless
  it has a token);
* ``token``: every protocol a client uses (health, metadata, model config, statistics, inference)
  needs ``authorization: Bearer <token>``; Triton checks it itself (over gRPC under the name
  ``triton-grpc-protocol-authorization``, which hepinfer's client sends too:
  :meth:`hepinfer.runtime.triton.TritonRuntime.request_headers`).  The metrics endpoint stays open (read
  only).  Like the admin token, it is on tritonserver's command line: local users see it with ``ps``;
  it keeps out other machines;
* free ports are chosen by the OS (ports linger for a few seconds after a stop); on a lost race the
  start is retried with new ports;
* ``--model-control-mode=explicit`` with ``--load-model`` for each model; a repository of the user's
  (``repository=``) is served through a derived one in the run directory (:mod:`.foreign`), its
  models loaded one by one once the server is up (:mod:`.loading`), and with
  ``skip_unservable`` the server's readiness does not wait for a model that failed to load;
* the model-repository, shared-memory, trace and logging protocols are restricted to requests that
  carry the header ``hepinfer-admin-token: <random token>``, which only this launcher knows
  (:attr:`EmbeddedServer.admin_token`): clients can infer but not load or unload models;
* the process runs in its own process group; stop sends SIGTERM to the group (tritonserver lets
  in-flight requests finish for ``exit_timeout_s``), then SIGKILL after ``stop_timeout_s``, so no
  python-backend stub outlives it;
* tritonserver runs under a guard process (serving/guard.py) that stops it when the Python process
  that started it dies without cleaning up (SIGTERM, kill -9, a crashed kernel); ``pid`` is the
  guard's, and killing it kills the server;
* the server log goes to ``<run dir>/tritonserver.log``; its path is in every startup error.
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
import weakref
from dataclasses import replace
from pathlib import Path

from hepinfer import paths
from hepinfer.errors import ServerError
from hepinfer.models.spec import ModelSpec
from hepinfer.serving.environment import ServerEnvironment, ensure_server_env
from hepinfer.serving.ports import free_ports
from hepinfer.serving.repository import RepositoryOptions, write_repository
from hepinfer.serving.server_options import ServerOptions
from hepinfer.urls import TritonUrl

ADMIN_HEADER = "hepinfer-admin-token"
# Lines of the server log that mean the start has failed even though the process lives on (a
# python stub that cannot start leaves tritonserver waiting instead of exiting).
FATAL_LOG_LINES = (
    "Failed to preinitialize Python stub",
    "failed to load",
    "error: creating server",
    "Failed to initialize",
    "error while loading shared libraries",
)
GUARD = Path(__file__).with_name("guard.py")
RESTRICTED = "model-repository,shared-memory,trace,logging"
CLIENT_PROTOCOLS = "health,metadata,model-config,statistics,inference"  # what a token guards
_LIVE: weakref.WeakSet[EmbeddedServer] = weakref.WeakSet()


class EmbeddedServer:
    """A tritonserver process serving hepinfer's models.  Use :func:`serve` or ``with EmbeddedServer(...)``."""

    def __init__(self, options: ServerOptions | None = None, **kwargs):
        self.options = replace(options or ServerOptions(), **kwargs) if kwargs else (options or ServerOptions())
        self.admin_token = secrets.token_urlsafe(24)
        self.process: subprocess.Popen | None = None
        self.run_dir: Path | None = None
        self.repository: Path | None = None
        self.ports: dict[str, int] = {}
        self.startup_seconds: float | None = None
        self.environment: ServerEnvironment | None = None
        self.repository_models: list | None = None  # repository=: each ForeignModel, as served or skipped

    # -- addresses -------------------------------------------------------------------------------
    @property
    def _host_for_url(self) -> str:
        h = self.options.host
        return f"[{h}]" if ":" in h else h

    @property
    def url(self) -> str:
        """gRPC URL (what hepinfer.Scorer and tritonclient.grpc take); ``grpcs://`` with TLS."""
        scheme = "grpcs" if self.options.tls_cert else "grpc"
        return f"{scheme}://{self._host_for_url}:{self.ports['grpc']}"

    @property
    def http_url(self) -> str:
        return f"http://{self._host_for_url}:{self.ports['http']}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._host_for_url}:{self.ports['metrics']}/metrics"

    def admin_headers(self, protocol: str = "grpc") -> dict[str, str]:
        """Headers that open the restricted endpoints (Triton prefixes gRPC ones with
        ``triton-grpc-protocol-``)."""
        key = f"triton-grpc-protocol-{ADMIN_HEADER}" if protocol == "grpc" else ADMIN_HEADER
        return {key: self.admin_token}

    def client_headers(self) -> dict[str, str]:
        """The headers a client of this server sends (its token, when it has one), over HTTP; gRPC
        clients add Triton's prefixed copy (TritonRuntime.request_headers)."""
        return {"authorization": f"Bearer {self.options.token}"} if self.options.token else {}

    @property
    def log_path(self) -> Path | None:
        return self.run_dir / "tritonserver.log" if self.run_dir else None

    @property
    def pid(self) -> int | None:
        """The pid of the server's guard (serving/guard.py): signals sent to it reach tritonserver,
        and tritonserver dies with it."""
        return self.process.pid if self.process else None

    # -- lifecycle -------------------------------------------------------------------------------
    def _command(self, env: ServerEnvironment) -> list[str]:
        o = self.options
        restricted = f"{RESTRICTED}:{ADMIN_HEADER}={self.admin_token}"
        foreign = o.repository is not None  # its models are loaded once the server is up
        cmd = [
            str(env.tritonserver),
            f"--model-repository={self.repository}",
            f"--backend-directory={env.backend_dir}",
            "--model-control-mode=explicit",
            *([] if foreign else [f"--load-model={m}" for m in o.models]),
            f"--grpc-address={o.host}",
            f"--grpc-port={self.ports['grpc']}",
            f"--http-address={o.host}",
            f"--http-port={self.ports['http']}",
            f"--metrics-address={o.host}",
            f"--metrics-port={self.ports['metrics']}",
            "--allow-gpu-metrics=false",
            f"--strict-readiness={'false' if foreign and o.skip_unservable else 'true'}",
            "--exit-on-error=true",
            f"--exit-timeout-secs={o.exit_timeout_s}",
            "--disable-auto-complete-config",
            "--pinned-memory-pool-byte-size=0",
            f"--grpc-restricted-protocol={restricted}",
            f"--http-restricted-api={restricted}",
            f"--log-verbose={o.log_verbose}",
            *o.extra_args,
        ]
        if o.token:
            guard = f"{CLIENT_PROTOCOLS}:authorization=Bearer {o.token}"
            cmd += [f"--grpc-restricted-protocol={guard}", f"--http-restricted-api={guard}"]
        if o.tls_cert:
            cmd += ["--grpc-use-ssl=true", f"--grpc-server-cert={o.tls_cert}", f"--grpc-server-key={o.tls_key}"]
        return cmd

    def repository_options(self) -> RepositoryOptions:
        """The repository this server writes: its options, with batch limits sized to
        ``memory_budget`` when one is given."""
        o = self.options
        options = RepositoryOptions(
            flavour="embedded",
            models=o.specs,  # resolved when the options were made
            instances=o.instances,
            threads=o.threads,
            dynamic_batching=o.dynamic_batching,
            max_queue_delay_us=o.max_queue_delay_us,
            engine=o.engine,
            device=o.device,
            precision=o.precision,
            compiled=o.compiled,
        )
        if o.memory_budget is None:
            return options
        from hepinfer.serving.memory_budget import sized_options

        return sized_options(options, o.memory_budget)

    @property
    def serving(self) -> dict:
        """What runs the networks: engine, device, precision, compiled (shown by the panel)."""
        o = self.options
        return {"engine": o.engine, "device": o.device, "precision": o.precision, "compiled": o.compiled}

    def start(self) -> EmbeddedServer:
        if self.process is not None:
            raise ServerError("server already started")
        o = self.options
        if not o.token and not TritonUrl.parse(f"grpc://{self._host_for_url}:1").is_loopback:
            warnings.warn(
                f"the embedded Triton server listens on {o.host}: reachable from other machines; "
                "inference is open to anyone who can reach it",
                stacklevel=2,
            )
        self.run_dir = paths.new_run_dir("serve-")
        torch = o.engine == "torch"
        if o.repository is not None:
            from hepinfer.serving.foreign import derive_repository
            from hepinfer.serving.loading import check_servable

            self.repository = self.run_dir / "repository"
            found = derive_repository(o.repository, self.repository, o.models, o.threads)
            self.repository_models = found
            torch = torch or any(m.torch for m in check_servable(found, o.repository, o.skip_unservable))
        self.environment = ensure_server_env(torch=torch, gpu=o.device != "cpu")
        if o.repository is None:
            self.repository = write_repository(self.run_dir / "repository", self.repository_options())
        fixed = {"grpc": o.grpc_port, "http": o.http_port, "metrics": o.metrics_port}
        for attempt in range(3):
            free = iter(free_ports(o.host, 3))
            self.ports = {k: (v or next(free)) for k, v in fixed.items()}
            try:
                self._launch()
            except ServerError:
                lost_race = self._log_tail().lower().count("address already in use")
                self.stop()
                if not lost_race or attempt == 2 or all(fixed.values()):
                    raise
                continue
            if self.repository_models is not None:
                from hepinfer.serving.loading import load_repository

                load_repository(self)
            return self
        return self  # pragma: no cover

    @property
    def served_models(self) -> tuple[str, ...]:
        """The models this server serves (a repository's: those that loaded)."""
        if self.repository_models is None:
            return tuple(self.options.models)
        return tuple(m.name for m in self.repository_models if m.servable)

    def _launch(self) -> None:
        env = self.environment
        assert env is not None and self.log_path is not None
        t0 = time.perf_counter()
        with open(self.log_path, "ab") as log:
            # tritonserver runs under the guard (serving/guard.py), which stops it if this process
            # dies without running atexit (SIGTERM, kill -9, a crashed kernel)
            guard = [sys.executable, "-I", str(GUARD), str(os.getpid()), "--"]
            self.process = subprocess.Popen(
                guard + self._command(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._process_env(env),
                cwd=self.run_dir,
                start_new_session=True,
            )
        _LIVE.add(self)
        (self.run_dir / paths.PID_FILE).write_text(str(self.process.pid))  # kept while it serves
        deadline = t0 + self.options.startup_timeout_s
        ready = urllib.request.Request(f"{self.http_url}/v2/health/ready", headers=self.client_headers())
        log_offset = 0
        while True:
            log_offset, fatal = self._scan_log(log_offset)
            if fatal:
                raise ServerError(
                    f"tritonserver failed to start ({fatal.strip()[:300]}); log: {self.log_path}\n{self._log_tail()}"
                )
            if self.process.poll() is not None:
                raise ServerError(
                    f"tritonserver exited with code {self.process.returncode} during startup; "
                    f"log: {self.log_path}\n{self._log_tail()}"
                )
            try:
                # ready = the models are ready AND the metrics endpoint answers: tritonserver starts
                # its metrics listener after the HTTP one, and a caller reading metrics right after
                # serve() returned would otherwise find the port closed (seen once in a full run)
                with (
                    urllib.request.urlopen(ready, timeout=1.0) as resp,
                    urllib.request.urlopen(self.metrics_url, timeout=1.0) as metrics,
                ):
                    if resp.status == 200 and metrics.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() > deadline:
                raise ServerError(
                    f"tritonserver not ready after {self.options.startup_timeout_s:.0f} s; log: {self.log_path}\n"
                    + self._log_tail()
                )
            time.sleep(0.05)
        self.startup_seconds = time.perf_counter() - t0

    def _process_env(self, env: ServerEnvironment) -> dict:
        """The server's environment; with a memory budget, glibc's mmap threshold fixed as it was when
        the memory per row was measured (:mod:`.memory_budget`), so the server's memory matches it."""
        process = env.process_env()
        if self.options.memory_budget is not None:
            from hepinfer.serving.memory_budget import MMAP_THRESHOLD

            process["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
        return process

    def _scan_log(self, offset: int) -> tuple[int, str | None]:
        """Read the log from ``offset``; return the new offset and the first fatal line, if any."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except OSError:
            return offset, None
        complete = chunk.rfind(b"\n") + 1  # only whole lines; the rest is read next time
        for line in chunk[:complete].decode(errors="replace").splitlines():
            if any(marker in line for marker in FATAL_LOG_LINES):
                return offset + complete, line
        return offset + complete, None

    def _log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return ""

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL what is left after ``stop_timeout_s``."""
        proc, self.process = self.process, None
        _LIVE.discard(self)
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the group id is the server's pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=self.options.stop_timeout_s)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # stubs or a hung server
        except ProcessLookupError:
            pass
        proc.wait()

    def __enter__(self) -> EmbeddedServer:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self) -> None:
        if getattr(self, "process", None) is not None:
            self.stop()

    def __repr__(self) -> str:
        state = f"running pid={self.pid} url={self.url}" if self.is_running() else "stopped"
        return f"<EmbeddedServer {state} models={list(self.served_models)}>"

    def _repr_html_(self) -> str:
        state = "running" if self.is_running() else "stopped"
        rows = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>"
            for k, v in (
                ("state", state),
                ("gRPC", self.url if self.ports else "-"),
                ("HTTP", self.http_url if self.ports else "-"),
                ("models", ", ".join(self.served_models)),
                ("log", self.log_path or "-"),
            )
        )
        return f"<table><caption>hepinfer embedded Triton server</caption>{rows}</table>"


def serve(models=None, **kwargs) -> EmbeddedServer:
    """Start the embedded Triton server and return it (also a context manager that stops it).

    ``serve()`` serves every declared model with an artefact (the built-ins and the user's models,
    :mod:`hepinfer.models.registry`) on free loopback ports; ``models`` names some of them (names or
    ModelSpecs); keyword arguments are :class:`ServerOptions` fields.  ``serve(repository=DIR)``
    serves the Triton model repository ``DIR`` as it is, every model of it or those ``models``
    names (:mod:`hepinfer.serving.foreign`).
    """
    if models is not None:
        kwargs["models"] = (models,) if isinstance(models, str | ModelSpec) else tuple(models)
    return EmbeddedServer(ServerOptions(**kwargs)).start()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()
