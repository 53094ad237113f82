"""coffea.ml_tools' ``triton_wrapper`` on hepinfer's Scorer: ``from hepinfer.coffea import triton_wrapper``.

A subclass written for ``coffea.ml_tools.triton_wrapper`` (its ``prepare_awkward`` returning
``(args, kwargs)`` for ``numpy_call(output_list, input_dict)``, an optional ``postprocess_awkward``)
runs unchanged; the constructor takes coffea's arguments, ``model_url``
(``triton+grpc://host:port/model/version``, ``triton+http://...``), ``client_args`` and ``batch_size``.

What stays as in coffea: the URL forms and what they mean (gRPC with TLS unless
``client_args={"ssl": False}``; ``triton+grpcs://`` / ``triton+https://`` ask for it), the methods a
subclass uses or overrides, the outputs (a dict of the requested outputs, eager; the same as
dask-awkward arrays), the input checks (names, rank and shape raise ``ValueError``; a dtype other
than the model's warns and is converted).

What differs:

* requests go through a :class:`hepinfer.Scorer` in mode ``remote``: retried with backoff when the
  server is unreachable or times out (``retries`` and the other :class:`~hepinfer.InferenceConfig`
  settings, given as keywords), split at the model's ``max_batch_size`` and ``max_request_bytes``
  with up to ``max_in_flight`` requests in flight, and **never padded**: the server computes the
  rows sent, no more.  ``batch_size > 0`` also caps the rows of one request;
* the client is created on first use in each process (and thread) and never pickled;
* **a dask-awkward graph is built without any request to the server**: its output type is the
  model's outputs as its ModelSpec declares them.  That spec is hepinfer's declaration of the URL's
  model name (built-ins, user models, a ``hepinfer models pull`` file) or the ``spec`` argument:
  then nothing is asked of the server before ``compute``.  A model declared nowhere has its spec
  read from the server's model metadata once, where it is first needed (on the client while the
  graph is built; no inference request), and the workers receive it.  An output with a variable
  dimension comes back as variable-length lists in dask mode.
"""

from __future__ import annotations

import warnings

import numpy as np

try:
    import awkward as ak
    from coffea.ml_tools.helper import container_converter, numpy_call_wrapper
except ImportError as err:  # the base install is the Scorer alone
    raise ModuleNotFoundError(
        f"hepinfer.coffea.triton_wrapper needs {err.name}: pip install 'hepinfer[coffea]'", name=err.name
    ) from err

from hepinfer.config import InferenceConfig
from hepinfer.errors import ConfigError, InputMismatch, ModelNotFound, ServerUnavailable
from hepinfer.models import get_spec
from hepinfer.models.spec import ModelSpec
from hepinfer.process_scorers import request_pool, scorer_for
from hepinfer.runtime import split_rows
from hepinfer.session import Session, resolve_config
from hepinfer.urls import TritonUrl

# coffea's client_args -> InferenceConfig fields (ssl_options: tritonclient.http's dict of file names)
_CLIENT_ARGS = {
    "grpc": {"ssl", "root_certificates", "private_key", "certificate_chain", "verbose"},
    "http": {"ssl", "ssl_options", "connection_timeout", "network_timeout", "concurrency", "verbose"},
}
_SSL_OPTIONS = {"ca_certs": "root_certificates", "certfile": "certificate_chain", "keyfile": "private_key"}


