"""Where a model is served, as settings: :class:`ModelServer` (its ordered servers, its name and
version there), read from code, from a declaration's ``[model.<name>.server]`` table and from the
``HEPINFER_MODEL_<NAME>_URL`` / ``_NAME`` / ``_VERSION`` variables.

Three places may say it, the most specific first:

1. ``InferenceConfig.model_servers[<model>]`` (from code, or from those variables:
   :func:`model_variables`);
2. the model's declaration: a ``[model.<name>.server]`` table of its TOML file
   (:mod:`hepinfer.models.declare`), kept in ``ModelSpec.extra["server"]`` (:func:`declared_server`);
3. ``InferenceConfig.url``: one URL or several, comma-separated, for every model.

:func:`hepinfer.runtime.servers.endpoints` combines them into the servers a call tries.  This module
imports neither the runtime nor the models: the config, the declarations and the runtime all read it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hepinfer.errors import ConfigError
from hepinfer.names import check_model_name
from hepinfer.urls import TritonUrl

SERVER_KEYS = ("urls", "name", "version")
MODEL_PREFIX = "HEPINFER_MODEL_"  # HEPINFER_MODEL_<NAME>_URL / _NAME / _VERSION
MODEL_SUFFIXES = {"_URL": "urls", "_NAME": "name", "_VERSION": "version"}


def split_urls(value, setting: str) -> tuple[str, ...]:
    """The URLs of ``value`` (one string with URLs separated by commas, or a sequence of strings),
    each checked by :meth:`TritonUrl.parse`; errors name ``setting``."""
    if isinstance(value, str):
        items = [u.strip() for u in value.split(",")]
    elif isinstance(value, Sequence) and all(isinstance(u, str) for u in value):
        items = [u.strip() for u in value]
    else:
        raise ConfigError(f"{setting}: expected a URL, URLs separated by commas or a list of URLs, got {value!r}")
    if not items or any(not u for u in items):
        raise ConfigError(f"{setting}: an empty URL in {value!r} (URLs are separated by single commas)")
    for u in items:
        try:
            TritonUrl.parse(u)
        except ConfigError as err:
            raise ConfigError(f"{setting}: {err}") from None
    if len(set(items)) != len(items):
        raise ConfigError(f"{setting}: a URL is listed twice in {value!r}")
    return tuple(items)


def check_name(name, where: str) -> str | None:
    """``name`` (a model's name on its servers) checked; None passes."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise ConfigError(f"{where}: expected a string, got {name!r}")
    try:
        return check_model_name(name)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def check_version(version, where: str) -> str | None:
    """``version`` (a number >= 1, or its digits) as a string; None passes."""
    text = str(version) if isinstance(version, int) and not isinstance(version, bool) else version
    if text is not None and not (isinstance(text, str) and text.isdigit() and int(text) > 0):
        raise ConfigError(f"{where}: expected a version number >= 1, got {version!r}")
    return text


def _checked(urls, name, version, where: str) -> dict:
    return {
        "urls": split_urls(urls, f"{where}.urls") if urls else (),
        "name": check_name(name, f"{where}.name"),
        "version": check_version(version, f"{where}.version"),
    }


@dataclass(frozen=True)
class ModelServer:
    """Where one model is served: ``urls`` (tried in this order; empty: the config's ``url``),
    ``name`` and ``version`` on those servers (None: from the URL's path, else the model's name and
    the latest version).  Frozen and hashable."""

    urls: tuple[str, ...] = ()
    name: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        for key, value in _checked(self.urls, self.name, self.version, "ModelServer").items():
            object.__setattr__(self, key, value)

    @classmethod
    def of(cls, value, where: str) -> ModelServer:
        """A ModelServer from ``value``: a ModelServer, or a mapping with the keys ``urls`` (a list, or
        URLs separated by commas), ``name`` and ``version``; errors name ``where``."""
        if isinstance(value, ModelServer):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table with {', '.join(SERVER_KEYS)}, got {value!r}")
        unknown = [k for k in value if k not in SERVER_KEYS]
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(SERVER_KEYS)})")
        return cls(**_checked(value.get("urls", ()), value.get("name"), value.get("version"), where))

    def as_dict(self) -> dict:
        """The table's keys that are set (``version`` as a number), as TOML writes them."""
        version = int(self.version) if self.version else None
        return {k: v for k, v in (("urls", list(self.urls)), ("name", self.name), ("version", version)) if v}


def env_key(model: str) -> str:
    """The ``<NAME>`` of a model's variables: its name in capitals, any character other than a letter
    or digit as ``_`` (``bdt_nanoaod`` -> ``BDT_NANOAOD``)."""
    return re.sub(r"[^A-Z0-9]", "_", model.upper())


def model_servers(value, setting: str = "model_servers") -> dict[str, ModelServer]:
    """``value`` ({model: ModelServer or mapping}) checked: a dict of ModelServers by model name."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{setting}: expected {{model: {{urls, name, version}}}}, got {value!r}")
    out: dict[str, ModelServer] = {}
    seen: dict[str, str] = {}
    for model, entry in value.items():
        if not isinstance(model, str) or not model:
            raise ConfigError(f"{setting}: model names are strings, got {model!r}")
        key = env_key(model)
        if key in seen:
            raise ConfigError(f"{setting}: {seen[key]!r} and {model!r} are the same model for its variables ({key})")
        seen[key] = model
        out[model] = ModelServer.of(entry, f"{setting}[{model!r}]")
    return out


def server_of(servers: Mapping[str, ModelServer], model: str) -> ModelServer | None:
    """The entry of ``model`` in ``servers``: by its name, else by its variables' ``<NAME>``."""
    if model in servers:
        return servers[model]
    key = env_key(model)
    return next((s for m, s in servers.items() if env_key(m) == key), None)


def declared_server(spec) -> ModelServer | None:
    """The ``[model.<name>.server]`` table of the model's declaration (None: it has none)."""
    server = spec.extra.get("server") if isinstance(spec.extra, Mapping) else None
    return server if isinstance(server, ModelServer) else None


def model_variables(environ: Mapping[str, str]) -> dict[str, ModelServer]:
    """``model_servers`` from ``HEPINFER_MODEL_<NAME>_URL`` / ``_NAME`` / ``_VERSION``, keyed by
    ``<name>`` in small letters (it matches the model whose name gives ``<NAME>``, :func:`env_key`);
    an error names the variable at fault."""
    tables: dict[str, dict[str, object]] = {}
    for variable, raw in sorted(environ.items()):
        if not variable.startswith(MODEL_PREFIX):
            continue
        suffix = next((s for s in MODEL_SUFFIXES if variable.endswith(s)), "")
        key = variable[len(MODEL_PREFIX) : -len(suffix)] if suffix else ""
        if not key or env_key(key) != key:
            raise ConfigError(
                f"{variable}: not a model's variable (HEPINFER_MODEL_<NAME>_URL, _NAME or _VERSION, <NAME> the "
                "model's name in capitals with '_' for any other character)"
            )
        where, value = f"{variable}={raw!r}", raw.strip()
        field_name = MODEL_SUFFIXES[suffix]
        check = {"urls": split_urls, "name": check_name, "version": check_version}[field_name]
        tables.setdefault(key.lower(), {})[field_name] = check(value, where)
    return {key: ModelServer(**table) for key, table in tables.items()}
