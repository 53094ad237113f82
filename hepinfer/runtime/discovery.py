"""ModelSpecs read from a Triton server: models hepinfer never declared, on a shared server.

:func:`spec_from_server` builds a :class:`~hepinfer.models.spec.ModelSpec` from the server's model
metadata and model config (tritonclient's ``get_model_metadata`` / ``get_model_config``, through
:class:`~hepinfer.runtime.triton.TritonRuntime`, so errors are converted as for any remote call):
input and output names, dtypes (every Triton data type, mapped to numpy by tritonclient:
:func:`hepinfer.models.spec.triton_types`) and per-row shapes (a model with ``max_batch_size: 0``
whose tensors all start with a variable dimension takes it as the rows' axis), ``max_batch_size``,
and the class names when the first output has a ``label_filename`` (Triton's classification
extension returns each column's label).  The spec's engine is ``remote``: it has no artefact, so it is scored with
``mode="remote"`` only, and it declares no input builder (add one in the TOML file that
``hepinfer models pull`` writes, to tag jets with it).  :func:`discover` registers it in this
process (source ``server <url>``); ``Scorer(name, mode="remote", url=...)`` calls it for a name the
registry does not know.

:func:`served_engine` says what computes a served model's scores, from the same model config: the
embedded server declares it in the config's parameters (``engine``, ``device``, ``precision``,
``compiled``; see :func:`hepinfer.serving.repository.model_config`).  A server that does not declare
it (NVIDIA's container, a production repository) gives the engine of its platform or backend
(``onnxruntime_onnx`` -> onnxruntime, ``fil``, ...), the device of its instance group (KIND_GPU ->
cuda, KIND_CPU -> cpu) and precision ``unknown``, which counts as full precision (``reduced`` is
False, so a local check of such a server stays strict), except that a TensorRT accelerator with
``precision_mode`` FP16 is fp16.  Model config is readable by any client (it is not one of the
restricted protocols), so this needs no admin token.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from hepinfer.config import InferenceConfig
from hepinfer.errors import ConfigError, HepinferError
from hepinfer.logs import get_logger
from hepinfer.models.spec import REMOTE, WIRE_TO_NUMPY, ModelSpec, TensorSpec
from hepinfer.runtime.triton import TritonRuntime, _modules

log = get_logger(__name__)


def _tensors(where: str, kind: str, items) -> tuple[TensorSpec, ...]:
    out = []
    for t in items:
        dtype = WIRE_TO_NUMPY.get(t["datatype"])
        if dtype is None:
            raise ConfigError(
                f"{where}: {kind} {t['name']!r} has datatype {t['datatype']}, which is none of Triton's data types "
                f"({', '.join(WIRE_TO_NUMPY)})"
            )
        shape = tuple(int(d) for d in t["shape"])[1:]  # the batch axis comes first
        out.append(TensorSpec(t["name"], dtype.name, shape))
    return tuple(out)


def _check_unbatched(where: str, meta: dict) -> None:
    """A model with ``max_batch_size: 0`` is scored when every tensor's first dimension is variable
    (-1): it is the rows' axis, and each call goes to the server whole, in one request."""
    fixed = [
        t["name"]
        for t in (*meta.get("inputs", []), *meta.get("outputs", []))
        if not t["shape"] or int(t["shape"][0]) != -1
    ]
    if fixed:
        raise ConfigError(
            f"{where}: max_batch_size 0 and tensors {', '.join(map(repr, fixed))} without a variable first "
            "dimension: hepinfer scores models whose tensors have a rows axis first (batched, or -1 first)"
        )