def _client_settings(model_url: str, url: TritonUrl, client_args: dict | None) -> dict:
    """InferenceConfig fields from coffea's ``client_args`` (TLS files, timeouts); ``verbose`` and
    ``concurrency`` are ignored (hepinfer keeps one client per thread)."""
    args = dict(client_args or {})
    unknown = sorted(set(args) - _CLIENT_ARGS[url.protocol])
    if unknown:
        raise ConfigError(
            f"triton_wrapper({model_url!r}): client_args {unknown} are not supported over {url.protocol}; "
            f"supported: {sorted(_CLIENT_ARGS[url.protocol])} (other settings: InferenceConfig keywords)"
        )
    out = {k: args[k] for k in ("ssl", "root_certificates", "private_key", "certificate_chain") if k in args}
    for key, value in (args.get("ssl_options") or {}).items():
        if key not in _SSL_OPTIONS:
            raise ConfigError(
                f"triton_wrapper({model_url!r}): client_args ssl_options[{key!r}] is not supported; "
                f"supported: {sorted(_SSL_OPTIONS)}"
            )
        out[_SSL_OPTIONS[key]] = value
    timeouts = [args[k] for k in ("connection_timeout", "network_timeout") if args.get(k)]
    if timeouts:
        out["timeout_s"] = float(max(timeouts))
    return out


def _wrapper_config(model_url: str, config, settings: dict) -> InferenceConfig:
    """Mode remote at ``model_url``; ``settings`` > ``config`` (or the ``HEPINFER_*`` variables) >
    coffea's default of TLS on for ``triton+grpc://``."""
    defaults = {"ssl": True} if model_url.strip().lower().startswith("triton+grpc://") else {}
    overrides = {**settings, "mode": "remote", "url": model_url}
    if config is None:
        return InferenceConfig.from_env(defaults=defaults, **overrides)
    config = resolve_config(config)
    if config.ssl is None and "ssl" not in overrides:
        overrides.update(defaults)
    return config.replace(**overrides)


def served_spec(model: str, config: InferenceConfig) -> ModelSpec:
    """The spec of ``model`` from the server's model metadata and config (no inference request,
    nothing registered): :func:`hepinfer.runtime.discovery.spec_from_server` without class names."""
    from hepinfer.runtime.discovery import spec_from_server

    return spec_from_server(config.triton_url, model, config, labels=False)


