"""Parsing of Triton server addresses into a small immutable object.

Accepted forms::

    grpc://host:port          gRPC, plain text (default port 8001)
    grpcs://host:port         gRPC over TLS
    http://host:port          HTTP/REST (default port 8000)
    https://host:port         HTTP/REST over TLS
    triton+grpc://host:port/model/version   coffea.ml_tools' form; model and version are kept
    host:port                 shorthand for grpc://host:port

TLS is off unless the scheme asks for it (``grpcs``/``https``/``triton+grpcs``) or the caller passes
``ssl=True`` to the runtime.  This is the opposite of coffea's gRPC default (ssl=True), which fails
against a plain loopback server.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from hepinfer.errors import ConfigError

DEFAULT_PORTS = {"grpc": 8001, "http": 8000}

_SCHEMES = {
    "grpc": ("grpc", False),
    "grpcs": ("grpc", True),
    "http": ("http", False),
    "https": ("http", True),
    "triton+grpc": ("grpc", False),
    "triton+grpcs": ("grpc", True),
    "triton+http": ("http", False),
    "triton+https": ("http", True),
}


@dataclass(frozen=True)
class TritonUrl:
    protocol: str  # "grpc" | "http"
    host: str
    port: int
    ssl: bool = False
    model: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, url: str) -> TritonUrl:
        if isinstance(url, TritonUrl):
            return url
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"Triton URL must be a non-empty string, got {url!r}")
        text = url.strip()
        if "://" not in text:
            text = "grpc://" + text
        scheme = text.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            raise ConfigError(
                f"unsupported scheme {scheme!r} in Triton URL {url!r}; use one of "
                + ", ".join(f"{s}://" for s in _SCHEMES)
            )
        protocol, ssl = _SCHEMES[scheme]
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as err:
            raise ConfigError(f"malformed Triton URL {url!r}: {err}") from err
        host = parts.hostname
        if not host:
            raise ConfigError(f"Triton URL {url!r} has no host")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError(f"Triton URL {url!r} must not carry user info, a query or a fragment")
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) > 2:
            raise ConfigError(f"Triton URL {url!r} has too many path parts; expected at most /model/version")
        model = segments[0] if segments else None
        version = segments[1] if len(segments) > 1 else None
        if version is not None and not version.isdigit():
            raise ConfigError(f"model version in Triton URL {url!r} must be an integer, got {version!r}")
        return cls(
            protocol=protocol,
            host=host,
            port=port if port is not None else DEFAULT_PORTS[protocol],
            ssl=ssl,
            model=model,
            version=version,
        )

    @property
    def address(self) -> str:
        """``host:port`` as tritonclient wants it (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        scheme = self.protocol + ("s" if self.ssl else "")
        tail = "".join(f"/{p}" for p in (self.model, self.version) if p)
        return f"{scheme}://{self.address}{tail}"
