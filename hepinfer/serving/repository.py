"""Triton model repositories written from the ModelSpecs.

Two flavours of the same models:

* ``embedded``: what ``hepinfer serve`` runs on the tritonserver binary of the nvidia-pytriton wheel,
  which has only the python backend.  Each model is ``backend: "python"`` with hepinfer's model.py,
  the shared engine module and the artefact (symlinked from the cache by default).  With
  ``engine="torch"`` the networks (ParticleNet, ResNet50) run their exported program
  (``model.pt2``) with torch on ``device`` in ``precision``, optionally compiled; ``cuda:N`` makes
  their instances ``KIND_GPU`` on GPU N.  The BDT and user models keep their own engine on CPU
  instances of the same server.  With ``engine="null"`` every model answers zeros of its output
  shapes at once, reading no artefact: a benchmark device, the ceiling a client can feed.  The
  config's parameters say what runs (``engine``, ``device``, ``precision``, ``compiled``), so a
  client can read it back (:mod:`hepinfer.runtime.discovery`).
* ``production``: for a GPU site running NVIDIA's container.  Networks use
  ``platform: "onnxruntime_onnx"`` (optionally with the TensorRT execution accelerator), the BDT uses
  the FIL backend (``backend: "fil"``, ``model_type: "xgboost_json"``, ``predict_proba``).

config.pbtxt is produced with protobuf text_format from the ModelConfig message that tritonclient
ships, and parsed back (:func:`read_config`) to validate it.  A model with classes gets a
``labels.txt`` named by its first output's ``label_filename`` (Triton's classification extension;
:mod:`hepinfer.runtime.discovery` reads the class names back from it).

User models (:mod:`hepinfer.models.registry`) are served like the built-ins, from their own artefact
file; every model passes :func:`~hepinfer.models.checks.check_declaration` (checksum included) before
it is written, and a model that only a server has (engine ``remote``) cannot be served from here.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hepinfer.errors import ArtefactMissing, ConfigError
from hepinfer.models import SPECS
from hepinfer.models.checks import check_declaration, check_sha256
from hepinfer.models.resolved import resolve
from hepinfer.models.spec import ModelSpec

FLAVOURS = ("embedded", "production")
# default: each model's own engine (onnxruntime / xgboost); torch: the networks' exported programs;
# null: every model answers zeros at once (the ceiling a client can feed; for benchmarks)
SERVING_ENGINES = ("default", "torch", "null")
PRECISIONS = ("fp32", "fp16", "bf16")
_HERE = Path(__file__).resolve().parent
ENGINE_MODULE = _HERE.parent / "runtime" / "engines.py"
MODEL_PY = _HERE / "triton_model.py"
LABELS = "labels.txt"


def check_engine_choice(engine: str, device: str, precision: str, compiled: bool) -> None:
    """ConfigError naming the setting at fault for an engine / device / precision that cannot run."""
    if engine not in SERVING_ENGINES:
        raise ConfigError(f"engine must be one of {SERVING_ENGINES}, got {engine!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if device != "cpu" and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError(f"device must be 'cpu' or 'cuda:N' (N the GPU's index), got {device!r}")
    if engine != "torch" and (device != "cpu" or precision != "fp32" or compiled):
        raise ConfigError(
            f"device {device!r}, precision {precision!r} and compiled={compiled} need engine='torch' "
            "(onnxruntime and xgboost run on CPU in fp32 in the embedded server)"
        )


def runs_torch(spec: ModelSpec, options: RepositoryOptions) -> bool:
    """True when ``spec`` is served by the torch engine under ``options`` (a network of hepinfer's)."""
    from hepinfer.models.architectures.torch_export import NETWORKS

    return (
        options.flavour == "embedded"
        and options.engine == "torch"
        and spec.name in NETWORKS
        and spec.engine == "onnxruntime"
        and spec.artefact_file is None
    )


def served_models(models) -> tuple[ModelSpec, ...]:
    """The ModelSpecs of ``models`` (names, resolved here, ModelSpecs or resolved Models; a ModelSpec
    not registered yet is registered), each checked for serving: ConfigError for a bad declaration or
    a model without artefact."""
    specs = []
    for m in models:
        spec = resolve(m).spec
        if spec.remote_only:
            raise ConfigError(
                f"model {spec.name!r} ({spec.source}) has no artefact (only a server has it): it cannot be served here"
            )
        if SPECS.get(spec.name) != spec:
            spec = SPECS.register(spec, source=spec.source or "python")
        check_declaration(spec)
        specs.append(spec)
    return tuple(specs)


def _pb():
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2


@dataclass(frozen=True)
class RepositoryOptions:
    """How the models are served.  The defaults are the embedded server's.  ``models``: names (resolved
    here, once), ModelSpecs or resolved Models; kept as their checked ModelSpecs."""

    flavour: str = "embedded"
    models: tuple[ModelSpec, ...] = field(default_factory=lambda: SPECS.servable())  # every model with an artefact
    instances: int = 1  # instance_group count per model
    gpu: bool = False  # production: KIND_GPU instances
    dynamic_batching: bool = True
    max_queue_delay_us: int = 100  # dynamic batcher's wait for more requests
    threads: int = 1  # embedded: engine threads per instance
    tensorrt: bool = False  # production: TensorRT accelerator for the ONNX models
    link_artefacts: bool = True  # embedded: symlink the cached artefacts instead of copying
    max_batch_size: dict = field(default_factory=dict)  # per-model override
    preferred_batch_sizes: dict = field(default_factory=dict)  # per model: the dynamic batcher's targets
    engine: str = "default"  # embedded: "torch" runs the networks' exported programs with torch
    device: str = "cpu"  # embedded, engine torch: "cpu" or "cuda:N"
    precision: str = "fp32"  # embedded, engine torch: fp32 | fp16 | bf16
    compiled: bool = False  # embedded, engine torch: torch.compile, warmed up at load

    def __post_init__(self) -> None:
        if self.flavour not in FLAVOURS:
            raise ConfigError(f"repository flavour must be one of {FLAVOURS}, got {self.flavour!r}")
        check_engine_choice(self.engine, self.device, self.precision, self.compiled)
        if self.engine == "null" and self.flavour != "embedded":
            raise ConfigError("engine 'null' (zeros at once, for benchmarks) is for the embedded server only")
        if self.instances < 1:
            raise ConfigError(f"instances must be >= 1, got {self.instances}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")
        object.__setattr__(self, "models", served_models(self.models))


def model_config(spec: ModelSpec, options: RepositoryOptions):
    """The ModelConfig protobuf message of ``spec`` in the chosen flavour."""
    pb = _pb()
    cfg = pb.ModelConfig(name=spec.name, max_batch_size=options.max_batch_size.get(spec.name, spec.max_batch_size))
    for t in spec.inputs:
        cfg.input.add(name=t.name, data_type=pb.DataType.Value(t.triton_config_type), dims=list(t.shape))
    for t in spec.outputs:
        cfg.output.add(name=t.name, data_type=pb.DataType.Value(t.triton_config_type), dims=list(t.shape))
    if spec.classes:
        cfg.output[0].label_filename = LABELS
    torch_engine = runs_torch(spec, options)
    on_gpu = (options.gpu and options.flavour == "production") or (torch_engine and options.device != "cpu")
    kind = pb.ModelInstanceGroup.KIND_GPU if on_gpu else pb.ModelInstanceGroup.KIND_CPU
    group = cfg.instance_group.add(kind=kind, count=options.instances)
    if torch_engine and options.device != "cpu":
        group.gpus.append(int(options.device.split(":")[1]))
    if options.dynamic_batching:
        cfg.dynamic_batching.max_queue_delay_microseconds = options.max_queue_delay_us
        cfg.dynamic_batching.preferred_batch_size.extend(options.preferred_batch_sizes.get(spec.name, ()))
    cfg.version_policy.specific.versions.append(spec.version)

    def param(key: str, value: str) -> None:
        cfg.parameters[key].string_value = value

    if options.flavour == "embedded" and torch_engine:
        from hepinfer.models.catalogue import TORCH_ARTEFACT

        cfg.backend = "python"
        param("engine", "torch")
        param("artefact", TORCH_ARTEFACT)
        param("threads", str(options.threads))
        param("device", "cuda" if on_gpu else "cpu")  # the GPU index comes from the instance group
        param("precision", options.precision)
        param("compiled", "true" if options.compiled else "false")
        param("max_rows", str(cfg.max_batch_size))
    elif options.flavour == "embedded" and options.engine == "null":
        cfg.backend = "python"
        param("engine", "null")
        param("artefact", "")  # the null engine reads no file
        param("threads", str(options.threads))
        param("device", "cpu")
        param("precision", "fp32")
        param("output_shapes", json.dumps({t.name: list(t.shape) for t in spec.outputs}))
    elif options.flavour == "embedded":
        cfg.backend = "python"
        param("engine", spec.engine)
        param("artefact", spec.artefact)
        param("threads", str(options.threads))
        param("device", "cpu")
        param("precision", "fp32")
    elif spec.engine == "onnxruntime":
        cfg.platform = "onnxruntime_onnx"
        cfg.default_model_filename = spec.artefact
        if options.tensorrt:
            acc = cfg.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
            acc.parameters["precision_mode"] = "FP16"
    elif spec.engine == "xgboost":
        cfg.backend = "fil"
        param("model_type", "xgboost_ubj" if spec.artefact.endswith(".ubj") else "xgboost_json")
        param("output_class", "true")
        param("predict_proba", "true")
        param("storage_type", "AUTO")
    else:  # pragma: no cover - every declared engine is handled above
        raise ConfigError(f"model {spec.name!r}: no production backend for engine {spec.engine!r}")
    return cfg


def render_config(spec: ModelSpec, options: RepositoryOptions) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(model_config(spec, options))


def read_config(path: str | Path):
    """Parse a config.pbtxt with Triton's ModelConfig protobuf; a syntax error names the file."""
    from google.protobuf import text_format

    path = Path(path)
    try:
        return text_format.Parse(path.read_text(), _pb().ModelConfig())
    except text_format.ParseError as err:
        raise ConfigError(f"{path}: not a valid Triton model config: {err}") from err


def _inside(out: Path, name: str) -> Path:
    """``out / name``, refusing any name that would leave ``out`` (the writer deletes that folder)."""
    from hepinfer.models.spec import check_model_name

    target = out / check_model_name(name)
    if out.resolve() not in target.resolve().parents:
        raise ConfigError(f"model name {name!r} would write outside the repository {out}")
    return target


def write_repository(out: str | Path, options: RepositoryOptions | None = None) -> Path:
    """Write a model repository for ``options.models`` into ``out``; return ``out``.

    Artefacts must have been built (``hepinfer models build``), except with engine ``null``, which
    reads none.
    """
    from hepinfer.models.catalogue import artefact_path, torch_artefact_path

    options = options or RepositoryOptions()
    out = Path(out)
    for spec in options.models:
        null = options.engine == "null"  # reads no artefact
        src = artefact_path(spec)
        if not null:
            if not src.exists():
                if spec.artefact_file is not None:
                    raise ArtefactMissing(f"model {spec.name!r}: artefact file {src} does not exist")
                raise ArtefactMissing(f"model {spec.name!r}: artefact {src} not built yet; run `hepinfer models build`")
            check_sha256(spec, str(src))
        model_dir = _inside(out, spec.name)
        version_dir = model_dir / str(spec.version)
        if model_dir.exists():
            shutil.rmtree(model_dir)
        version_dir.mkdir(parents=True)
        (model_dir / "config.pbtxt").write_text(render_config(spec, options))
        if spec.classes:
            (model_dir / LABELS).write_text("".join(f"{c}\n" for c in spec.classes))
        target = version_dir / spec.artefact
        if runs_torch(spec, options):
            from hepinfer.models.architectures.torch_export import build_torch

            src = build_torch(spec)  # derived from the ONNX artefact, rebuilt when that changes
            target = version_dir / torch_artefact_path(spec).name
        if options.flavour == "embedded":
            shutil.copyfile(MODEL_PY, version_dir / "model.py")
            shutil.copyfile(ENGINE_MODULE, version_dir / "hepinfer_engines.py")
        if not null and options.flavour == "embedded" and options.link_artefacts:
            target.symlink_to(src)
        elif not null:
            shutil.copyfile(src, target)
        read_config(model_dir / "config.pbtxt")  # parse back: fail here, not in the server
    return out
