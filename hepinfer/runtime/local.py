"""LocalRuntime: the model evaluated in this process with onnxruntime or xgboost.

One engine (session / booster) per model, artefact and thread count per process, created on first
use and shared by every LocalRuntime of the process (sessions are thread-safe for inference).  The
engine is dropped on pickling and rebuilt in the receiving process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from hepinfer.caching import ProcessCache
from hepinfer.errors import ArtefactMissing, ConfigError
from hepinfer.models.catalogue import local_artefact
from hepinfer.models.checks import check_sha256
from hepinfer.models.spec import spec_of
from hepinfer.runtime import empty_outputs
from hepinfer.runtime.engines import load_engine

_ENGINES = ProcessCache()
# Two wheels install the xgboost module, and one installed over the other replaces its files: one
# extra per wheel (pyproject.toml), both named.
INSTALL_LOCAL = (
    "pip install 'hepinfer[local]' (onnxruntime and the xgboost wheel) or 'hepinfer[local-cpu]' (the "
    "xgboost-cpu wheel, without CUDA libraries): the one whose wheel this environment already holds, if any"
)


class LocalRuntime:
    """``model`` (its ModelSpec or resolved Model; the Scorer resolves a name) evaluated here, from its
    artefact (``artefact``: another file of the same model)."""

    def __init__(self, model, *, threads: int = 1, artefact: str | Path | None = None):
        self.spec = spec_of(model)
        self.threads = int(threads)
        self._artefact = Path(artefact) if artefact else None

    @property
    def artefact(self) -> Path:
        if self._artefact is not None:
            return self._artefact
        return local_artefact(self.spec)  # the cache's, else the one shipped in the package

    def _engine(self):
        if self._artefact is None and self.spec.sha256 and self.artefact.exists():
            check_sha256(self.spec, str(self.artefact))  # the declared checksum, before the file is used
        return _ENGINES.get((str(self.artefact), self.threads), self._load)

    def _load(self):
        if self.spec.remote_only:
            raise ConfigError(
                f"model {self.spec.name!r} ({self.spec.source or 'engine remote'}) declares no artefact: "
                "only a server has it, so it is scored with mode='remote'"
            )
        if not self.artefact.exists():
            if self.spec.artefact_file is not None:
                raise ArtefactMissing(f"model {self.spec.name!r}: artefact file {self.artefact} does not exist")
            # the cache's path comes back from local_artefact only when the package ships no trained file
            network = self._artefact is None and self.spec.engine == "onnxruntime"
            raise ArtefactMissing(
                f"model {self.spec.name!r}: artefact {self.artefact} not built"
                + (", and hepinfer ships no trained file for it" if self._artefact is None else "")
                + (" (its ONNX is exported from torch at build time)" if network else "")
                + f"; run `hepinfer models build --models {self.spec.name}`"
                + (" (needs torch: pip install 'hepinfer[build]')" if network else "")
            )
        try:
            return load_engine(
                self.spec.engine, str(self.artefact), self.spec.input_names, self.spec.output_names, self.threads
            )
        except ImportError as err:
            raise ConfigError(
                f"local inference of {self.spec.name!r} needs {err.name or self.spec.engine}, which is "
                f"not installed: {INSTALL_LOCAL} (or use mode='remote')"
            ) from err

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = self.spec.validate(inputs)
        if n == 0:
            return empty_outputs(self.spec)
        return self._engine().run(dict(inputs))

    def close(self) -> None:
        """Nothing to release per runtime: engines are per process and shared."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __dask_tokenize__(self):
        return ("hepinfer.LocalRuntime", self.spec.name, str(self.artefact), self.threads)

    def __repr__(self) -> str:
        return f"LocalRuntime({self.spec.name!r}, threads={self.threads})"
