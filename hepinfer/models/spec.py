"""ModelSpec: the one declaration of a model.

A ModelSpec feeds three consumers, so they can never disagree:

* the local runtime (which engine, which file, which tensor names),
* the Triton model repository writer (config.pbtxt for the embedded and production flavours),
* input validation, before anything is sent anywhere.

Shapes are per row: the batch dimension is implicit (Triton's convention when ``max_batch_size>0``);
``-1`` marks a variable dimension.

:func:`check_declaration` holds every check of a declaration that needs more than the spec itself
(the engine, the artefact file and its checksum, the shapes the file accepts, the input builder, the
class names); the registry, TOML loading, the repository writer and the server run it before they
accept a model (:mod:`hepinfer.models.checks`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hepinfer.errors import ConfigError, InputMismatch
from hepinfer.names import SAFE_NAME, check_model_name


@functools.cache
def triton_types() -> dict[str, tuple[str, str, np.dtype]]:
    """numpy dtype name -> (model config type, wire datatype, numpy dtype) for every data type a
    Triton model config may declare: the DataType enum of tritonclient's model_config protobuf
    (``TYPE_STRING`` is ``BYTES`` on the wire), each mapped to numpy by tritonclient itself
    (``tritonclient.utils.triton_to_np_dtype``: ``BYTES`` -> object, ``BF16`` -> ml_dtypes'
    bfloat16).  Read on first use: importing hepinfer imports no tritonclient."""
    from tritonclient.grpc import model_config_pb2
    from tritonclient.utils import triton_to_np_dtype

    out = {}
    for config_type in model_config_pb2.DataType.keys():
        wire = "BYTES" if config_type == "TYPE_STRING" else config_type.removeprefix("TYPE_")
        np_type = triton_to_np_dtype(wire)  # None for TYPE_INVALID (and a type this tritonclient lacks)
        if np_type is not None:
            dtype = np.dtype(np_type)
            out[dtype.name] = (config_type, wire, dtype)
    return out


def triton_type(dtype: str, tensor: str = "") -> tuple[str, str, np.dtype]:
    """(model config type, wire datatype, numpy dtype) of the numpy dtype name ``dtype``; ConfigError
    naming ``tensor`` for a dtype Triton has no data type for."""
    try:
        return triton_types()[dtype]
    except KeyError:
        raise ConfigError(
            f"tensor {tensor!r}: dtype {dtype!r} has no Triton data type (Triton's: {', '.join(triton_types())})"
        ) from None


class _DtypeNames(Sequence):
    """The numpy dtype names Triton carries, in the order of its DataType enum (read on first use)."""

    def __getitem__(self, index):
        return tuple(triton_types())[index]

    def __len__(self) -> int:
        return len(triton_types())

    def __repr__(self) -> str:
        return repr(tuple(self))


class _WireToNumpy(Mapping):
    """Wire datatype ("FP32", "BYTES", ...) -> numpy dtype (read on first use)."""

    @staticmethod
    @functools.cache
    def _table() -> dict:
        return {wire: dtype for _, wire, dtype in triton_types().values()}

    def __getitem__(self, wire):
        return self._table()[wire]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(triton_types())


DTYPES = _DtypeNames()
WIRE_TO_NUMPY = _WireToNumpy()


def _numpy_name(dtype) -> bool:
    """True for a numpy dtype's own name ("float32", "bool", "object"; "bfloat16", which numpy
    learns from ml_dtypes), checked without tritonclient."""
    if dtype == "bfloat16":
        return True
    try:
        return isinstance(dtype, str) and np.dtype(dtype).name == dtype
    except TypeError:
        return False


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]
    description: str = ""

    def __post_init__(self) -> None:
        # a numpy dtype name; whether Triton carries it is tritonclient's answer, asked on first use
        if not _numpy_name(self.dtype):
            raise ValueError(f"tensor {self.name!r}: unsupported dtype {self.dtype!r} (not a numpy dtype name)")

    @property
    def numpy_dtype(self) -> np.dtype:
        return triton_type(self.dtype, self.name)[2] if self.dtype == "bfloat16" else np.dtype(self.dtype)

    @property
    def triton_config_type(self) -> str:
        return triton_type(self.dtype, self.name)[0]

    @property
    def wire_dtype(self) -> str:
        return triton_type(self.dtype, self.name)[1]

    @property
    def row_bytes(self) -> int:
        """Bytes per batch row (variable dims counted as 1)."""
        return int(np.prod([max(d, 1) for d in self.shape])) * self.numpy_dtype.itemsize


# What runs a model: the local engines (hepinfer/runtime/engines.py), or "remote" for a model that only
# a server has (no artefact here: scored with mode="remote" only).
LOCAL_ENGINES = ("onnxruntime", "xgboost")
REMOTE = "remote"
ENGINE_NAMES = (*LOCAL_ENGINES, REMOTE)


def default_artefact_name(engine: str, artefact_file: str) -> str:
    """The artefact's name inside a model repository's version folder: what Triton's backends look
    for by default (``model.onnx``; ``xgboost.json`` / ``xgboost.ubj`` for the FIL backend)."""
    suffix = os.path.splitext(artefact_file)[1].lower()
    if engine == "xgboost":
        return "xgboost" + (suffix if suffix in (".json", ".ubj") else ".json")
    if engine == "onnxruntime":
        return "model.onnx"
    return "model" + (suffix if SAFE_NAME.fullmatch("model" + suffix) else "")


@dataclass(frozen=True)
class Domain:
    """Where a model is valid: the fat jets it was trained for, and what it is not.

    ``pt`` (GeV, both ends included) and ``eta_max`` (``|eta| <``) select the jets a job scores with
    the model (:meth:`contains`); ``sample`` and ``detector`` say what it was trained on, ``not_for``
    what it must not be taken for.  A model without a domain is scored on every selected jet."""

    pt: tuple[float, float]
    eta_max: float
    sample: str = ""
    detector: str = ""
    not_for: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        lo, hi = (float(x) for x in self.pt)
        if not 0 <= lo < hi:
            raise ConfigError(f"domain pt must be [min, max] GeV with 0 <= min < max, got {list(self.pt)}")
        if not float(self.eta_max) > 0:
            raise ConfigError(f"domain eta_max must be > 0, got {self.eta_max!r}")
        object.__setattr__(self, "pt", (lo, hi))
        object.__setattr__(self, "eta_max", float(self.eta_max))
        object.__setattr__(self, "not_for", tuple(self.not_for))

    def contains(self, pt, eta):
        """Mask of the jets (pt, eta: arrays of any kind awkward or numpy handle) inside the domain."""
        return (pt >= self.pt[0]) & (pt <= self.pt[1]) & (abs(eta) < self.eta_max)

    def describe(self) -> str:
        return f"pT {self.pt[0]:g}-{self.pt[1]:g} GeV, |eta| < {self.eta_max:g}"


@dataclass(frozen=True)
class ModelSpec:
    """Everything hepinfer knows about one model, independent of where it runs.

    * ``classes``: the names of the classes along the last axis of the first output (the columns
      :meth:`hepinfer.Scorer.scores` names); empty when not declared.
    * ``artefact_file``: the model file of a user model (an absolute path); None = the catalogue's
      cache path (``$HEPINFER_HOME/models/<name>/<version>/<artefact>``), as for the built-ins.
    * ``sha256``: the checksum of ``artefact_file``, checked before the file is loaded or served.
    * ``builder`` / ``builder_params``: the input builder (a name of ``hepinfer.features.BUILDERS``
      or ``"package.module:function"``; None = the builder named like the model) and the keywords
      passed to it.
    * ``source``: where the declaration came from (set by the registry; not part of equality).
    * ``domain``: the jets the model is valid for (:class:`Domain`); None = not declared.
    """

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int
    engine: str  # "onnxruntime" | "xgboost": what runs it locally and in the embedded server; "remote"
    artefact: str = ""  # file name of the built model inside its version folder ("" for engine "remote")
    description: str = ""
    version: int = 1
    extra: Mapping[str, object] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    artefact_file: str | None = None
    sha256: str | None = None
    builder: str | None = None
    builder_params: Mapping[str, object] = field(default_factory=dict)
    source: str = field(default="", compare=False)
    domain: Domain | None = None

    def __post_init__(self) -> None:
        # The name becomes a folder of a model repository and part of URLs: a plain name only.
        check_model_name(self.name)
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "builder_params", dict(self.builder_params))
        if self.artefact_file is not None:
            object.__setattr__(self, "artefact_file", os.path.abspath(os.fspath(self.artefact_file)))
            if not self.artefact:
                object.__setattr__(self, "artefact", default_artefact_name(self.engine, self.artefact_file))
        if self.engine == REMOTE and not self.artefact:
            return
        if not isinstance(self.artefact, str) or not SAFE_NAME.fullmatch(self.artefact):
            raise ConfigError(f"model {self.name!r}: artefact {self.artefact!r} must be a plain file name")

    @property
    def remote_only(self) -> bool:
        """True for a model that only a server has (engine "remote": no artefact to run here)."""
        return self.engine == REMOTE

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def input(self, name: str) -> TensorSpec:
        for t in self.inputs:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def row_bytes(self) -> int:
        return sum(t.row_bytes for t in self.inputs)

    def validate(self, inputs: Mapping[str, np.ndarray]) -> int:
        """Check names, rank, shape and dtype of a batch; return the batch size.

        Validation is strict on dtype (no silent float64 -> float32 cast): a silent cast hides the
        mistake of feeding the wrong array.  The message names the tensor and both shapes/dtypes.
        """
        return validate_tensors(self.name, self.inputs, inputs)


def spec_of(model) -> ModelSpec:
    """The ModelSpec of ``model``: a ModelSpec, or a resolved model (:class:`hepinfer.models.resolved.Model`,
    its ``spec``).  A name is resolved where it comes in (:func:`hepinfer.models.resolved.resolve`),
    not here: TypeError naming it."""
    spec = getattr(model, "spec", model)
    if isinstance(spec, ModelSpec):
        return spec
    raise TypeError(
        f"expected a ModelSpec or a resolved Model, got {model!r}: resolve a model's name where it comes in "
        "(hepinfer.models.resolved.resolve)"
    )


def validate_tensors(model: str, expected: tuple[TensorSpec, ...], inputs: Mapping[str, np.ndarray]) -> int:
    if not isinstance(inputs, Mapping):
        raise InputMismatch(
            f"model {model!r}: inputs must be a dict of numpy arrays keyed by "
            f"{[t.name for t in expected]}, got {type(inputs).__name__}"
        )
    names = {t.name for t in expected}
    missing = [n for n in names if n not in inputs]
    extra = [n for n in inputs if n not in names]
    if missing or extra:
        raise InputMismatch(
            f"model {model!r}: expected input tensors {sorted(names)}"
            + (f"; missing {sorted(missing)}" if missing else "")
            + (f"; unexpected {sorted(extra)}" if extra else "")
        )
    batch = None
    for t in expected:
        arr = inputs[t.name]
        if not isinstance(arr, np.ndarray):
            raise InputMismatch(f"model {model!r}, tensor {t.name!r}: expected a numpy array, got {type(arr).__name__}")
        want = "(N, " + ", ".join(str(d) for d in t.shape) + ")"
        if arr.ndim != len(t.shape) + 1 or any(d != -1 and d != a for d, a in zip(t.shape, arr.shape[1:])):
            raise InputMismatch(f"model {model!r}, tensor {t.name!r}: expected shape {want}, got {tuple(arr.shape)}")
        if arr.dtype != t.numpy_dtype:
            raise InputMismatch(
                f"model {model!r}, tensor {t.name!r}: expected dtype {t.dtype}, got {arr.dtype}"
                f" (convert with .astype(np.{t.dtype}))"
            )
        if batch is None:
            batch = arr.shape[0]
        elif arr.shape[0] != batch:
            raise InputMismatch(
                f"model {model!r}, tensor {t.name!r}: batch size {arr.shape[0]} differs from "
                f"{batch} of tensor {expected[0].name!r}"
            )
    return int(batch or 0)
