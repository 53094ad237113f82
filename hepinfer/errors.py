"""The one exception hierarchy of hepinfer.

Everything hepinfer raises on purpose derives from :class:`HepinferError`, so an analysis can catch
one class.  tritonclient / gRPC / onnxruntime errors are converted at the boundary with
``raise ... from err`` so the original traceback is kept.
"""

from __future__ import annotations


class HepinferError(Exception):
    """Base class of every error hepinfer raises on purpose."""


class ConfigError(HepinferError, ValueError):
    """A setting is invalid (malformed URL, unknown mode, bad thread count, ...)."""


class ModelNotFound(HepinferError, KeyError):
    """A model name is not declared, or the server does not have it loaded."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ArtefactMissing(HepinferError, FileNotFoundError):
    """A model file (ONNX / xgboost JSON) has not been built yet."""


class InputMismatch(HepinferError, ValueError):
    """An input tensor is missing, extra, or has the wrong shape or dtype."""


class ServerUnavailable(HepinferError, ConnectionError):
    """The Triton server cannot be reached or is not ready."""


class InferenceTimeout(HepinferError, TimeoutError):
    """The server accepted the request but did not answer in time."""


class ServerError(HepinferError, RuntimeError):
    """The server answered with an error, or the embedded server failed to start."""
