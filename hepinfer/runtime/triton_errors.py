"""tritonclient / gRPC errors turned into hepinfer's at the client boundary (TritonRuntime._call):
a refused connection is ServerUnavailable, a deadline InferenceTimeout, an unknown or unready model
ModelNotFound, a missing header (a token) ServerError; never is a refused connection called a timeout."""

from __future__ import annotations

from hepinfer.config import InferenceConfig
from hepinfer.errors import HepinferError, InferenceTimeout, ModelNotFound, ServerError, ServerUnavailable


def converted(err: BaseException, action: str, url, model_name: str, config: InferenceConfig) -> HepinferError:
    """hepinfer's error for ``err``, raised by ``action`` ("inference of 12 rows") on the server at
    ``url`` (a TritonUrl) for ``model_name``."""
    if isinstance(err, HepinferError):
        return err
    where = f"Triton at {url} (model {model_name!r})"
    text = str(err)
    status = ""
    try:
        from tritonclient.utils import InferenceServerException

        if isinstance(err, InferenceServerException):
            status = str(err.status() or "")
            text = err.message() or text
    except ImportError:  # pragma: no cover
        pass
    low = (status + " " + text).lower()
    if "restricted" in low or "permission" in low or "unauthenticated" in low:
        return ServerError(
            f"{action}: refused by {where}: the request lacks a header the server requires (a shared "
            f"server's bearer token: {config.token_note()}; the embedded server's model-control "
            f"endpoints need its admin token) ({text})"
        )
    if config.use_ssl and any(w in low for w in ("handshake", "ssl", "certificate", "tls")):
        return ServerUnavailable(
            f"{action}: TLS handshake with {url} failed: the server's certificate is not signed by the "
            "root certificates given "
            f"({config.root_certificates or 'the system store; set root_certificates'})"
            f", or the server does not speak TLS ({text.strip()})"
        )
    if (
        "deadline" in low
        or isinstance(err, TimeoutError)
        or "timed out" in low
        or "timeout" in type(err).__name__.lower()
    ):
        return InferenceTimeout(f"{action}: no answer from {where} within {config.timeout_s:g} s ({text})")
    if "hepinfer fleet" in low:  # the fleet's front refused (rate limit, saturation): it is up
        busy = f"{url} turned the request away: {text.strip()}. It runs: wait for it to scale, send less"
        return ServerUnavailable(f"{action}: the fleet at {busy}, or raise retries / retry_total_s")
    if "unavailable" in low or "connect" in low or "refused" in low or isinstance(err, ConnectionError):
        return ServerUnavailable(
            f"{action}: cannot reach the Triton server at {url}: {text.strip()}. {reach_advice(url)}"
        )
    if "unknown model" in low or "not found" in low or "not ready" in low:
        return ModelNotFound(f"model {model_name!r} is not loaded on the Triton server at {url}: {text}")
    return ServerError(f"{action} on {where} failed: {status} {text}".strip())


def reach_advice(url) -> str:
    """What to check when nothing answers at ``url``: on this machine a server may simply not run
    yet; elsewhere it is a shared server, so the address, the network and TLS come first."""
    if url.is_loopback:
        return "Start one with `hepinfer serve` (or hepinfer.serve()), or check the URL"
    return (
        f"Check the URL, that the server at {url.address} runs and that this host may reach it (firewall, "
        "VPN, a proxy's port: TLS endpoints are usually grpcs://host:443)"
    )
