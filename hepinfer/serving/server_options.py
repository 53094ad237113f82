"""What an embedded Triton server is asked for: :class:`ServerOptions` (hepinfer.serving.server
starts it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hepinfer.errors import ConfigError
from hepinfer.models import SPECS
from hepinfer.models.spec import ModelSpec
from hepinfer.serving.foreign import check_repository
from hepinfer.serving.repository import check_engine_choice, served_models


@dataclass(frozen=True)
class ServerOptions:
    """What an embedded server serves and how.  ``models``: names, ModelSpecs or resolved Models,
    resolved once here (``models`` keeps their names, ``specs`` the checked ModelSpecs that the
    repository writer receives); None (the default) is every declared model with an artefact, or with
    ``repository`` every model of that Triton
    model repository (served as it is: :mod:`hepinfer.serving.foreign`).  ``skip_unservable``
    (``repository`` only): a model of it that cannot be served or fails to load is skipped with a
    warning instead of failing the start; None (the default) is on when ``models`` is None."""

    models: tuple[str, ...] | None = None
    host: str = "127.0.0.1"
    grpc_port: int = 0  # 0: a free port chosen at start
    http_port: int = 0
    metrics_port: int = 0
    repository: Path | None = None  # None: written fresh into the run directory
    skip_unservable: bool | None = None
    instances: int = 1
    threads: int = 1
    dynamic_batching: bool = True
    max_queue_delay_us: int = 100
    engine: str = "default"  # "torch": the networks run their exported program with torch
    device: str = "cpu"  # engine torch: "cpu" or "cuda:N"
    precision: str = "fp32"  # engine torch: fp32 | fp16 | bf16
    compiled: bool = False  # engine torch: torch.compile at load (compile time in the server log)
    memory_budget: int | None = None  # bytes the models' batches may take (GPU memory on a GPU):
    # max_batch_size chosen from each model's measured memory per row (hepinfer.serving.memory_budget)
    startup_timeout_s: float = 120.0
    exit_timeout_s: int = 5  # in-flight requests get this long after SIGTERM (open keep-alive
    # connections would otherwise hold tritonserver for its default 30 s)
    stop_timeout_s: float = 15.0  # then SIGKILL
    log_verbose: int = 0
    tls_cert: Path | None = None  # PEM server certificate: gRPC over TLS (Triton's HTTP has no TLS)
    tls_key: Path | None = None
    token: str | None = field(default=None, repr=False)  # clients must send it (a bearer token)
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    specs: tuple[ModelSpec, ...] = field(default=(), init=False, repr=False, compare=False)  # without repository

    def __post_init__(self) -> None:
        named = self.models is not None
        if self.repository is None:
            # names or ModelSpecs (registered when new); each declaration checked before anything is served
            specs = served_models(self.models if named else SPECS.servable())
            object.__setattr__(self, "specs", specs)
            object.__setattr__(self, "models", tuple(spec.name for spec in specs))
        else:
            object.__setattr__(self, "repository", Path(self.repository))
            object.__setattr__(self, "models", check_repository(self.repository, self.models))
        if self.skip_unservable is None:
            object.__setattr__(self, "skip_unservable", self.repository is not None and not named)
        if not self.models:
            raise ConfigError("the server needs at least one model")
        check_engine_choice(self.engine, self.device, self.precision, self.compiled)
        if self.memory_budget is not None and self.memory_budget <= 0:
            raise ConfigError(f"memory_budget must be a positive number of bytes, got {self.memory_budget}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together")
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{name}: file {path} does not exist")
        if self.token is not None and (not self.token or any(c.isspace() or c in ",:=" for c in self.token)):
            raise ConfigError("token: a non-empty string without spaces, ',', ':' or '='")
        for name in ("grpc_port", "http_port", "metrics_port"):
            port = getattr(self, name)
            if not 0 <= port < 65536:
                raise ConfigError(f"{name} must be in 0..65535, got {port}")
