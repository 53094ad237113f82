"""The servers a call on a model tries, in order: :func:`endpoints` combines the model's settings
(:mod:`hepinfer.model_servers`: the config's ``model_servers``, the declaration's
``[model.<name>.server]`` table, the config's ``url``, the most specific first).

Each of ``urls``, ``name`` and ``version`` comes from the first place that gives it; the name and
version then fall back to the URL's own path (``grpc://host:port/<name>/<version>``), then to the
model's name and the server's latest version.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hepinfer.model_servers import ModelServer, declared_server, server_of, split_urls
from hepinfer.urls import TritonUrl


@dataclass(frozen=True)
class Endpoint:
    """One server of a model: its URL (without path), and the model's name and version there."""

    url: TritonUrl
    model_name: str
    model_version: str = ""  # "": the latest the server has

    @property
    def server(self) -> str:
        """The server's URL, as stats and summaries name it (``grpc://host:port``)."""
        return str(self.url)

    def __str__(self) -> str:
        version = f" version {self.model_version}" if self.model_version else ""
        return f"{self.server} (model {self.model_name!r}{version})"


def endpoints(spec, config) -> tuple[Endpoint, ...]:
    """The servers of model ``spec`` under ``config``, in the order they are tried."""
    given = server_of(config.model_servers, spec.name) or ModelServer()
    declared = declared_server(spec) or ModelServer()
    urls = given.urls or declared.urls or split_urls(config.url, "url")
    name = given.name or declared.name
    version = given.version or declared.version
    out = []
    for text in urls:
        url = TritonUrl.parse(text)
        if name or not url.model:  # the URL's version belongs to the model its path names
            model_name, model_version = name or spec.name, version
        else:
            model_name, model_version = url.model, version or url.version
        out.append(Endpoint(replace(url, model=None, version=None), model_name, model_version or ""))
    return tuple(out)
