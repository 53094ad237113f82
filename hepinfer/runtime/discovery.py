"""ModelSpecs read from a Triton server: models hepinfer never declared, on a shared server.

:func:`spec_from_server` builds a :class:`~hepinfer.models.spec.ModelSpec` from the server's model
metadata and model config (tritonclient's ``get_model_metadata`` / ``get_model_config``, through
:class:`~hepinfer.runtime.triton.TritonRuntime`, so errors are converted as for any remote call):
input and output names, dtypes and per-row shapes, ``max_batch_size``, and the class names when the
first output has a ``label_filename`` (Triton's classification extension returns each column's
label).  The spec's engine is ``remote``: it has no artefact, so it is scored with
``mode="remote"`` only, and it declares no input builder (add one in the TOML file that
``hepinfer models pull`` writes, to tag jets with it).  :func:`discover` registers it in this
process (source ``server <url>``); ``Scorer(name, mode="remote", url=...)`` calls it for a name the
registry does not know.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..config import InferenceConfig
from ..errors import ConfigError, HepinferError
from ..logs import get_logger
from ..models.spec import REMOTE, WIRE_TO_NUMPY, ModelSpec, TensorSpec
from .triton import TritonRuntime, _modules

log = get_logger(__name__)


def _tensors(where: str, kind: str, items) -> tuple[TensorSpec, ...]:
    out = []
    for t in items:
        dtype = WIRE_TO_NUMPY.get(t["datatype"])
        if dtype is None:
            raise ConfigError(f"{where}: {kind} {t['name']!r} has datatype {t['datatype']}, which hepinfer cannot send")
        shape = tuple(int(d) for d in t["shape"])[1:]  # the batch axis comes first
        out.append(TensorSpec(t["name"], dtype.name, shape))
    return tuple(out)


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
        headers=rt.config.request_headers() or None,
    )
    labels = {}
    for entry in np.asarray(result.as_numpy(first.name)).reshape(-1)[:columns]:
        parts = (entry.decode() if isinstance(entry, bytes) else str(entry)).split(":", 2)
        if len(parts) == 3:
            labels[int(parts[1])] = parts[2]
    return tuple(labels[i] for i in range(columns)) if len(labels) == columns else ()


def spec_from_server(url, name: str, config: InferenceConfig | None = None) -> ModelSpec:
    """The ModelSpec of model ``name`` as the Triton server at ``url`` serves it (not registered).

    ``config`` gives the connection settings (TLS, headers, timeouts); its URL is replaced by ``url``.
    ServerUnavailable / ModelNotFound / ServerError as for any remote call; ConfigError for a model
    hepinfer cannot score (no batching, a tensor of strings).
    """
    config = (config or InferenceConfig(mode="remote")).replace(url=str(url))
    placeholder = ModelSpec(name=name, inputs=(), outputs=(), max_batch_size=0, engine=REMOTE)
    with TritonRuntime(placeholder, config=config, model_name=name) as rt:
        meta, server_config = rt.model_info()
        where = f"model {name!r} on {rt.url}"
        max_batch_size = int(server_config.get("max_batch_size", 0) or 0)
        if max_batch_size < 1:
            raise ConfigError(f"{where}: max_batch_size 0 (the model does not batch); hepinfer scores batched models")
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
        if first.get("label_filename"):
            try:
                spec = dataclasses.replace(spec, classes=_labels(rt, spec))
            except HepinferError as err:
                log.warning("%s: the class labels could not be read (%s); no classes declared", where, err)
    return spec


def discover(name: str, config: InferenceConfig) -> ModelSpec:
    """:func:`spec_from_server` for ``config.url``, registered in this process (source ``server <url>``)."""
    from ..models import SPECS

    spec = spec_from_server(config.url, name, config)
    try:
        return SPECS.register(spec, source=spec.source)
    except ConfigError:
        if name in SPECS:  # declared meanwhile (another thread, or HEPINFER_MODELS): that one counts
            return SPECS[name]
        raise
