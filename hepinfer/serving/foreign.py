"""Serving a Triton model repository as it is: one that hepinfer did not write (a site's, CMS's).

``hepinfer serve --repository DIR`` reads each model's ``config.pbtxt`` and writes a derived
repository into the server's run directory (``DIR`` itself is never modified; model files are
linked, not copied).  What serves each model:

* ``backend: "python"``: the model itself (its files linked as they are);
* ``platform: "ensemble"``: Triton's ensemble scheduler, as it is, when every step is served;
* ``platform: "onnxruntime_onnx"`` (``backend: "onnxruntime"``), ``platform: "pytorch_libtorch"``
  (``backend: "pytorch"``) and ``backend: "fil"`` with an XGBoost ``model_type`` (``xgboost``,
  ``xgboost_json``, ``xgboost_ubj``): the embedded binary has no such backend, so the model becomes a
  python-backend model of the same name, inputs, outputs (names, data types, dims, -1 included),
  ``max_batch_size``, batching, versions and parameters, run by hepinfer's onnxruntime,
  TorchScript or FIL engine (:mod:`hepinfer.runtime.engines`) on CPU; a ``KIND_GPU`` or
  ``KIND_AUTO`` instance group keeps its count and runs on CPU.

Any other platform (``tensorrt_plan``, TensorFlow, OpenVINO, a FIL LightGBM or Treelite model, ...),
a missing file or a bad config makes the model unservable, with the reason
(:attr:`ForeignModel.error`).  The server decides what that means (:class:`~.options.ServerOptions`
``skip_unservable``): without named models it serves the rest and warns; a named model fails the
start.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from hepinfer.errors import ConfigError
from hepinfer.models.spec import check_model_name, triton_types
from hepinfer.serving.repository import ENGINE_MODULE, MODEL_PY, _pb, read_config

# platform or backend -> (hepinfer engine, default model file name)
ENGINE_PLATFORMS = {
    "onnxruntime_onnx": ("onnxruntime", "model.onnx"),
    "onnxruntime": ("onnxruntime", "model.onnx"),
    "pytorch_libtorch": ("torchscript", "model.pt"),
    "pytorch": ("torchscript", "model.pt"),
    "fil": ("fil", ""),  # the file name follows model_type
}
FIL_FILES = {"xgboost": "xgboost.model", "xgboost_json": "xgboost.json", "xgboost_ubj": "xgboost.ubj"}
NATIVE = ("python", "ensemble")
CONFIG = "config.pbtxt"
OWN_FILES = ("model.py", "hepinfer_engines.py")  # what the derived version folders hold of hepinfer's


@dataclass(frozen=True)
class ForeignModel:
    """One model of a repository: what it declares (``platform``), what serves it (``engine``:
    ``python``, ``ensemble``, or hepinfer's ``onnxruntime``, ``torchscript`` or ``fil`` engine), or
    why it cannot be served (``error``)."""

    name: str
    platform: str = "unknown"
    engine: str = ""
    error: str = ""
    steps: tuple[str, ...] = ()  # an ensemble's models
    filename: str = ""  # the model file in each version folder (hepinfer's engines)

    @property
    def servable(self) -> bool:
        return not self.error

    @property
    def torch(self) -> bool:
        """True when its engine needs torch in the server's environment."""
        return self.engine == "torchscript"

    @property
    def runs(self) -> str:
        """What serves it, in words."""
        if self.engine == "python":
            return "its own model.py (python backend, as it is)"
        if self.engine == "ensemble":
            return f"Triton's ensemble scheduler (steps {', '.join(self.steps)})"
        return f"hepinfer's {self.engine} engine on CPU (python backend)"

    def describe(self) -> str:
        return f"{self.platform} -> {self.runs}" if self.servable else f"{self.platform}: {self.error}"

    def failed(self, error: str) -> ForeignModel:
        return replace(self, error=error)


def repository_models(root: Path) -> tuple[str, ...]:
    """The model folders of the repository ``root`` (every folder not starting with '.'), sorted."""
    return tuple(sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")))


def check_repository(root, models) -> tuple[str, ...]:
    """The names of ``models`` (names or ModelSpecs; None: every model of ``root``), each a folder of
    the repository ``root``; ConfigError naming the repository or the model otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"model repository {root} does not exist")
    found = repository_models(root)
    if models is None:
        if not found:
            raise ConfigError(f"model repository {root} holds no model folder")
        return found
    names = tuple(getattr(m, "name", m) for m in models)
    for name in names:
        if name not in found:
            raise ConfigError(
                f"model {name!r} is not in the repository {root} (it holds: {', '.join(found) or 'none'})"
            )
    if not names:
        raise ConfigError("the server needs at least one model")
    return names


def _versions(model_dir: Path, cfg) -> list[str]:
    """The version folders Triton would load under the config's version policy (default: latest 1)."""
    found = sorted((p.name for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=int)
    if not found:
        raise ConfigError("no version folder (1/, 2/, ...)")
    which = cfg.version_policy.WhichOneof("policy_choice")
    if which == "all":
        return found
    if which == "specific":
        wanted = [str(v) for v in cfg.version_policy.specific.versions]
        missing = [v for v in wanted if v not in found]
        if missing:
            raise ConfigError(f"version policy names version(s) {', '.join(missing)}, which have no folder")
        return wanted
    latest = cfg.version_policy.latest.num_versions if which == "latest" else 1
    return found[-max(latest, 1) :]


def _inspect(root: Path, name: str):
    """(ForeignModel, config, version folders) of the model folder ``root/name``; the ForeignModel
    carries the error when it cannot be served."""
    model = ForeignModel(name)
    try:
        check_model_name(name)
        path = root / name / CONFIG
        if not path.is_file():
            raise ConfigError(f"no {CONFIG} (models are served with auto-complete off: each needs its config)")
        cfg = read_config(path)
        kind = cfg.platform or cfg.backend or "unknown"
        model = replace(model, platform=kind)
        if cfg.name and cfg.name != name:
            raise ConfigError(f"its config names it {cfg.name!r}, its folder {name!r}")
        if kind == "ensemble":
            steps = tuple(dict.fromkeys(s.model_name for s in cfg.ensemble_scheduling.step))
            if not steps:
                raise ConfigError("an ensemble without steps")
            return replace(model, engine="ensemble", steps=steps), cfg, []
        versions = _versions(root / name, cfg)
        if kind == "python":
            _need_files(root / name, versions, cfg.default_model_filename or "model.py")
            return replace(model, engine="python"), cfg, versions
        if kind not in ENGINE_PLATFORMS:
            raise ConfigError(
                f"platform/backend {kind!r} is not in the embedded tritonserver (python backend only) and has "
                "no hepinfer engine (onnxruntime_onnx, pytorch_libtorch and fil with an XGBoost model_type have)"
            )
        engine, filename = ENGINE_PLATFORMS[kind]
        if engine == "fil":
            model_type = _params(cfg).get("model_type", "xgboost")
            model = replace(model, platform=f"fil {model_type}")
            if model_type not in FIL_FILES:
                raise ConfigError(
                    f"FIL model_type {model_type!r} has no hepinfer engine (XGBoost's have: {', '.join(FIL_FILES)})"
                )
            filename = FIL_FILES[model_type]
        _check_tensors(cfg, engine)
        filename = cfg.default_model_filename or filename
        _need_files(root / name, versions, filename)
        return replace(model, engine=engine, filename=filename), cfg, versions
    except ConfigError as err:
        return model.failed(str(err)), None, []


def _params(cfg) -> dict[str, str]:
    return {k: v.string_value for k, v in cfg.parameters.items()}


def _need_files(model_dir: Path, versions: list[str], filename: str) -> None:
    for v in versions:
        if not (model_dir / v / filename).exists():
            raise ConfigError(f"version {v} has no {filename}")


def _check_tensors(cfg, engine: str) -> None:
    if not cfg.input or not cfg.output:
        raise ConfigError("the config declares no inputs or no outputs (configs are not auto-completed)")
    if cfg.HasField("sequence_batching"):
        raise ConfigError("sequence batching (a stateful model) has no hepinfer engine")
    known = {config_type: name for name, (config_type, _, _) in triton_types().items()}
    for t in (*cfg.input, *cfg.output):
        data_type = _pb().DataType.Name(t.data_type)
        if data_type not in known or (engine != "onnxruntime" and data_type == "TYPE_STRING"):
            raise ConfigError(f"tensor {t.name!r}: data type {data_type} is not one the {engine} engine takes")
    if engine == "fil":
        if len(cfg.input) != 1 or len(cfg.output) != 1:
            raise ConfigError("the FIL engine runs one input and one output (input__0, output__0)")
        if cfg.max_batch_size < 1:
            raise ConfigError("a FIL model batches: max_batch_size must be > 0")


def _engine_parameters(cfg, engine: str, filename: str, threads: int) -> dict[str, str]:
    """The parameters hepinfer's model.py reads: the engine, its file and the engine's keywords."""
    options: dict = {}
    if engine == "torchscript":
        numpy_names = {config_type: name for name, (config_type, _, _) in triton_types().items()}
        options = {"output_dtypes": {t.name: numpy_names[_pb().DataType.Name(t.data_type)] for t in cfg.output}}
    elif engine == "fil":
        p = _params(cfg)
        options = {
            "model_type": p.get("model_type", "xgboost"),
            "output_class": "true" in (p.get("output_class", "").lower(), p.get("is_classifier", "").lower()),
            "predict_proba": p.get("predict_proba", "").lower() == "true",
            "threshold": float(p.get("threshold") or 0.5),
            "output_shape": list(cfg.output[0].dims),
        }
    return {
        "engine": engine,
        "artefact": filename,
        "threads": str(threads),
        "device": "cpu",
        "precision": "fp32",
        "engine_options": json.dumps(options),
    }


def _link_entries(src: Path, dst: Path, skip) -> None:
    for entry in src.iterdir():
        if not skip(entry):
            (dst / entry.name).symlink_to(entry.resolve())


def _mirror(src: Path, dst: Path) -> None:
    """``src`` rebuilt under ``dst``: folders made, files linked (what Python writes beside a module
    it imports, ``__pycache__``, lands in ``dst``, never in the user's repository)."""
    dst.mkdir()
    for entry in src.iterdir():
        if entry.is_dir():
            _mirror(entry, dst / entry.name)
        else:
            (dst / entry.name).symlink_to(entry.resolve())


def _write_engine_model(root: Path, out: Path, model: ForeignModel, cfg, versions, threads: int) -> None:
    """The python-backend twin of ``model``: its config with backend python and hepinfer's engine
    parameters, its version folders' files linked beside model.py and the engine module."""
    from google.protobuf import text_format

    pb = _pb()
    source = root / model.name
    derived = pb.ModelConfig()
    derived.CopyFrom(cfg)
    derived.name = model.name
    derived.ClearField("platform")
    derived.ClearField("default_model_filename")
    derived.backend = "python"
    if derived.HasField("optimization"):
        derived.optimization.ClearField("execution_accelerators")  # TensorRT / OpenVINO: onnxruntime's
    for group in derived.instance_group:
        if group.kind != pb.ModelInstanceGroup.KIND_CPU:
            group.kind = pb.ModelInstanceGroup.KIND_CPU
            group.ClearField("gpus")
    for key, value in _engine_parameters(cfg, model.engine, model.filename, threads).items():
        derived.parameters[key].string_value = value
    target = out / model.name
    target.mkdir(parents=True)
    _link_entries(source, target, lambda e: e.name == CONFIG or (e.is_dir() and e.name.isdigit()))
    for v in versions:
        (target / v).mkdir()
        _link_entries(source / v, target / v, lambda e: e.name in OWN_FILES)
        shutil.copyfile(MODEL_PY, target / v / "model.py")
        shutil.copyfile(ENGINE_MODULE, target / v / "hepinfer_engines.py")
    (target / CONFIG).write_text(text_format.MessageToString(derived))
    read_config(target / CONFIG)  # parse back: fail here, not in the server


def _with_steps(root: Path, wanted, inspected: dict) -> list[str]:
    """``wanted`` and, for each ensemble among them, its steps (recursively), each inspected once."""
    order, queue = [], list(wanted)
    while queue:
        name = queue.pop(0)
        if name in order:
            continue
        order.append(name)
        if name not in inspected:
            inspected[name] = _inspect(root, name) if (root / name).is_dir() else (ForeignModel(name), None, [])
        queue += [s for s in inspected[name][0].steps if s not in order]
    return order


def _step_errors(models: dict[str, ForeignModel]) -> None:
    """An ensemble is servable when each of its steps is (repeated until nothing changes: nesting)."""
    changed = True
    while changed:
        changed = False
        for name, model in models.items():
            bad = [s for s in model.steps if not models[s].servable] if model.servable else []
            if bad:
                models[name] = model.failed(f"its step {bad[0]!r} cannot be served ({models[bad[0]].error})")
                changed = True


def derive_repository(root, out, models, threads: int = 1) -> list[ForeignModel]:
    """Write the servable twin of the repository ``root`` into ``out`` for ``models`` (names of
    ``root``'s model folders) and the steps of the ensembles among them; return every model of it,
    in the order to load them (ensembles last), unservable ones with their error."""
    root, out = Path(root).resolve(), Path(out)
    inspected: dict = {}
    names = _with_steps(root, models, inspected)
    found = {n: inspected[n][0] for n in names}
    for name in names:
        if not (root / name).is_dir():
            found[name] = found[name].failed("is not in the repository")
    _step_errors(found)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        _, cfg, versions = inspected[name]
        model = found[name]
        if not model.servable:
            continue
        if model.engine in NATIVE:
            _mirror(root / name, out / name)
            continue
        try:
            _write_engine_model(root, out, model, cfg, versions, threads)
        except (ConfigError, OSError) as err:
            found[name] = model.failed(f"its derived repository entry cannot be written: {err}")
    return sorted(found.values(), key=lambda m: bool(m.steps))
