"""InferenceConfig: the one settings object that decides where inference runs.

It is a frozen dataclass, validated on construction, cheap to pickle: Dask workers receive it,
never a client.  ``InferenceConfig.from_env()`` reads ``HEPINFER_*`` variables so batch jobs can be
steered without code changes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from .errors import ConfigError
from .retry import Backoff
from .urls import TritonUrl

_RETRY = Backoff()  # the retry defaults live in one place: hepinfer.retry.Backoff

MODES = ("local", "remote", "auto")
DEFAULT_URL = "grpc://127.0.0.1:8001"


@dataclass(frozen=True)
class InferenceConfig:
    """Where and how to run inference.

    * mode: ``local`` (onnxruntime / xgboost in this process), ``remote`` (Triton at ``url``; never
      falls back), ``auto`` (Triton when it answers, the local runtime otherwise).
    * url: Triton address, see :class:`hepinfer.urls.TritonUrl` for the accepted forms.
    * ssl: force TLS on (True) or off (False); None = as the URL scheme says (off for grpc://).
    * root_certificates / private_key / certificate_chain: PEM files for TLS (client certs optional).
    * headers: extra request headers (e.g. an auth token for a proxy in front of the server).
    * timeout_s: client-side timeout of one request.
    * probe_timeout_s: how long ``auto`` waits for the server to answer the readiness probe.
    * threads: intra-op threads of the local runtime (0 = the engine's default, all cores).
    * max_request_bytes: a remote batch is split so that one request stays below this size
      (gRPC's customary 4 MiB message limit, which proxies in front of shared servers enforce).
    * max_in_flight: how many of those pieces one call keeps in flight at once over gRPC (answers are
      put back in order); 1 sends them one after the other.
    * retries / retry_initial_ms / retry_max_ms / retry_total_s: a remote call that finds the server
      unreachable, timing out, or without a model it had earlier, is retried up to ``retries``
      times with capped exponential backoff and jitter (:mod:`hepinfer.retry`); no attempt starts
      after ``retry_total_s``.  ``retries=0`` turns retrying off.
    * reprobe_interval_s: ``auto`` mode on the local runtime (after a fallback, or because the server
      was down at the start) asks the server again at most this often and returns to it when
      the model is ready.
    * token_env: the name of an environment variable; when it is set where a request is made, its
      value is sent as ``authorization: Bearer <value>`` (a proxy in front of a shared server,
      SuperSONIC-style).  The token itself is never stored in the config: it is not pickled to
      workers, not written into job files and not shown by ``repr`` (nor are ``headers``' values).
    """

    mode: str = "local"
    url: str = DEFAULT_URL
    ssl: bool | None = None
    root_certificates: str | None = None
    private_key: str | None = None
    certificate_chain: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = 60.0
    probe_timeout_s: float = 2.0
    threads: int = 1
    max_request_bytes: int = 4 * 1024 * 1024
    max_in_flight: int = 4
    retries: int = _RETRY.retries
    retry_initial_ms: float = _RETRY.initial_ms
    retry_max_ms: float = _RETRY.max_ms
    retry_total_s: float = _RETRY.total_s
    reprobe_interval_s: float = 10.0
    token_env: str | None = "HEPINFER_TOKEN"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        TritonUrl.parse(self.url)  # raises ConfigError on garbage
        if not (self.timeout_s > 0 and self.probe_timeout_s > 0):
            raise ConfigError(
                f"timeouts must be > 0 s, got timeout_s={self.timeout_s}, probe_timeout_s={self.probe_timeout_s}"
            )
        if not isinstance(self.threads, int) or self.threads < 0:
            raise ConfigError(f"threads must be an integer >= 0, got {self.threads!r}")
        if not isinstance(self.max_in_flight, int) or self.max_in_flight < 1:
            raise ConfigError(f"max_in_flight must be an integer >= 1, got {self.max_in_flight!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be an integer >= 0, got {self.retries!r}")
        if not (0 < self.retry_initial_ms <= self.retry_max_ms):
            raise ConfigError(
                f"need 0 < retry_initial_ms <= retry_max_ms, got {self.retry_initial_ms} and {self.retry_max_ms}"
            )
        if not (self.retry_total_s > 0 and self.reprobe_interval_s > 0):
            raise ConfigError(
                f"retry_total_s and reprobe_interval_s must be > 0 s, got {self.retry_total_s}, "
                f"{self.reprobe_interval_s}"
            )
        if self.max_request_bytes < 1024:
            raise ConfigError(f"max_request_bytes must be >= 1024, got {self.max_request_bytes}")
        for name in ("root_certificates", "private_key", "certificate_chain"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{name}: file {path!r} does not exist")
        object.__setattr__(self, "headers", dict(self.headers))

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        hidden = f", headers={{{', '.join(f'{k!r}: <hidden>' for k in self.headers)}}}" if self.headers else ""
        return f"InferenceConfig({shown}{hidden})"

    def cache_key(self) -> tuple:
        """Identifies the settings (headers' values included, as a digest) for per-process caches."""
        digest = hashlib.sha256(repr(sorted(self.headers.items())).encode()).hexdigest()[:16]
        return (repr(self), digest)

    @property
    def backoff(self) -> Backoff:
        return Backoff(
            retries=self.retries, initial_ms=self.retry_initial_ms, max_ms=self.retry_max_ms, total_s=self.retry_total_s
        )

    def request_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """``headers`` plus the bearer token of ``token_env`` when that variable is set (read now)."""
        environ = os.environ if environ is None else environ
        out = dict(self.headers)
        token = environ.get(self.token_env) if self.token_env else None
        if token:
            out["authorization"] = f"Bearer {token.strip()}"
        return out

    @property
    def triton_url(self) -> TritonUrl:
        return TritonUrl.parse(self.url)

    @property
    def use_ssl(self) -> bool:
        return self.triton_url.ssl if self.ssl is None else bool(self.ssl)

    def replace(self, **changes) -> InferenceConfig:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> InferenceConfig:
        """Build from ``HEPINFER_MODE``, ``HEPINFER_URL``, ``HEPINFER_SSL``, ``HEPINFER_TIMEOUT_S``,
        ``HEPINFER_THREADS``, ``HEPINFER_ROOT_CERTIFICATES``, ... (one per field); ``overrides`` win."""
        environ = os.environ if environ is None else environ
        values: dict = {}
        for f in fields(cls):
            raw = environ.get(f"HEPINFER_{f.name.upper()}")
            if raw is None or f.name == "headers":
                continue
            kind = str(f.type).split("|")[0].strip()  # the annotation, e.g. "float", "bool | None"
            try:
                if kind == "bool":
                    values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif kind in ("int", "float"):
                    values[f.name] = {"int": int, "float": float}[kind](raw)
                else:
                    values[f.name] = raw
            except ValueError as err:
                raise ConfigError(f"HEPINFER_{f.name.upper()}={raw!r}: {err}") from err
        values.update(overrides)
        return cls(**values)
