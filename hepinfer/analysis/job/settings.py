"""What ``hepinfer run`` does: :class:`JobSettings`, and the input files it is given."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from hepinfer.analysis.clusters import HTCondorSettings
from hepinfer.analysis.selection import check_bounds
from hepinfer.config import InferenceConfig, env_var
from hepinfer.errors import ConfigError
from hepinfer.models import SPECS
from hepinfer.models.resolved import Model, resolve

EXECUTORS = ("iterative", "futures", "dask")
SCHEMAS = {"pfnano": "PFNanoAODSchema", "nanoaod": "NanoAODSchema"}


def automatic_models() -> tuple[str, ...]:
    """The models automatic mode (``models=None``) chooses from: the built-in models that ship trained
    weights (ParticleNet, the compact ResNet ``resnet``, the BDT, the NanoAOD BDT); ResNet50, the
    heavyweight architecture for throughput studies, ships none and runs only when named."""
    from hepinfer.models.catalogue import shipped

    return tuple(name for name, spec in SPECS.items() if shipped(spec) is not None)


def model_choices() -> list[tuple[str, str]]:
    """(label, name) of every model, for a picker: the name, with "UNTRAINED" for a model that runs
    with random weights (ResNet50 until `hepinfer train resnet50`); the compact ResNet comes first of
    the ResNets, as the one to choose."""
    from hepinfer.models.catalogue import is_untrained

    names = [name for name in SPECS if name != "resnet"]
    if "resnet" in SPECS:
        names.insert(names.index("resnet50") if "resnet50" in names else len(names), "resnet")
    return [(f"{name} (UNTRAINED)" if is_untrained(SPECS[name]) else name, name) for name in names]


def job_config(
    mode: str | None = None, url: str | None = None, environ: Mapping[str, str] | None = None
) -> tuple[InferenceConfig, bool]:
    """The run's InferenceConfig and whether the run starts the embedded server, from one read of the
    environment (``environ``, default ``os.environ``): ``mode`` / ``url`` given (``--mode`` /
    ``--url``) > ``HEPINFER_*`` (:meth:`InferenceConfig.from_env`) > mode ``remote``.  The embedded
    server is started when the mode is remote or auto and no URL was given, neither here nor as
    ``HEPINFER_URL``."""
    snapshot = dict(os.environ if environ is None else environ)
    explicit = {k: v for k, v in (("mode", mode), ("url", url)) if v is not None}
    config = InferenceConfig.from_env(snapshot, defaults={"mode": "remote"}, **explicit)
    return config, config.mode != "local" and url is None and env_var("url") not in snapshot


@dataclass(frozen=True)
class JobSettings:
    """What ``hepinfer run`` does.

    ``config``: the run's one :class:`~hepinfer.config.InferenceConfig` (mode, URL, timeouts,
    retries, TLS, where the token is); the workers receive it, pickled into their tasks.  None (the
    default): the environment's, read once here (:func:`job_config`).  ``embedded_server``: start the
    embedded Triton server for the run and score there (mode remote or auto; the config's ``url`` is
    replaced by the server's); None (the default): when the config came from the environment and no
    URL was given there, else False.
    ``models=None`` (the default) is automatic: every model of :func:`automatic_models` whose inputs
    all the files hold (the others are listed as skipped, with the reason); named models (names,
    ModelSpecs or resolved Models; kept as names) must run on every file, else the run fails naming
    file, model and branches.  ``resolved``: their :class:`~hepinfer.models.resolved.Model` s, looked
    up once, here (set by the settings, carried by ``dataclasses.replace``); the job reads them.
    ``pt_min`` / ``pt_max`` / ``eta_max``: the fat-jet selection's bounds; each one not given comes
    from the chosen models' validity domains (:func:`hepinfer.analysis.selection.selection_for`)."""

    inputs: tuple[str, ...]
    models: tuple[str, ...] | None = None
    config: InferenceConfig | None = None
    embedded_server: bool | None = None
    executor: str = "dask"
    workers: int = 2
    cluster: str = "local"
    chunksize: int = 50_000
    schema: str = "pfnano"
    treename: str = "Events"
    threshold: float = 0.5
    # the fat jets selected (GeV, |eta|); None: that bound from the models' domains (hepinfer.analysis.selection)
    pt_min: float | None = None
    pt_max: float | None = None
    eta_max: float | None = None
    working_point: str | None = None  # cut at this working point of each model (``top@1%``) instead of threshold
    check_local: bool = False
    server_instances: int = 0  # embedded server: instances per model; 0 = one per worker, up to the cores
    # embedded server: the address it listens on (None: 127.0.0.1 for workers on this host, else the
    # address this host uses towards the workers; hepinfer.analysis.job.access) and TLS (PEM files)
    server_host: str | None = None
    server_tls_cert: str | None = None
    server_tls_key: str | None = None
    pipeline: bool = True  # overlap feature building with inference (TopTagProcessor's pipeline)
    skip_bad_files: bool = False  # read every file once first; skip (and list) those that fail
    htcondor: HTCondorSettings = field(default_factory=HTCondorSettings)
    resolved: tuple[Model, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        if self.config is None:
            config, embedded = job_config()
            object.__setattr__(self, "config", config)
            if self.embedded_server is None:
                object.__setattr__(self, "embedded_server", embedded)
        if not isinstance(self.config, InferenceConfig):
            raise ConfigError(f"config must be an InferenceConfig, got {self.config!r}")
        object.__setattr__(self, "embedded_server", bool(self.embedded_server))
        if self.embedded_server and self.config.mode == "local":
            raise ConfigError("embedded_server: the embedded server serves mode remote or auto, not local")
        if self.models is not None:
            known = {m.name: m for m in self.resolved}
            resolved = tuple(known[m] if isinstance(m, str) and m in known else resolve(m) for m in self.models)
            object.__setattr__(self, "resolved", resolved)
            object.__setattr__(self, "models", tuple(m.name for m in resolved))
            if not self.models:
                raise ConfigError("--models: at least one model")
        else:
            object.__setattr__(self, "resolved", ())
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        if self.schema not in SCHEMAS:
            raise ConfigError(f"schema must be one of {tuple(SCHEMAS)}, got {self.schema!r}")
        if self.workers < 1 or self.chunksize < 1:
            raise ConfigError(f"workers and chunksize must be >= 1, got {self.workers} and {self.chunksize}")
        check_bounds(self.pt_min, self.pt_max, self.eta_max)
        if (self.server_tls_cert is None) != (self.server_tls_key is None):
            raise ConfigError("server_tls_cert and server_tls_key go together")
        for name in ("server_tls_cert", "server_tls_key"):
            if getattr(self, name) is not None and not os.path.isfile(getattr(self, name)):
                raise ConfigError(f"{name}: file {getattr(self, name)} does not exist")
        if not self.inputs:
            raise ConfigError("no input files")
        if self.working_point is not None:
            for m in self.resolved:
                m.working_point_cut(self.working_point)  # a ConfigError names what the model has

    @property
    def candidates(self) -> tuple[Model, ...]:
        """The models the run chooses from: ``resolved``, or in automatic mode those of
        :func:`automatic_models`."""
        return self.resolved if self.models is not None else tuple(resolve(m) for m in automatic_models())


def expand_inputs(patterns) -> tuple[str, ...]:
    """Files from paths and globs, in the order given; a pattern that matches nothing is an error."""
    files = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            hits = sorted(glob.glob(pattern))
            if not hits:
                raise ConfigError(f"--input {pattern}: no file matches")
            files += hits
        elif "://" in pattern:  # xrootd / http: uproot opens it
            files.append(pattern)
        else:
            if not os.path.isfile(pattern):
                raise ConfigError(f"--input {pattern}: no such file")
            files.append(os.path.abspath(pattern))
    return tuple(files)
