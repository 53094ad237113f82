"""Checks of a model declaration: :func:`check_declaration`.

A ModelSpec checks its own name and artefact name when it is made; everything that needs more (the
engine, the artefact file, its checksum, the shapes the file accepts, the input builder, the class
names) is checked here, once, by everything that accepts a declaration: the registry
(:meth:`hepinfer.models.registry.Registry.register`), TOML loading
(:func:`hepinfer.models.declare.load_toml`), the repository writer and the embedded server (before
anything is served).  Each failure is a :class:`~hepinfer.errors.ConfigError` that names where the
declaration came from (a TOML file, an entry point), the model and the field at fault.

The file checks read the artefact with the engine's own package (onnxruntime's session metadata,
xgboost's booster) when it is installed, and are skipped without it (a client-only install).  Their
results are kept per file (path, size, modification time), so a file is read once per process.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading

from hepinfer.errors import ConfigError
from hepinfer.logs import get_logger
from hepinfer.models.spec import ENGINE_NAMES, REMOTE, ModelSpec, TensorSpec

log = get_logger(__name__)

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_ONNX_TYPES = {
    "tensor(bool)": "bool",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(float16)": "float16",
    "tensor(float)": "float32",
    "tensor(double)": "float64",
}
_FILES: dict[tuple, object] = {}
_FILES_LOCK = threading.Lock()


def _where(spec: ModelSpec) -> str:
    """``"<source>: model 'name'"``: the source is named when it is a file, an entry point or a server."""
    source = spec.source if spec.source not in ("", "built-in", "python") else ""
    return f"{source}: model {spec.name!r}" if source else f"model {spec.name!r}"


def declaration_error(spec: ModelSpec, text: str) -> ConfigError:
    return ConfigError(f"{_where(spec)}: {text}")


def _per_file(path: str, what: str, compute):
    """``compute(path)`` once per (file, size, modification time) and ``what``."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns, what)
    with _FILES_LOCK:
        if key in _FILES:
            return _FILES[key]
    value = compute(path)
    with _FILES_LOCK:
        _FILES[key] = value
    return value


def file_sha256(path: str) -> str:
    def digest(p):
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    return _per_file(path, "sha256", digest)


def check_sha256(spec: ModelSpec, path: str | None = None) -> None:
    """The declared checksum of the artefact file matches the file (nothing to do without one)."""
    path = path or spec.artefact_file
    if not spec.sha256 or path is None:
        return
    actual = file_sha256(str(path))
    if actual != spec.sha256.lower():
        raise declaration_error(
            spec, f"sha256: file {path} has sha256 {actual}, the declaration says {spec.sha256.lower()}"
        )


def _dims_fit(declared: tuple[int, ...], actual) -> bool:
    return len(declared) == len(actual) and all(
        d == -1 or not isinstance(a, int) or a < 0 or d == a for d, a in zip(declared, actual)
    )