class triton_wrapper(numpy_call_wrapper):  # noqa: N801 - coffea's name, so that one import changes
    """coffea.ml_tools' triton_wrapper, scored by a :class:`hepinfer.Scorer` (module docstring).

    ``model_url``, ``client_args``, ``batch_size``: as in coffea.  ``spec``: the served model's
    ModelSpec (or the name of a declared one) when the URL's model name is not what hepinfer declares
    under it.  ``config``: an InferenceConfig or Session for the other settings, which keywords
    (``retries=2``, ``timeout_s=30``, ``max_in_flight=8``, ...) override; mode and URL come from here.
    """

    def __init__(
        self,
        model_url: str,
        client_args: dict | None = None,
        batch_size: int = -1,
        *,
        spec: ModelSpec | str | None = None,
        config: InferenceConfig | Session | None = None,
        **settings,
    ):
        url = TritonUrl.parse(model_url)
        if url.model is None:
            raise ConfigError(
                f"triton_wrapper: model_url {model_url!r} names no model; expected "
                "triton+grpc://host:port/model/version (or triton+http://...)"
            )
        fixed = sorted({"mode", "url"} & set(settings))
        if fixed:
            raise ConfigError(f"triton_wrapper({model_url!r}): {fixed} come from model_url (mode is always remote)")
        if not isinstance(batch_size, int):
            raise ConfigError(f"triton_wrapper({model_url!r}): batch_size must be an integer, got {batch_size!r}")
        super().__init__()
        self.config = _wrapper_config(model_url, config, {**_client_settings(model_url, url, client_args), **settings})
        self.model_url = model_url
        self.protocol, self.address, self.model, self.version = url.protocol, url.address, url.model, url.version or ""
        self._client_args = client_args
        self._tls_by_default = "ssl" not in settings and "ssl" not in (client_args or {}) and self.config.use_ssl
        self._batch_size = batch_size
        self._spec = None if spec is None else get_spec(spec)

    # -- the model ---------------------------------------------------------------------------------
    @property
    def spec(self) -> ModelSpec:
        """The served model's ModelSpec: ``spec``, else the declaration of the URL's model name, else
        read from the server's metadata (once, here; it travels with the wrapper)."""
        if self._spec is None:
            try:
                self._spec = get_spec(self.model)
            except ModelNotFound:
                self._spec = served_spec(self.model, self.config)
        return self._spec

    @property
    def model_inputs(self) -> dict[str, dict]:
        """coffea's view of the inputs: ``{name: {"shape": (-1, *row), "datatype": "FP32"}}``."""
        return {t.name: {"shape": (-1, *t.shape), "datatype": t.wire_dtype} for t in self.spec.inputs}

    @property
    def model_outputs(self) -> dict[str, dict]:
        """coffea's view of the outputs: ``{name: {"shape": (-1, *row)}}``."""
        return {t.name: {"shape": (-1, *t.shape)} for t in self.spec.outputs}

    @property
    def batch_size(self) -> int:
        """Most rows in one request: ``batch_size`` when given, else the model's max_batch_size."""
        return self._batch_size if self._batch_size > 0 else self.spec.max_batch_size

    @property
    def scorer(self):
        """This process' Scorer of the model at ``model_url`` (created on first use)."""
        return scorer_for(self.spec, self.config)

    def __dask_tokenize__(self):
        from dask.base import tokenize

        return ("hepinfer.triton_wrapper", type(self).__module__, type(self).__qualname__, tokenize(vars(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_url!r}, hepinfer remote scoring)"

    # -- numpy -------------------------------------------------------------------------------------
    def validate_numpy_input(self, output_list: list[str], input_dict: dict[str, np.ndarray]) -> None:
        """coffea's checks against the model's spec: names, rank and shape (InputMismatch, a
        ValueError) and dtype (a warning: the array is converted); nothing is sent."""
        spec, where = self.spec, f"model {self.model!r} at {self.model_url}"
        expected = {t.name: t for t in spec.inputs}
        for name, array in input_dict.items():
            if name not in expected:
                raise InputMismatch(f"{where}: input {name!r} is not defined; the model's inputs: {list(expected)}")
            want, got = (-1, *expected[name].shape), tuple(np.shape(array))
            if len(got) != len(want) or any(w > 0 and w != g for w, g in zip(want, got)):
                raise InputMismatch(f"{where}: input {name!r} has shape {got}, expected {want} (-1: any size)")
            if np.asarray(array).dtype != expected[name].numpy_dtype:
                warnings.warn(
                    f"{where}: input {name!r} has dtype {np.asarray(array).dtype}, the model takes "
                    f"{expected[name].dtype}: converted with numpy.ndarray.astype",
                    UserWarning,
                    stacklevel=2,
                )
        missing = [name for name in expected if name not in input_dict]
        if missing:
            raise InputMismatch(f"{where}: input {missing} not given; the model's inputs: {list(expected)}")
        unknown = [name for name in output_list if name not in spec.output_names]
        if unknown:
            raise InputMismatch(f"{where}: output {unknown} is not defined; the model's outputs: {spec.output_names}")

    def numpy_call(self, output_list: list[str], input_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The requested outputs for the rows of ``input_dict`` (converted to the model's dtypes)."""
        dtypes = {t.name: t.numpy_dtype for t in self.spec.inputs}
        inputs = {k: np.asarray(v).astype(dtypes[k], copy=False) if k in dtypes else v for k, v in input_dict.items()}
        outputs = self._score(inputs)
        return {name: outputs[name] for name in output_list}

    def _score(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        failed = None
        try:
            scorer = self.scorer
            rows = len(next(iter(inputs.values()), ()))
            if self._batch_size <= 0 or rows <= self._batch_size:
                return scorer(inputs)
            pieces = [{k: v[s] for k, v in inputs.items()} for s in split_rows(rows, self._batch_size)]
            done = list(request_pool(self.config.max_in_flight).map(scorer, pieces))
            return {name: np.concatenate([d[name] for d in done]) for name in done[0]}
        except ServerUnavailable as err:
            if not (self._tls_by_default and "TLS" in str(err)):
                raise
            failed = err
        # raised here, outside the except block: no __context__ to pickle (Dask)
        raise ServerUnavailable(
            f"{failed}; {self.model_url} asks for TLS, as coffea's wrapper does: client_args={{'ssl': False}} "
            "for a server without it"
        ) from failed.__cause__

    def _outputs_like(self, output_list: list[str], input_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Zeros shaped like the outputs of ``input_dict``'s rows: the type of a partition's output."""
        rows = len(next(iter(input_dict.values()), ()))
        outputs = {t.name: t for t in self.spec.outputs}
        return {
            o: np.zeros((rows, *(max(d, 1) for d in outputs[o].shape)), outputs[o].numpy_dtype) for o in output_list
        }

    # -- awkward and dask-awkward ------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        """Awkward inputs: the outputs now; dask-awkward inputs: a graph (built without the server)."""
        lib = self.get_awkward_lib(*args, **kwargs)
        if lib is ak:
            return self._call_awkward(*args, **kwargs)
        if lib is not None:
            return self._call_dask(*args, **kwargs)
        return self._call_numpy(*args, **kwargs)

    def _call_dask(self, *args, **kwargs):
        import dask
        import dask_awkward as dak

        dak_args, dak_kwargs = self.prepare_awkward(*args, **kwargs)
        call = _PartitionCall(len(dak_args), list(dak_kwargs))
        packed = [*dak_args, *dak_kwargs.values()]
        collections, repack = dask.base.unpack_collections(*packed, traverse=True)
        meta = call(self, *repack(tuple(c._meta for c in collections)))  # typetracers: no inference request
        out = dak.map_partitions(
            call, dask.delayed(self), *packed, label=f"hepinfer-triton-{self.model}", meta=meta, traverse=True
        )
        out = {k: out[k] for k in out.fields} if out.fields else out
        return self.postprocess_awkward(out, *args, **kwargs)


class _PartitionCall:
    """One dask-awkward partition: numpy conversion, the model's outputs, packed as one record array.
    On typetracers the inputs are touched and checked, and the outputs' type comes from the spec."""

    _one_row = container_converter(
        {ak.Array: ak.typetracer.length_one_if_typetracer}, default_conv=container_converter.no_action
    )

    def __init__(self, n_args: int, kwargs_keys: list[str]):
        self.n_args, self.kwargs_keys = n_args, kwargs_keys

    def __dask_tokenize__(self):
        return ("hepinfer.ml_tools._PartitionCall", self.n_args, tuple(self.kwargs_keys))

    def __call__(self, wrapper: triton_wrapper, *args):
        ak_args = args[: self.n_args]
        ak_kwargs = dict(zip(self.kwargs_keys, args[self.n_args :]))
        (ak_args, ak_kwargs), backends = self._one_row(*ak_args, **ak_kwargs)  # touches what it converts
        (np_args, np_kwargs), _ = wrapper._ak_to_np_(*ak_args, **ak_kwargs)
        if "typetracer" in backends:
            wrapper.validate_numpy_input(*np_args, **np_kwargs)
            outputs = wrapper._outputs_like(*np_args, **np_kwargs)
        else:
            outputs = wrapper._call_numpy(*np_args, **np_kwargs)
        out = self._pack(wrapper, outputs)
        if "typetracer" in backends:
            out = ak.Array(out.layout.to_typetracer(forget_length=True), behavior=out.behavior)
        return out

    @staticmethod
    def _pack(wrapper: triton_wrapper, outputs) -> ak.Array:
        """The outputs as one awkward array (a record of them for a dict); variable dimensions as lists."""
        if not isinstance(outputs, dict):
            return ak.from_numpy(outputs) if isinstance(outputs, np.ndarray) else outputs
        shapes = {t.name: t.shape for t in wrapper.spec.outputs}
        fields = {}
        for name, array in outputs.items():
            value = ak.from_numpy(array)
            for axis, size in enumerate(shapes.get(name, ()), start=1):
                if size < 0:
                    value = ak.from_regular(value, axis=axis)
            fields[name] = value
        return ak.zip(fields, depth_limit=1)