def _labels(rt: TritonRuntime, spec: ModelSpec) -> tuple[str, ...]:
    """The labels of the first output's columns, from one classification request on a row of zeros."""
    mod = _modules(rt.url.protocol)
    first = spec.outputs[0]
    columns = first.shape[-1]
    if columns < 1:
        return ()
    inputs = []
    for t in spec.inputs:
        row = np.zeros((1, *[d if d > 0 else 1 for d in t.shape]), dtype=t.numpy_dtype)
        inp = mod.InferInput(t.name, list(row.shape), t.wire_dtype)
        inp.set_data_from_numpy(row)
        inputs.append(inp)
    result = rt._call(
        "reading the class labels",
        rt.client.infer,
        rt.model_name,
        inputs,
        model_version=rt.model_version,
        outputs=[mod.InferRequestedOutput(first.name, class_count=columns)],
        headers=rt.request_headers(),
    )
    labels = {}
    for entry in np.asarray(result.as_numpy(first.name)).reshape(-1)[:columns]:
        parts = (entry.decode() if isinstance(entry, bytes) else str(entry)).split(":", 2)
        if len(parts) == 3:
            labels[int(parts[1])] = parts[2]
    return tuple(labels[i] for i in range(columns)) if len(labels) == columns else ()


def spec_from_server(url, name: str, config: InferenceConfig | None = None, *, labels: bool = True) -> ModelSpec:
    """The ModelSpec of model ``name`` as the Triton server at ``url`` serves it (not registered).

    ``config`` gives the connection settings (TLS, headers, timeouts); its URL is replaced by ``url``.
    ServerUnavailable / ModelNotFound / ServerError as for any remote call; ConfigError for a model
    hepinfer cannot score (no batching, a tensor of strings).  ``labels=False`` reads no class names
    (they take one inference request): metadata and config only.
    """
    config = (config or InferenceConfig(mode="remote")).replace(url=str(url))
    placeholder = ModelSpec(name=name, inputs=(), outputs=(), max_batch_size=0, engine=REMOTE)
    with TritonRuntime(placeholder, config=config, model_name=name) as rt:
        meta, server_config = rt.model_info()
        where = f"model {name!r} on {rt.url}"
        max_batch_size = int(server_config.get("max_batch_size", 0) or 0)
        if max_batch_size < 1:
            _check_unbatched(where, meta)
        platform = meta.get("platform") or server_config.get("backend") or "unknown platform"
        spec = ModelSpec(
            name=name,
            inputs=_tensors(where, "input", meta.get("inputs", [])),
            outputs=_tensors(where, "output", meta.get("outputs", [])),
            max_batch_size=max_batch_size,
            engine=REMOTE,
            description=f"served by {url} ({platform})",
            source=f"server {url}",
        )
        if not spec.inputs or not spec.outputs:
            raise ConfigError(f"{where}: the server declares no inputs or no outputs")
        first = next((o for o in server_config.get("output", []) if o.get("name") == spec.outputs[0].name), {})
        if labels and first.get("label_filename"):
            try:
                spec = dataclasses.replace(spec, classes=_labels(rt, spec))
            except HepinferError as err:
                log.warning("%s: the class labels could not be read (%s); no classes declared", where, err)
    return spec


def discover(name: str, config: InferenceConfig) -> ModelSpec:
    """:func:`spec_from_server` for ``config.url``, registered in this process (source ``server <url>``)."""
    from hepinfer.models import SPECS

    spec = spec_from_server(config.url, name, config)
    try:
        return SPECS.register(spec, source=spec.source)
    except ConfigError:
        if name in SPECS:  # declared meanwhile (another thread, or HEPINFER_MODELS): that one counts
            return SPECS[name]
        raise


FULL_PRECISION = ("fp32", "unknown")  # "unknown": the server does not say; counted as full precision
_PLATFORM_ENGINES = {
    "onnxruntime_onnx": "onnxruntime",
    "tensorrt_plan": "tensorrt",
    "pytorch_libtorch": "pytorch",
    "tensorflow_savedmodel": "tensorflow",
    "tensorflow_graphdef": "tensorflow",
}


@dataclasses.dataclass(frozen=True)
class ServedEngine:
    """What computes model ``model``'s scores on a server.  ``declared``: the server's config says
    it (hepinfer's embedded server); otherwise engine and device are inferred from the platform and
    the instance group, and precision is ``unknown``."""

    model: str
    engine: str
    device: str
    precision: str
    compiled: bool = False
    declared: bool = True

    @property
    def reduced(self) -> bool:
        """True when the scores may differ from a full-precision engine's beyond rounding: a reduced
        precision (fp16, bf16, ...) or a compiled program.  ``unknown`` precision counts as fp32."""
        return self.precision not in FULL_PRECISION or self.compiled

    def as_dict(self) -> dict:
        """engine, device, precision, compiled, declared and reduced, as the run summary writes them."""
        out = dataclasses.asdict(self)
        del out["model"]
        out["reduced"] = self.reduced
        return out

    def __str__(self) -> str:
        return f"{self.engine} on {self.device}, {self.precision}{', compiled' if self.compiled else ''}"


