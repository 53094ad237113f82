"""``hepinfer serve``'s loop: the embedded server in the foreground until a signal."""

from __future__ import annotations

import signal
import time

from hepinfer.serving.server import EmbeddedServer, ServerOptions


def serve_until_signal(
    options: ServerOptions, on_ready=None, signals=(signal.SIGINT, signal.SIGTERM), poll_s: float = 0.2
) -> int | None:
    """Start the server, call ``on_ready(server)``, and serve until one of ``signals`` arrives (its
    number is returned) or tritonserver exits on its own (None); then stop it.  The handlers are
    installed before the start (a signal during start-up stops the server as soon as it is up) and
    the previous ones restored at the end.  ``hepinfer serve`` runs this."""
    received: list[int] = []
    old = {s: signal.signal(s, lambda signum, _frame: received.append(signum)) for s in signals}
    try:
        with EmbeddedServer(options) as server:
            if on_ready is not None:
                on_ready(server)
            while not received and server.is_running():
                time.sleep(poll_s)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return received[0] if received else None