def _onnx_io(path: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    return (
        {t.name: (t.type, list(t.shape)) for t in session.get_inputs()},
        {t.name: (t.type, list(t.shape)) for t in session.get_outputs()},
    )


def _check_onnx(spec: ModelSpec, path: str) -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.debug("%s: onnxruntime is not installed; the ONNX file's shapes are not checked", spec.name)
        return
    try:
        inputs, outputs = _per_file(path, "onnx", _onnx_io)
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own error types
        raise declaration_error(spec, f"artefact: file {path} is not a model onnxruntime can load: {err}") from None
    batch = (-1,) if spec.max_batch_size > 0 else ()
    for kind, declared, actual in (("inputs", spec.inputs, inputs), ("outputs", spec.outputs, outputs)):
        for i, t in enumerate(declared):
            _check_onnx_tensor(spec, path, f"{kind}[{i}]", t, actual, batch)
    missing = [n for n in inputs if n not in spec.input_names]
    if missing:
        raise declaration_error(spec, f"inputs: the ONNX file {path} also needs input {missing[0]!r}")


def _check_onnx_tensor(spec, path, field: str, t: TensorSpec, actual: dict, batch: tuple) -> None:
    if t.name not in actual:
        kind = field.split("[")[0][:-1]
        raise declaration_error(
            spec, f"{field}.name {t.name!r} is not an {kind} of the ONNX file {path} (its {kind}s: {', '.join(actual)})"
        )
    onnx_type, shape = actual[t.name]
    if not _dims_fit(batch + t.shape, shape):
        raise declaration_error(
            spec,
            f"{field}.shape {list(t.shape)} does not fit the ONNX {field.split('[')[0][:-1]} {t.name!r} of shape "
            f"{shape}" + (" (its first axis is the batch)" if batch else ""),
        )
    dtype = _ONNX_TYPES.get(onnx_type)
    if dtype is not None and dtype != t.dtype:
        raise declaration_error(spec, f"{field}.dtype {t.dtype} does not match the ONNX file's {onnx_type} ({dtype})")


def _xgb_features(path: str) -> int:
    import xgboost as xgb

    return int(xgb.Booster(model_file=path).num_features())


def _check_xgboost(spec: ModelSpec, path: str) -> None:
    if os.path.splitext(path)[1].lower() not in (".json", ".ubj"):
        raise declaration_error(spec, f"artefact: xgboost models are read from .json or .ubj files, got {path}")
    if len(spec.inputs) != 1:
        raise declaration_error(spec, f"inputs: the xgboost engine takes one input tensor, {len(spec.inputs)} declared")
    out = spec.outputs[0]
    if len(spec.outputs) != 1 or out.shape != (2,) or out.dtype != "float32":
        raise declaration_error(
            spec, "outputs: the xgboost engine gives one float32 output of shape [2] (1 - p, p of a binary classifier)"
        )
    try:
        import xgboost  # noqa: F401
    except ImportError:
        log.debug("%s: xgboost is not installed; the booster's features are not checked", spec.name)
        return
    try:
        n = _per_file(path, "xgboost", _xgb_features)
    except Exception as err:  # noqa: BLE001 - xgboost raises its own error types
        raise declaration_error(spec, f"artefact: file {path} is not a model xgboost can load: {err}") from None
    if spec.inputs[0].shape != (n,):
        raise declaration_error(
            spec,
            f"inputs[0].shape {list(spec.inputs[0].shape)} does not fit the booster in {path} ({n} features)",
        )


def resolve_builder(spec: ModelSpec):
    """The input builder function of ``spec``: ``builder`` (a name of ``hepinfer.features.BUILDERS``
    or ``"package.module:function"``), or the builder named like the model; ConfigError when none."""
    from hepinfer.features.builders import find_builder

    try:
        return find_builder(spec.builder or spec.name, declared=spec.builder is not None)
    except ConfigError as err:
        raise declaration_error(spec, str(err)) from None


def _check_builder(spec: ModelSpec) -> None:
    """The builder's parameters (the builders' own checks: :func:`hepinfer.features.builders.check_builder`)."""
    if spec.builder is None:
        if spec.builder_params:
            raise declaration_error(spec, "builder_params: given without a builder")
        return
    if ":" not in spec.builder:
        try:
            from hepinfer.features.builders import builtin_builders

            builtin_builders()  # needs the physics extra (awkward)
        except ImportError:
            log.debug("%s: hepinfer.features cannot be imported; builder %r not checked", spec.name, spec.builder)
            return
    from hepinfer.features.builders import check_builder

    fn = resolve_builder(spec)
    declared = {t.name: t.shape for t in spec.inputs}
    try:
        check_builder(fn, spec.builder, spec.builder_params, declared, _dims_fit)
    except ConfigError as err:
        raise declaration_error(spec, str(err)) from None


def check_declaration(spec: ModelSpec) -> ModelSpec:
    """Check everything about ``spec`` that its constructor cannot; return it or raise ConfigError."""
    if spec.engine not in ENGINE_NAMES:
        raise declaration_error(spec, f"engine {spec.engine!r} is not one of {', '.join(ENGINE_NAMES)}")
    for kind in ("inputs", "outputs"):
        tensors = getattr(spec, kind)
        if not tensors:
            raise declaration_error(spec, f"{kind}: none declared")
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            raise declaration_error(spec, f"{kind}: tensor names repeat ({', '.join(names)})")
    # 0: a server's model that does not batch (engine remote): its tensors' first axis is the rows', sent whole
    least = 0 if spec.engine == REMOTE else 1
    if not isinstance(spec.max_batch_size, int) or spec.max_batch_size < least:
        raise declaration_error(
            spec,
            f"max_batch_size: expected an integer >= {least}, got {spec.max_batch_size!r}"
            + (" (0, a model that does not batch, is for engine 'remote')" if spec.max_batch_size == 0 else ""),
        )
    if not isinstance(spec.version, int) or spec.version < 1:
        raise declaration_error(spec, f"version: expected an integer >= 1, got {spec.version!r}")
    if spec.classes:
        first = spec.outputs[0]
        if len(set(spec.classes)) != len(spec.classes) or not all(isinstance(c, str) and c for c in spec.classes):
            raise declaration_error(spec, f"classes: {list(spec.classes)} must be distinct, non-empty names")
        columns = first.shape[-1] if first.shape else 1
        if columns != -1 and columns != len(spec.classes):
            raise declaration_error(
                spec,
                f"classes: {len(spec.classes)} names ({', '.join(spec.classes)}) but the first output "
                f"{first.name!r} has {columns} columns (shape {list(first.shape)})",
            )
    if spec.sha256 is not None and not _HEX64.fullmatch(str(spec.sha256)):
        raise declaration_error(spec, f"sha256: {spec.sha256!r} is not a SHA-256 digest (64 hexadecimal digits)")
    if spec.engine == REMOTE:
        if spec.artefact_file is not None:
            raise declaration_error(spec, f"artefact: engine {REMOTE!r} (a model only a server has) takes no artefact")
    elif spec.artefact_file is not None:
        path = spec.artefact_file
        if not os.path.isfile(path):
            raise declaration_error(spec, f"artefact: file {path} does not exist")
        check_sha256(spec)
        if spec.engine == "onnxruntime":
            _check_onnx(spec, path)
        elif spec.engine == "xgboost":
            _check_xgboost(spec, path)
    elif spec.sha256 is not None:
        raise declaration_error(spec, "sha256: given without an artefact file")
    _check_builder(spec)
    return spec
