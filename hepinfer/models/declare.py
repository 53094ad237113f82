"""Models declared in TOML files: :func:`load_toml` and :func:`write_toml`.

One file declares one or more models, each in a ``[model.<name>]`` table::

    [model.mytagger]
    description = "my top tagger"          # optional
    engine = "onnxruntime"                 # "onnxruntime", "xgboost" (.json / .ubj) or "remote"
    artefact = "mytagger.onnx"             # relative to this file, or absolute; not for "remote"
    sha256 = "..."                         # optional: checked before the file is loaded or served
    max_batch_size = 256
    version = 1                            # optional (default 1)
    classes = ["qcd", "top"]               # optional: the first output's columns, by name
    builder = "particlenet"                # optional: a hepinfer.features builder, or "package.module:function"

    [model.mytagger.builder_params]        # optional: keywords passed to the builder
    max_particles = 100

    [model.mytagger.domain]                # optional: the jets it is valid for (hepinfer.models.Domain)
    pt = [200, 2500]                       # GeV, both ends included
    eta_max = 2.4                          # |eta| <
    sample = "Pythia 8 ttbar and QCD"      # optional: what it was trained on
    detector = "Delphes CMS card"          # optional: the detector response of its training sample
    not_for = ["no pile-up in training"]   # optional: what it must not be taken for

    [model.mytagger.server]                # optional: where it is served (hepinfer.model_servers)
    urls = ["grpc://triton-a.site:8001", "grpc://triton-b.site:8001"]  # tried in this order
    name = "mytagger_v2"                   # optional: its name on those servers (default: the model's)
    version = 3                            # optional: its version there (default: the latest)

    [[model.mytagger.inputs]]              # one table per input tensor, in order
    name = "points"
    dtype = "float32"                      # bool, uint8, int8, int32, int64, float16, float32, float64
    shape = [2, 100]                       # per row (the batch axis is implicit); -1 = any length
    description = "(deta, dphi)"           # optional

    [[model.mytagger.outputs]]
    name = "softmax"
    dtype = "float32"
    shape = [2]

Engine ``remote`` declares a model that only a server has (what ``hepinfer models pull`` writes): it
is scored with ``mode="remote"`` only, and the declaration lets a Dask graph be built without asking
the server.  The ``server`` table is the default of the model's servers: the settings'
``model_servers`` (``HEPINFER_MODEL_<NAME>_URL``, ...) come before it, the settings' ``url`` after
it.  A mistake is a :class:`~hepinfer.errors.ConfigError` naming the file, the model and the
key, e.g. ``mytagger.toml: model 'mytagger': inputs[1].dtype 'float31' is not one of ...``; the
declaration then passes :func:`~hepinfer.models.checks.check_declaration` (the artefact, its
checksum and shapes, the builder, the classes).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

import tomli_w

from hepinfer.errors import ConfigError
from hepinfer.model_servers import ModelServer, declared_server
from hepinfer.models.checks import check_declaration
from hepinfer.models.spec import DTYPES, LOCAL_ENGINES, Domain, ModelSpec, TensorSpec

MODEL_KEYS = (
    "description",
    "engine",
    "artefact",
    "sha256",
    "max_batch_size",
    "version",
    "classes",
    "builder",
    "builder_params",
    "domain",
    "server",
    "inputs",
    "outputs",
)
TENSOR_KEYS = ("name", "dtype", "shape", "description")
DOMAIN_KEYS = ("pt", "eta_max", "sample", "detector", "not_for")


class _Fields:
    """Reads one model's table; errors name the file, the model and the key."""

    def __init__(self, where: str, table: Mapping):
        self.where = where
        self.table = table

    def error(self, text: str) -> ConfigError:
        return ConfigError(f"{self.where}: {text}")

    def get(self, key: str, kind, what: str, default=None, *, table=None, field=None):
        value = (self.table if table is None else table).get(key, default)
        if value is default:
            return default
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise self.error(f"{field or key}: expected {what}, got {value!r}")
        return value

    def tensors(self, kind: str) -> tuple[TensorSpec, ...]:
        items = self.table.get(kind)
        if items is None:
            raise self.error(f"{kind}: missing (one [[model.<name>.{kind}]] table per tensor)")
        if not isinstance(items, list) or not all(isinstance(t, Mapping) for t in items):
            raise self.error(f"{kind}: expected [[model.<name>.{kind}]] tables, got {items!r}")
        out = []
        for i, t in enumerate(items):
            at = f"{kind}[{i}]"
            for key in t:
                if key not in TENSOR_KEYS:
                    raise self.error(f"{at}.{key}: unknown key (known: {', '.join(TENSOR_KEYS)})")
            name = self.get("name", str, "a string", table=t, field=f"{at}.name")
            if not name:
                raise self.error(f"{at}.name: missing")
            dtype = self.get("dtype", str, "a string", table=t, field=f"{at}.dtype")
            if dtype not in DTYPES:
                raise self.error(f"{at}.dtype {dtype!r} is not one of {', '.join(DTYPES)}")
            shape = t.get("shape")
            if (
                not isinstance(shape, list)
                or not all(isinstance(d, int) and not isinstance(d, bool) and (d > 0 or d == -1) for d in shape)
                or not shape
            ):
                raise self.error(f"{at}.shape: expected a list of lengths per row (-1 = any length), got {shape!r}")
            description = self.get("description", str, "a string", "", table=t, field=f"{at}.description")
            out.append(TensorSpec(name, dtype, tuple(shape), description))
        return tuple(out)

    def domain(self) -> Domain | None:
        table = self.get("domain", Mapping, "a [model.<name>.domain] table")
        if table is None:
            return None
        for key in table:
            if key not in DOMAIN_KEYS:
                raise self.error(f"domain.{key}: unknown key (known: {', '.join(DOMAIN_KEYS)})")
        pt = table.get("pt")
        number = (int, float)
        if not (
            isinstance(pt, list) and len(pt) == 2 and all(isinstance(x, number) and not isinstance(x, bool) for x in pt)
        ):
            raise self.error(f"domain.pt: expected [min, max] in GeV, got {pt!r}")
        eta_max = table.get("eta_max")
        if not isinstance(eta_max, number) or isinstance(eta_max, bool):
            raise self.error(f"domain.eta_max: expected a number (|eta| <), got {eta_max!r}")
        not_for = self.get("not_for", list, "a list of strings", [], table=table, field="domain.not_for")
        if not all(isinstance(x, str) for x in not_for):
            raise self.error(f"domain.not_for: expected a list of strings, got {not_for!r}")
        try:
            return Domain(
                pt=tuple(pt),
                eta_max=eta_max,
                sample=self.get("sample", str, "a string", "", table=table, field="domain.sample"),
                detector=self.get("detector", str, "a string", "", table=table, field="domain.detector"),
                not_for=tuple(not_for),
            )
        except ConfigError as err:
            raise self.error(str(err)) from None

    def server(self) -> ModelServer | None:
        table = self.get("server", Mapping, "a [model.<name>.server] table")
        if table is None:
            return None
        try:
            return ModelServer.of(table, "server")
        except ConfigError as err:
            raise self.error(str(err)) from None


