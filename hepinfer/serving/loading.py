"""Loading a repository's models into a started embedded server, one by one.

A repository served as it is (:mod:`.foreign`) is loaded through Triton's repository API (with the
launcher's admin token) after the server is up, instead of ``--load-model`` at start: a model that
fails to load is named with Triton's own reason, and the others still serve.  The rule (the
:class:`~.options.ServerOptions` field ``skip_unservable``, on when no models are named): skip and
warn, or fail the start naming the model.  A model is skipped before the start when it cannot be
served at all (:attr:`~.foreign.ForeignModel.error`), or after its load failed in the server.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from hepinfer.errors import ConfigError, ServerError
from hepinfer.logs import get_logger
from hepinfer.serving.foreign import ForeignModel

log = get_logger(__name__)


def check_servable(models: list[ForeignModel], root, skip: bool) -> list[ForeignModel]:
    """The servable ``models``; ConfigError naming each unservable one unless ``skip`` (then a
    warning line each), and whenever none is left."""
    bad = [m for m in models if not m.servable]
    if bad and not skip:
        raise ConfigError("; ".join(f"model {m.name!r} of {root} cannot be served: {m.describe()}" for m in bad))
    for m in bad:
        log.warning(f"hepinfer: model {m.name!r} of {root} skipped: {m.describe()}")
    good = [m for m in models if m.servable]
    if not good:
        raise ConfigError(f"no model of the repository {root} can be served")
    return good


def _reason(text: str) -> str:
    """Triton's error without its Python traceback ("At: ..."), on one line."""
    try:
        text = json.loads(text).get("error", text)
    except (ValueError, AttributeError):
        pass
    return " ".join(text.split("\n\nAt:")[0].split())


def load_model(http_url: str, name: str, headers: dict, timeout_s: float) -> str:
    """Ask the server at ``http_url`` to load model ``name``: "" when it loaded, else the reason."""
    request = urllib.request.Request(
        f"{http_url}/v2/repository/models/{urllib.parse.quote(name)}/load", data=b"", method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return ""
    except urllib.error.HTTPError as err:
        return _reason(err.read().decode(errors="replace")) or f"HTTP {err.code}"
    except OSError as err:
        return f"no answer from the server within {timeout_s:.0f} s ({err})"


def load_models(server, models: list[ForeignModel], workers: int = 4) -> list[ForeignModel]:
    """Load ``models`` into the started ``server`` (an EmbeddedServer; ensembles after their steps);
    return them, those that failed with Triton's reason as their error.  ServerError naming the
    model, the reason and the log when one fails and ``server.options.skip_unservable`` is off."""
    headers = server.admin_headers("http")
    timeout_s = server.options.startup_timeout_s

    def load(name: str) -> str:
        return load_model(server.http_url, name, headers, timeout_s)

    plain = [m.name for m in models if not m.steps]
    with ThreadPoolExecutor(max(1, min(workers, len(plain)))) as pool:
        reasons = dict(zip(plain, pool.map(load, plain)))
    for m in models:
        if m.steps:
            failed = [s for s in m.steps if reasons.get(s)]
            reasons[m.name] = f"its step {failed[0]!r} failed to load" if failed else load(m.name)
    out = []
    for m in models:
        if reasons[m.name] and not server.options.skip_unservable:
            raise ServerError(f"model {m.name!r} failed to load: {reasons[m.name]}; log: {server.log_path}")
        if reasons[m.name]:
            log.warning(f"hepinfer: model {m.name!r} skipped: it failed to load: {reasons[m.name]}")
        out.append(m.failed(f"failed to load: {reasons[m.name]}") if reasons[m.name] else m)
    if not any(m.servable for m in out):
        raise ServerError(f"none of the models loaded; log: {server.log_path}")
    return out


def load_repository(server) -> None:
    """Load the servable models of ``server.repository_models`` into the started ``server`` and
    record how each went; on a ServerError the server is stopped first."""
    t0 = time.perf_counter()
    try:
        loaded = {m.name: m for m in load_models(server, [m for m in server.repository_models if m.servable])}
    except ServerError:
        server.stop()
        raise
    server.repository_models = [loaded.get(m.name, m) for m in server.repository_models]
    server.startup_seconds = (server.startup_seconds or 0.0) + time.perf_counter() - t0
