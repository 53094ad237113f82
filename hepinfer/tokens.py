"""Bearer tokens for a shared server: where the client finds one, read where the request is made.

:meth:`hepinfer.InferenceConfig.request_headers` sends ``authorization: Bearer <token>`` with the
first of these that yields a token (a step that is unset, empty or names no file passes to the next):

1. an ``authorization`` header in ``InferenceConfig.headers``: a token written in code (it travels
   inside the pickled config, because a worker has no other way to learn it; ``repr`` hides it);
2. the variable named by ``token_env`` (default ``HEPINFER_TOKEN``): the token itself;
3. the file ``token_file`` (``HEPINFER_TOKEN_FILE``): the token is its content; a file named here
   that cannot be read is an error, not a silent request without token;
4. WLCG Bearer Token Discovery (``token_discovery``, on by default): ``BEARER_TOKEN`` (the token
   itself), else ``BEARER_TOKEN_FILE`` (a file), else ``$XDG_RUNTIME_DIR/bt_u<uid>``, else
   ``/tmp/bt_u<uid>``.  HTCondor's credential monitor and ``htgettoken`` put tokens there.

Steps 2 to 4 read the environment and the files of the process that makes the request (a Dask
worker, an HTCondor job) at each request, so a token refreshed in its file is picked up: the config
carries where to look (a variable's name, a path), never the token found there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hepinfer.errors import ConfigError

TMP_DIR = "/tmp"  # noqa: S108 - the place WLCG Bearer Token Discovery names, read-only here


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:  # no such file, a folder, not ours to read: the next step
        return None


def find_token(
    token_env: str | None,
    token_file: str | None,
    discovery: bool,
    environ: Mapping[str, str] | None = None,
    uid: int | None = None,
) -> tuple[str, str] | None:
    """The bearer token of a request made now, and where it came from (``$HEPINFER_TOKEN``, a file's
    path, ...; never the token): steps 2 to 4 of the module's order.  None when no step yields one."""
    environ = os.environ if environ is None else environ
    token = environ.get(token_env, "").strip() if token_env else ""
    if token:
        return token, f"${token_env}"
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as err:
            raise ConfigError(f"token_file {token_file}: cannot read the bearer token ({err.strerror})") from None
        if not token:
            raise ConfigError(f"token_file {token_file}: the file is empty, it holds no bearer token")
        return token, f"token_file {token_file}"
    if not discovery:
        return None
    token = environ.get("BEARER_TOKEN", "").strip()
    if token:
        return token, "$BEARER_TOKEN"
    uid = os.getuid() if uid is None else uid
    places = [("$BEARER_TOKEN_FILE", environ.get("BEARER_TOKEN_FILE"))]
    if environ.get("XDG_RUNTIME_DIR"):
        places.append(("$XDG_RUNTIME_DIR", os.path.join(environ["XDG_RUNTIME_DIR"], f"bt_u{uid}")))
    places.append(("", os.path.join(TMP_DIR, f"bt_u{uid}")))
    for label, path in places:
        if path and (token := _read(path)):
            return token, f"{label} ({path})" if label else path
    return None