def _kinds(config: dict) -> set[str]:
    return {str(g.get("kind", "")) for g in config.get("instance_group", config.get("instanceGroup", [])) or []}


def _tensorrt_fp16(config: dict) -> bool:
    accelerators = (config.get("optimization") or {}).get("execution_accelerators") or {}
    for acc in accelerators.get("gpu_execution_accelerator", []) or []:
        if acc.get("name") == "tensorrt" and str((acc.get("parameters") or {}).get("precision_mode", "")).upper() in (
            "FP16",
            "INT8",
        ):
            return True
    return False


def engine_from_config(model: str, config: dict) -> ServedEngine:
    """The :class:`ServedEngine` of ``model`` from its Triton model config (the JSON dict that
    ``get_model_config`` gives, gRPC ``as_json`` or HTTP)."""
    params = {
        k: (v.get("string_value", "") if isinstance(v, dict) else str(v))
        for k, v in (config.get("parameters") or {}).items()
    }
    platform, backend = config.get("platform") or "", config.get("backend") or ""
    kinds = _kinds(config)
    if "precision" in params:
        device = params.get("device", "unknown")
        return ServedEngine(
            model=model,
            engine=params.get("engine") or _PLATFORM_ENGINES.get(platform, backend or platform or "unknown"),
            device=device.split(":")[0] if device else "unknown",
            precision=params["precision"],
            compiled=params.get("compiled", "false").lower() == "true",
        )
    device = "cuda" if kinds == {"KIND_GPU"} else "cpu" if kinds == {"KIND_CPU"} else "unknown"
    fp16 = _tensorrt_fp16(config)
    return ServedEngine(
        model=model,
        engine=_PLATFORM_ENGINES.get(platform) or backend or platform or "unknown",
        device=device,
        precision="fp16" if fp16 else "unknown",
        declared=fp16,
    )


def _for_model(rt: TritonRuntime, model: str) -> TritonRuntime:
    """``rt`` itself for its own model; for another model a shallow copy that shares its clients (the
    same connection) and names that model in errors."""
    if rt.model_name == model:
        return rt
    other = copy.copy(rt)
    other.model_name, other.model_version, other._meta = model, "", None
    return other


def _read_engine(rt: TritonRuntime, model: str, timeout_s: float | None) -> ServedEngine:
    rt = _for_model(rt, model)
    kw = {"headers": rt.request_headers()}
    if rt.url.protocol == "grpc":
        kw["as_json"] = True
        if timeout_s:
            kw["client_timeout"] = timeout_s
    config = rt._call("reading the model config", rt.client.get_model_config, model, rt.model_version, **kw)
    return engine_from_config(model, config.get("config", config))


def served_engines(server, models, config: InferenceConfig | None = None, timeout_s: float | None = None) -> dict:
    """{model: :class:`ServedEngine`} for ``models`` on ``server``: a URL (``config`` gives TLS,
    headers and timeouts; its URL is replaced) or a :class:`TritonRuntime` (its connection is reused).
    ServerUnavailable / ModelNotFound / ServerError as for any remote call, naming the model."""
    models = list(models)
    if isinstance(server, TritonRuntime):
        return {m: _read_engine(server, m, timeout_s) for m in models}
    if not models:
        return {}
    config = (config or InferenceConfig(mode="remote")).replace(url=str(server))
    placeholder = ModelSpec(name=models[0], inputs=(), outputs=(), max_batch_size=0, engine=REMOTE)
    with TritonRuntime(placeholder, config=config, model_name=models[0]) as rt:
        return {m: _read_engine(rt, m, timeout_s) for m in models}


def served_engine(server, model: str, config: InferenceConfig | None = None, timeout_s: float | None = None):
    """The :class:`ServedEngine` of ``model`` on ``server`` (a URL or a TritonRuntime); see
    :func:`served_engines`."""
    return served_engines(server, [model], config, timeout_s)[model]
