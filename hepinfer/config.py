"""InferenceConfig: the one settings object that decides where inference runs.

It is a frozen dataclass, validated on construction, cheap to pickle: Dask workers receive it,
never a client.

Where each setting comes from, one order for every entry point (``Scorer``, ``JetTagger``,
``TopTagProcessor``, ``Session``, ``hepinfer run``):

1. an argument given explicitly (a keyword, a command-line option);
2. the ``HEPINFER_<FIELD>`` variable of the environment (``HEPINFER_MODE``, ``HEPINFER_URL``, ...),
   read by :func:`environment_settings`, the one reader of those variables;
3. the caller's own default (``hepinfer run``: mode ``remote``), else the field's default.

:meth:`InferenceConfig.from_env` applies that order, and :func:`hepinfer.session.resolve_config`
calls it for whatever was given no config.  A config passed explicitly (an ``InferenceConfig``) is
taken as it is: the environment is read where an object is built without one (the submit side), and
workers receive the resulting config, never re-read it.  Bearer tokens are the exception: the config
says where to find one, and the process that makes a request reads it there (:mod:`hepinfer.tokens`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from hepinfer.errors import ConfigError
from hepinfer.model_servers import ModelServer, model_servers, model_variables, server_of, split_urls
from hepinfer.retry import Backoff
from hepinfer.tokens import find_token
from hepinfer.urls import TritonUrl

_RETRY = Backoff()  # the retry defaults live in one place: hepinfer.retry.Backoff

MODES = ("local", "remote", "auto")
DEFAULT_URL = "grpc://127.0.0.1:8001"
ENV_PREFIX = "HEPINFER_"


@dataclass(frozen=True)
class InferenceConfig:
    """Where and how to run inference.

    * mode: ``local`` (onnxruntime / xgboost in this process), ``remote`` (Triton at ``url``; never
      falls back), ``auto`` (Triton when it answers, the local runtime otherwise).
    * url: Triton address, see :class:`hepinfer.urls.TritonUrl` for the accepted forms; several,
      separated by commas (or given as a list), are the servers tried in that order (failover,
      :mod:`hepinfer.runtime.failover`).
    * model_servers: per model, a :class:`~hepinfer.model_servers.ModelServer` (or a mapping with
      ``urls``, ``name``, ``version``): its own servers and its name and version on them
      (:mod:`hepinfer.model_servers`); environment: ``HEPINFER_MODEL_<NAME>_URL`` / ``_NAME`` /
      ``_VERSION``.
    * session_timeout_s: before its first inference on a server, the client opens a session there
      (the repository index call) and waits up to this long for an answer, for a deployment that
      scales from zero; mode ``auto`` waits ``probe_timeout_s`` instead, ``retries=0`` not at all.
    * ssl: force TLS on (True) or off (False); None = as the URL scheme says (off for grpc://).
    * root_certificates / private_key / certificate_chain: PEM files for TLS (client certs optional).
    * headers: extra request headers (e.g. an auth token for a proxy in front of the server).
    * timeout_s: client-side timeout of one request.
    * probe_timeout_s: how long ``auto`` waits for a server's session, and any mode for a set-aside
      server asked again; the deadline of a readiness call.
    * threads: intra-op threads of the local runtime (0 = the engine's default, all cores).
    * max_request_bytes: a remote batch is split so that one request stays below this size
      (gRPC's customary 4 MiB message limit, which proxies in front of shared servers enforce).
    * max_in_flight: how many of those pieces one call keeps in flight at once over gRPC (answers are
      put back in order); 1 sends them one after the other.
    * retries / retry_initial_ms / retry_max_ms / retry_total_s: a remote call that finds the server
      unreachable, timing out, or without a model it had earlier, is retried up to ``retries``
      times with capped exponential backoff and jitter (:mod:`hepinfer.retry`); no attempt starts
      after ``retry_total_s``.  ``retries=0`` turns retrying off.
    * reprobe_interval_s: a server that failed (its session, or a call after its retries) is set
      aside for this long, then asked again; ``auto`` mode on the local runtime returns to a server
      once it answers.
    * token_env / token_file / token_discovery: where the process that makes a request finds the
      bearer token it sends as ``authorization: Bearer <token>`` (a proxy in front of a shared
      server, SuperSONIC-style): the variable named by ``token_env``, else the file ``token_file``,
      else WLCG Bearer Token Discovery (``BEARER_TOKEN``, ``BEARER_TOKEN_FILE``,
      ``$XDG_RUNTIME_DIR/bt_u<uid>``, ``/tmp/bt_u<uid>``) unless ``token_discovery`` is False; an
      ``authorization`` header in ``headers`` comes before them all (:mod:`hepinfer.tokens`).  A
      token found there is never stored in the config: it is not pickled to workers, not written
      into job files and not shown by ``repr`` (nor are ``headers``' values).
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
    token_file: str | None = None
    token_discovery: bool = True
    model_servers: Mapping[str, ModelServer] = field(default_factory=dict)
    session_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        object.__setattr__(self, "url", ",".join(split_urls(self.url, "url")))  # ConfigError on garbage
        object.__setattr__(self, "model_servers", model_servers(self.model_servers))
        if not (self.timeout_s > 0 and self.probe_timeout_s > 0):
            raise ConfigError(
                f"timeouts must be > 0 s, got timeout_s={self.timeout_s}, probe_timeout_s={self.probe_timeout_s}"
            )
        if not self.session_timeout_s > 0:
            raise ConfigError(f"session_timeout_s must be > 0 s, got {self.session_timeout_s}")
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
        """``headers`` plus ``authorization: Bearer <token>`` with the token found now, in this
        process (:mod:`hepinfer.tokens`); an ``authorization`` header in ``headers`` is kept as it is."""
        out = dict(self.headers)
        if not any(k.lower() == "authorization" for k in out):
            found = find_token(self.token_env, self.token_file, self.token_discovery, environ)
            if found is not None:
                out["authorization"] = f"Bearer {found[0]}"
        return out

    def token_source(self, environ: Mapping[str, str] | None = None) -> str | None:
        """Where the bearer token of a request made now comes from (``headers``, ``$HEPINFER_TOKEN``,
        a file's path, ...), never the token itself; None when there is none."""
        if any(k.lower() == "authorization" for k in self.headers):
            return "headers"
        found = find_token(self.token_env, self.token_file, self.token_discovery, environ)
        return None if found is None else found[1]

    def token_note(self) -> str:
        """For an error message: where a token is looked for, and where the one sent came from."""
        try:
            source = self.token_source()
        except ConfigError as err:
            return str(err)
        places = [f"${self.token_env}" if self.token_env else "", "token_file", "headers"]
        places += ["WLCG $BEARER_TOKEN / $BEARER_TOKEN_FILE"] if self.token_discovery else []
        sent = f"the one sent came from {source}" if source else "none was found"
        return f"looked for in {', '.join(p for p in places if p)}; {sent}"

    @property
    def urls(self) -> tuple[TritonUrl, ...]:
        """The servers of ``url``, in order."""
        return tuple(TritonUrl.parse(u) for u in split_urls(self.url, "url"))

    @property
    def triton_url(self) -> TritonUrl:
        """The first server of ``url``."""
        return self.urls[0]

    def model_server(self, model: str) -> ModelServer | None:
        """The ``model_servers`` entry of ``model`` (by name, or by its variables' ``<NAME>``)."""
        return server_of(self.model_servers, model)

    @property
    def use_ssl(self) -> bool:
        return self.triton_url.ssl if self.ssl is None else bool(self.ssl)

    def replace(self, **changes) -> InferenceConfig:
        return replace(self, **changes)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, defaults: Mapping[str, object] | None = None, **overrides
    ) -> InferenceConfig:
        """The config of the module's order: ``overrides`` (explicit arguments) > the ``HEPINFER_*``
        variables of ``environ`` (default ``os.environ``; :func:`environment_settings`) >
        ``defaults`` (the caller's) > the fields' defaults.  A setting the environment gave that
        fails validation is named by its variable."""
        from_environment = environment_settings(environ)
        try:
            return cls(**{**(defaults or {}), **from_environment, **overrides})
        except ConfigError as err:
            used = [env_var(name) for name in from_environment if name not in overrides and name != "model_servers"]
            if not used:
                raise
            raise ConfigError(f"{err} (settings read from the environment: {', '.join(used)})") from None


def env_var(name: str) -> str:
    """The environment variable of the InferenceConfig field ``name`` (``HEPINFER_TIMEOUT_S``)."""
    return f"{ENV_PREFIX}{name.upper()}"


def environment_settings(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The InferenceConfig fields that ``HEPINFER_<FIELD>`` variables set, parsed to the field's type
    (booleans: 1/true/yes/on); ``headers`` has none (header values may be secrets); ``model_servers``
    comes from ``HEPINFER_MODEL_<NAME>_URL`` (URLs separated by commas), ``_NAME`` and ``_VERSION``
    (:func:`hepinfer.model_servers.model_variables`).  The one reader of those variables."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for f in fields(InferenceConfig):
        raw = environ.get(env_var(f.name))
        if raw is None or f.name in ("headers", "model_servers"):
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
            raise ConfigError(f"{env_var(f.name)}={raw!r}: {err}") from err
    per_model = model_variables(environ)
    if per_model:
        values["model_servers"] = per_model
    return values
