"""A service in the foreground until a signal: ``hepinfer serve`` (an embedded server) and ``hepinfer
fleet up`` (a fleet) run this one loop."""

from __future__ import annotations

import signal
import time
from typing import Protocol


class Service(Protocol):
    """What the loop runs: :class:`~hepinfer.serving.server.EmbeddedServer`, a fleet."""

    def start(self): ...

    def stop(self) -> None: ...

    def is_running(self) -> bool: ...


def run_until_signal(
    service: Service, on_ready=None, signals=(signal.SIGINT, signal.SIGTERM), poll_s: float = 0.2
) -> int | None:
    """Start ``service``, call ``on_ready(service)``, and run until one of ``signals`` arrives (its
    number is returned) or the service stops on its own (None); then stop it.  The handlers are
    installed before the start (a signal during start-up stops the service as soon as it is up) and
    the previous ones restored at the end."""
    received: list[int] = []
    old = {s: signal.signal(s, lambda signum, _frame: received.append(signum)) for s in signals}
    try:
        service.start()
        try:
            if on_ready is not None:
                on_ready(service)
            while not received and service.is_running():
                time.sleep(poll_s)
        finally:
            service.stop()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return received[0] if received else None
