"""Free loopback ports for servers hepinfer starts (ports linger a few seconds after a stop, so a
fixed port is never assumed free)."""

from __future__ import annotations

import socket


def free_ports(host: str, n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_is_free(host: str, port: int) -> bool:
    """True when a server could listen on ``port`` now.  Like Triton's own listeners this binds with
    SO_REUSEADDR, so connections of a stopped server lingering in TIME_WAIT (up to 60 s, the
    kernel's) do not count; a process still bound to the port does."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
