"""TritonRuntime: a model evaluated by a Triton server through tritonclient (gRPC, or HTTP).

* The tritonclient client is created lazily, one per process and thread (Triton clients are not
  thread-safe), and is never pickled: ``__getstate__`` drops it, ``__dask_tokenize__`` names the
  runtime by its settings.
* Inputs are validated against the ModelSpec and against the server's own model metadata before
  anything is sent; errors name the tensor and both shapes / dtypes.
* A batch is cut into equal pieces sized for the server (:mod:`hepinfer.runtime.pieces`): under its
  ``max_batch_size``, ``max_request_bytes`` and preferred batch size, spread over the model's
  instances; never padded by repeating rows.
* tritonclient / gRPC errors are converted at this boundary: refused connection ->
  ServerUnavailable, deadline -> InferenceTimeout, unknown or unready model -> ModelNotFound.
* The bearer token goes as ``authorization`` (what proxies in front of a server check) and, over
  gRPC, also as ``triton-grpc-protocol-authorization``: the name under which Triton itself checks a
  header given to ``--grpc-restricted-protocol`` (the embedded server's token).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping

import numpy as np

from hepinfer.caching import ProcessCache
from hepinfer.config import InferenceConfig
from hepinfer.errors import ConfigError, HepinferError, InputMismatch, ModelNotFound, ServerError
from hepinfer.models.spec import WIRE_TO_NUMPY, spec_of
from hepinfer.runtime import empty_outputs, split_rows
from hepinfer.runtime.pieces import model_instances, piece_rows, preferred_batch_sizes
from hepinfer.runtime.triton_errors import converted
from hepinfer.urls import TritonUrl


def _reraise(error: BaseException):
    raise error


def _close_quietly(clients) -> None:
    for client in clients:
        if client is None:
            continue
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a dead channel must not raise
            pass


TRITON_GRPC_PREFIX = "triton-grpc-protocol-"  # Triton's gRPC restricted-protocol headers carry it


def _modules(protocol: str):
    if protocol == "grpc":
        import tritonclient.grpc as mod
    else:
        try:
            import tritonclient.http as mod
        except ImportError as err:  # the base install speaks gRPC only
            raise ConfigError(
                f"an http:// URL needs tritonclient's HTTP client ({err.name} is not installed): "
                "pip install 'hepinfer[http]', or use the server's grpc:// URL"
            ) from err
    return mod


class TritonRuntime:
    """``model`` (its ModelSpec or resolved Model; the Scorer resolves a name) evaluated by the Triton
    server at ``url`` (or ``config``'s), served there as ``model_name`` (default: the URL's, else the
    spec's name)."""

    def __init__(
        self,
        model,
        url: str | TritonUrl | None = None,
        *,
        config: InferenceConfig | None = None,
        model_name: str | None = None,
        model_version: str | None = None,
    ):
        self.spec = spec_of(model)
        config = config or InferenceConfig(mode="remote")
        if url is not None:
            config = config.replace(url=str(url))
        self.config = config
        self.url = config.triton_url
        self.model_name = model_name or self.url.model or self.spec.name
        self.model_version = str(model_version or self.url.version or "")
        if (
            self.config.use_ssl
            and self.url.protocol == "http"
            and self.config.private_key
            and not self.config.certificate_chain
        ):
            raise ConfigError("a TLS client key needs its certificate_chain too")
        self._init_local_state()

    def _init_local_state(self) -> None:
        self._clients: ProcessCache = ProcessCache(per_thread=True)  # Triton clients are not thread-safe
        self._meta = None
        self._meta_lock = threading.Lock()
        self.seen_ready = False  # the model answered ready (or served a request) in this process

    # -- pickling / dask -------------------------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_clients", "_meta", "_meta_lock", "seen_ready"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_local_state()

    def __dask_tokenize__(self):
        return (
            "hepinfer.TritonRuntime",
            self.spec.name,
            str(self.url),
            self.model_name,
            self.model_version,
            self.config.use_ssl,
        )

    def __repr__(self) -> str:
        return f"TritonRuntime({self.spec.name!r}, url={str(self.url)!r}, model_name={self.model_name!r})"

    # -- client ----------------------------------------------------------------------------------
    def request_headers(self) -> dict[str, str] | None:
        """The headers of a request made now (:meth:`InferenceConfig.request_headers`), with Triton's
        own copy of the bearer token over gRPC; None when there are none."""
        headers = self.config.request_headers()
        if self.url.protocol == "grpc":
            auth = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
            if auth is not None:
                headers[f"{TRITON_GRPC_PREFIX}authorization"] = auth
        return headers or None

    @property
    def client(self):
        """This process' and thread's tritonclient client (created on first use)."""
        return self._clients.get("client", self._make_client)

    def _make_client(self):
        cfg = self.config
        mod = _modules(self.url.protocol)
        if self.url.protocol == "grpc":
            return self._call(
                "connecting",
                mod.InferenceServerClient,
                url=self.url.address,
                ssl=cfg.use_ssl,
                root_certificates=cfg.root_certificates,
                private_key=cfg.private_key,
                certificate_chain=cfg.certificate_chain,
            )
        ssl_options = {}
        if cfg.root_certificates:
            ssl_options["ca_certs"] = cfg.root_certificates
        if cfg.certificate_chain:
            ssl_options["certfile"] = cfg.certificate_chain
        if cfg.private_key:
            ssl_options["keyfile"] = cfg.private_key
        return self._call(
            "connecting",
            mod.InferenceServerClient,
            url=self.url.address,
            ssl=cfg.use_ssl,
            ssl_options=ssl_options or None,
            connection_timeout=cfg.timeout_s,
            network_timeout=cfg.timeout_s,
        )

    def reconnect(self) -> None:
        """Drop this thread's client (and its gRPC channel); the next call opens a fresh one.  Used
        before a retry: a channel that saw its server die may wait out gRPC's own reconnect backoff."""
        _close_quietly([self._clients.pop("client")])

    def close(self) -> None:
        """Close the clients this runtime created in this process (all threads)."""
        _close_quietly(self._clients.clear())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- errors ----------------------------------------------------------------------------------
    def _call(self, action: str, fn, *args, **kwargs):
        """Call tritonclient; convert its errors to hepinfer's.  The converted error is raised outside
        the ``except`` block, from a plain copy of the original: tritonclient's exceptions hold gRPC
        objects that cannot be pickled, and Dask pickles an error's whole cause/context chain to send
        it back from a worker.  Neither error stays in a reference cycle with the frames that raised
        it (tritonclient's keeps its own frame, that frame its callers): the callers' objects and
        clients are freed at once, not at the next garbage collection."""
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - converted at the boundary
            error = self._convert(err, action)
            cause = RuntimeError(f"{type(err).__module__}.{type(err).__name__}: {err}")
            for e in (err, err.__context__, err.__cause__):  # tritonclient raises inside its except blocks
                if e is not None:
                    e.__traceback__ = None
        try:
            raise error from cause
        finally:
            del error, cause

    def _convert(self, err: BaseException, action: str) -> HepinferError:
        return converted(err, action, self.url, self.model_name, self.config)

    # -- metadata ----------------------------------------------------------------------------------
    def is_ready(self, timeout_s: float | None = None) -> bool:
        """True when the server answers and the model is ready; raises ServerUnavailable when unreachable."""
        kw = {"client_timeout": timeout_s or self.config.probe_timeout_s} if self.url.protocol == "grpc" else {}
        client = self.client
        ready = bool(
            self._call(
                "readiness probe",
                client.is_model_ready,
                self.model_name,
                self.model_version,
                headers=self.request_headers(),
                **kw,
            )
        )
        self.seen_ready = self.seen_ready or ready
        return ready

    def metadata(self) -> dict:
        """The server's view of the model: inputs/outputs (name -> (numpy dtype, shape)) and max_batch_size."""
        if self._meta is None:
            with self._meta_lock:
                if self._meta is None:
                    self._meta = self._fetch_metadata()
        return self._meta

    def model_info(self) -> tuple[dict, dict]:
        """The server's model metadata and model config (JSON dicts); ModelNotFound when not ready."""
        if not self.is_ready():
            raise ModelNotFound(
                f"model {self.model_name!r} (version {self.model_version or 'latest'}) is not ready on the Triton "
                f"server at {self.url}: it is not loaded, or still loading"
            )
        client = self.client
        kw = {"headers": self.request_headers()}
        if self.url.protocol == "grpc":
            kw["as_json"] = True
        action = "reading model metadata"
        meta = self._call(action, client.get_model_metadata, self.model_name, self.model_version, **kw)
        config = self._call(action, client.get_model_config, self.model_name, self.model_version, **kw)
        return meta, config.get("config", config)

    def _fetch_metadata(self) -> dict:
        meta, config = self.model_info()

        def tensors(items):
            return {
                t["name"]: (WIRE_TO_NUMPY.get(t["datatype"]), t["datatype"], tuple(int(d) for d in t["shape"]))
                for t in items
            }

        return {
            "inputs": tensors(meta.get("inputs", [])),
            "outputs": tensors(meta.get("outputs", [])),
            "max_batch_size": int(config.get("max_batch_size", 0) or 0),
            "instances": model_instances(config),
            "preferred_batch_sizes": preferred_batch_sizes(config),
        }

    def validate_against_server(self, inputs: Mapping[str, np.ndarray]) -> None:
        meta = self.metadata()
        server = meta["inputs"]
        if set(server) != set(inputs):
            raise InputMismatch(
                f"model {self.model_name!r} on {self.url} expects input tensors {sorted(server)}, got {sorted(inputs)}"
            )
        batched = meta["max_batch_size"] > 0
        for name, (dtype, wire, shape) in server.items():
            arr = inputs[name]
            row_shape = shape[1:] if batched else shape
            got = arr.shape[1:] if batched else arr.shape
            if len(row_shape) != len(got) or any(d != -1 and d != g for d, g in zip(row_shape, got)):
                raise InputMismatch(
                    f"model {self.model_name!r} on {self.url}, tensor {name!r}: server expects shape {shape}, "
                    f"got {tuple(arr.shape)}"
                )
            if dtype is None or arr.dtype != dtype:
                raise InputMismatch(
                    f"model {self.model_name!r} on {self.url}, tensor {name!r}: server expects {wire}, got {arr.dtype}"
                )

    def rows_per_request(self, inputs: Mapping[str, np.ndarray]) -> int:
        """Rows of the largest request ``inputs`` are cut into (:mod:`hepinfer.runtime.pieces`)."""
        meta = self.metadata()
        return piece_rows(
            len(next(iter(inputs.values()))),
            sum(int(a[:1].nbytes) for a in inputs.values()),
            max_batch_size=meta["max_batch_size"],
            max_request_bytes=self.config.max_request_bytes,
            instances=meta["instances"],
            preferred=meta["preferred_batch_sizes"],
        )

    # -- inference -------------------------------------------------------------------------------
    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = self.spec.validate(inputs)
        if n == 0:
            return empty_outputs(self.spec)
        self.validate_against_server(inputs)
        step = self.rows_per_request(inputs)
        batches = [{k: v[s] for k, v in inputs.items()} for s in split_rows(n, step)]
        if len(batches) == 1:
            return self._request(batches[0])
        if self.url.protocol == "grpc" and self.config.max_in_flight > 1:
            pieces = self._requests_in_flight(batches)
        else:
            pieces = [self._request(b) for b in batches]
        return {name: np.concatenate([p[name] for p in pieces]) for name in self.spec.output_names}

    def _request_args(self, batch: Mapping[str, np.ndarray]):
        mod = _modules(self.url.protocol)
        meta = self.metadata()
        infer_inputs = []
        for name, arr in batch.items():
            inp = mod.InferInput(name, list(arr.shape), meta["inputs"][name][1])
            inp.set_data_from_numpy(np.ascontiguousarray(arr))
            infer_inputs.append(inp)
        outputs = [mod.InferRequestedOutput(n) for n in self.spec.output_names]
        kw = {"client_timeout": self.config.timeout_s} if self.url.protocol == "grpc" else {}
        return infer_inputs, dict(
            model_version=self.model_version, outputs=outputs, headers=self.request_headers(), **kw
        )

    def _request(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(batch.values())))
        infer_inputs, kw = self._request_args(batch)
        result = self._call(f"inference of {rows} rows", self.client.infer, self.model_name, infer_inputs, **kw)
        return self._unpack(result, rows)

    def _requests_in_flight(self, batches) -> list[dict[str, np.ndarray]]:
        """Send ``batches`` with up to ``max_in_flight`` gRPC requests outstanding (tritonclient's
        async_infer); the answers come back in the order of ``batches``.  The first failure is
        raised, converted like any other, once the requests already sent have finished."""
        window = threading.BoundedSemaphore(self.config.max_in_flight)
        results: list = [None] * len(batches)
        errors: list = [None] * len(batches)
        finished = threading.Semaphore(0)
        client = self.client

        def done(i, result, error):
            results[i], errors[i] = result, error
            window.release()
            finished.release()

        sent = 0
        for i, batch in enumerate(batches):
            window.acquire()
            if any(e is not None for e in errors):
                window.release()
                break
            infer_inputs, kw = self._request_args(batch)
            self._call(
                f"sending {len(next(iter(batch.values())))} rows",
                client.async_infer,
                self.model_name,
                infer_inputs,
                functools.partial(done, i),
                **kw,
            )
            sent += 1
        for _ in range(sent):
            finished.acquire()
        for i, error in enumerate(errors[:sent]):
            if error is not None:
                rows = len(next(iter(batches[i].values())))
                self._call(f"inference of {rows} rows", _reraise, error)
        return [self._unpack(r, len(next(iter(b.values())))) for r, b in zip(results, batches)]

    def _unpack(self, result, rows: int) -> dict[str, np.ndarray]:
        out = {}
        for name in self.spec.output_names:
            arr = result.as_numpy(name)
            if arr is None or len(arr) != rows:
                raise ServerError(
                    f"model {self.model_name!r} on {self.url}: output {name!r} has "
                    f"{'no data' if arr is None else len(arr)} rows for {rows} sent (a server with numpy>=2 in "
                    "its python backend returns empty outputs)"
                )
            out[name] = arr
        return out
