"""InferenceConfig: the one settings object that decides where inference runs.

It is a frozen dataclass, validated on construction, cheap to pickle: Dask workers receive it,
never a client.  ``InferenceConfig.from_env()`` reads ``HEPINFER_*`` variables so batch jobs can be
steered without code changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Mapping

from .errors import ConfigError
from .urls import TritonUrl

MODES = ("local", "remote", "auto")
DEFAULT_URL = "grpc://127.0.0.1:8001"


@dataclass(frozen=True)
class InferenceConfig:
    """Where and how to run inference.

    mode: ``local`` (onnxruntime / xgboost in this process), ``remote`` (Triton at ``url``; never
        falls back), ``auto`` (Triton when it answers, the local runtime otherwise).
    url: Triton address, see :class:`hepinfer.urls.TritonUrl` for the accepted forms.
    ssl: force TLS on (True) or off (False); None = as the URL scheme says (off for grpc://).
    root_certificates / private_key / certificate_chain: PEM files for TLS (client certs optional).
    headers: extra request headers (e.g. an auth token for a proxy in front of the server).
    timeout_s: client-side timeout of one request.
    probe_timeout_s: how long ``auto`` waits for the server to answer the readiness probe.
    threads: intra-op threads of the local runtime (0 = the engine's default, all cores).
    max_request_bytes: a remote batch is split so that one request stays below this size
        (gRPC's customary 4 MiB message limit, which proxies in front of shared servers enforce).
    max_in_flight: how many of those pieces one call keeps in flight at once over gRPC (answers are
        put back in order); 1 sends them one after the other.
    """

    mode: str = "local"
    url: str = DEFAULT_URL
    ssl: bool | None = None
    root_certificates: str | None = None
    private_key: str | None = None
    certificate_chain: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 60.0
    probe_timeout_s: float = 2.0
    threads: int = 1
    max_request_bytes: int = 4 * 1024 * 1024
    max_in_flight: int = 4

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        TritonUrl.parse(self.url)  # raises ConfigError on garbage
        if not (self.timeout_s > 0 and self.probe_timeout_s > 0):
            raise ConfigError(f"timeouts must be > 0 s, got timeout_s={self.timeout_s}, probe_timeout_s={self.probe_timeout_s}")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise ConfigError(f"threads must be an integer >= 0, got {self.threads!r}")
        if not isinstance(self.max_in_flight, int) or self.max_in_flight < 1:
            raise ConfigError(f"max_in_flight must be an integer >= 1, got {self.max_in_flight!r}")
        if self.max_request_bytes < 1024:
            raise ConfigError(f"max_request_bytes must be >= 1024, got {self.max_request_bytes}")
        for name in ("root_certificates", "private_key", "certificate_chain"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{name}: file {path!r} does not exist")
        object.__setattr__(self, "headers", dict(self.headers))

    @property
    def triton_url(self) -> TritonUrl:
        return TritonUrl.parse(self.url)

    @property
    def use_ssl(self) -> bool:
        return self.triton_url.ssl if self.ssl is None else bool(self.ssl)

    def replace(self, **changes) -> "InferenceConfig":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "InferenceConfig":
        """Build from ``HEPINFER_MODE``, ``HEPINFER_URL``, ``HEPINFER_SSL``, ``HEPINFER_TIMEOUT_S``,
        ``HEPINFER_THREADS``, ``HEPINFER_ROOT_CERTIFICATES``, ... (one per field); ``overrides`` win."""
        environ = os.environ if environ is None else environ
        values: dict = {}
        for f in fields(cls):
            raw = environ.get(f"HEPINFER_{f.name.upper()}")
            if raw is None or f.name == "headers":
                continue
            try:
                if f.name == "ssl":
                    values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif f.name in ("timeout_s", "probe_timeout_s"):
                    values[f.name] = float(raw)
                elif f.name in ("threads", "max_request_bytes", "max_in_flight"):
                    values[f.name] = int(raw)
                else:
                    values[f.name] = raw
            except ValueError as err:
                raise ConfigError(f"HEPINFER_{f.name.upper()}={raw!r}: {err}") from err
        values.update(overrides)
        return cls(**values)