def _spec(path: Path, name: str, table) -> ModelSpec:
    where = f"{path}: model {name!r}"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a [model.{name}] table, got {table!r}")
    f = _Fields(where, table)
    for key in table:
        if key not in MODEL_KEYS:
            raise f.error(f"{key}: unknown key (known: {', '.join(MODEL_KEYS)})")
    engine = f.get("engine", str, "a string")
    if engine is None:
        raise f.error("engine: missing (onnxruntime, xgboost or remote)")
    artefact = f.get("artefact", str, "a file path (relative to this file, or absolute)")
    if artefact is None and engine in LOCAL_ENGINES:
        raise f.error(f"artefact: missing (engine {engine!r} runs a model file: its path, relative to this file)")
    max_batch_size = f.get("max_batch_size", int, "an integer >= 1")
    if max_batch_size is None:
        raise f.error("max_batch_size: missing")
    classes = f.get("classes", list, "a list of class names", [])
    if not all(isinstance(c, str) for c in classes):
        raise f.error(f"classes: expected a list of class names, got {classes!r}")
    fields = dict(
        name=name,
        inputs=f.tensors("inputs"),
        outputs=f.tensors("outputs"),
        max_batch_size=max_batch_size,
        engine=engine,
        description=f.get("description", str, "a string", ""),
        version=f.get("version", int, "an integer >= 1", 1),
        classes=tuple(classes),
        artefact_file=str(path.parent / artefact) if artefact is not None else None,
        sha256=f.get("sha256", str, "a string of 64 hexadecimal digits"),
        builder=f.get("builder", str, "a builder name or 'package.module:function'"),
        builder_params=f.get("builder_params", Mapping, "a table", {}),
        domain=f.domain(),
        source=str(path),
    )
    server = f.server()
    if server is not None:
        fields["extra"] = {"server": server}
    try:
        spec = ModelSpec(**fields)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return check_declaration(spec)


def load_toml(path: str | os.PathLike) -> list[ModelSpec]:
    """The models a TOML file declares (format: the module's docstring), each checked; their source
    is the file's absolute path."""
    path = Path(os.path.abspath(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    unknown = [k for k in data if k != "model"]
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r} (models are [model.<name>] tables)")
    models = data.get("model")
    if not isinstance(models, Mapping) or not models:
        raise ConfigError(f"{path}: declares no model (a [model.<name>] table per model)")
    return [_spec(path, name, table) for name, table in models.items()]


# -- writing ---------------------------------------------------------------------------------------


def _plain(value):
    """``value`` with its mappings as dicts and its tuples as lists, as tomli-w writes them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _table(spec: ModelSpec, relative_to: str | os.PathLike | None) -> dict:
    """The ``[model.<name>]`` table of ``spec`` (the keys that are set)."""
    table: dict = {"description": spec.description} if spec.description else {}
    table["engine"] = spec.engine
    if spec.artefact_file is not None:
        artefact = Path(spec.artefact_file)
        if relative_to is not None and Path(relative_to).resolve() in artefact.parents:
            artefact = artefact.relative_to(Path(relative_to).resolve())
        table["artefact"] = artefact.as_posix()
    if spec.sha256:
        table["sha256"] = spec.sha256
    table["max_batch_size"] = spec.max_batch_size
    if spec.version != 1:
        table["version"] = spec.version
    if spec.classes:
        table["classes"] = list(spec.classes)
    if spec.builder:
        table["builder"] = spec.builder
    if spec.builder_params:
        table["builder_params"] = _plain(spec.builder_params)
    if spec.domain is not None:
        d = spec.domain
        table["domain"] = {"pt": list(d.pt), "eta_max": d.eta_max}
        table["domain"] |= {k: v for k, v in (("sample", d.sample), ("detector", d.detector)) if v}
        if d.not_for:
            table["domain"]["not_for"] = list(d.not_for)
    server = declared_server(spec)
    if server is not None:
        table["server"] = server.as_dict()
    for kind in ("inputs", "outputs"):
        tensors = [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in getattr(spec, kind)]
        for row, t in zip(tensors, getattr(spec, kind)):
            row |= {"description": t.description} if t.description else {}
        if tensors:
            table[kind] = tensors
    return table


def _dumps(specs: list[ModelSpec], relative_to: str | os.PathLike | None) -> str:
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"cannot write model {twice[0]!r} twice in one declaration file")
    models = {}
    for spec in specs:
        models[spec.name] = table = _table(spec, relative_to)
        try:
            tomli_w.dumps(table)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"model {spec.name!r}: cannot be written to TOML: {err}") from None
    return tomli_w.dumps({"model": models})


def to_toml(spec: ModelSpec, relative_to: str | os.PathLike | None = None) -> str:
    """The TOML declaration of ``spec`` (written by tomli-w; its artefact path relative to
    ``relative_to`` when the file is in that folder or below it)."""
    return _dumps([spec], relative_to)


def write_toml(spec: ModelSpec | list[ModelSpec], path: str | os.PathLike) -> Path:
    """Write the declaration of ``spec`` (or of several) to ``path``; :func:`load_toml` reads it back
    to equal specs (``extra``, which the format does not hold, aside: its ``server`` table it holds)."""
    path = Path(path)
    specs = [spec] if isinstance(spec, ModelSpec) else list(spec)
    header = "# hepinfer model declarations (see hepinfer.models.declare)\n\n"
    path.write_text(header + _dumps(specs, path.parent), encoding="utf-8")
    return path
