"""``hepinfer fleet up``'s loop: a fleet in the foreground until a signal."""

from __future__ import annotations

import signal
import time

from hepinfer.operations.fleet.control import Fleet
from hepinfer.operations.fleet.fleet_options import FleetOptions


def run_until_signal(
    options: FleetOptions, on_ready=None, signals=(signal.SIGINT, signal.SIGTERM), poll_s: float = 0.2
) -> int:
    """Start the fleet, call ``on_ready(fleet)``, serve until one of ``signals`` arrives (its number is
    returned), then stop it.  The handlers are installed before the start (a signal during start-up
    stops the fleet as soon as it is up) and the previous ones restored at the end."""
    received: list[int] = []
    old = {s: signal.signal(s, lambda signum, _frame: received.append(signum)) for s in signals}
    try:
        with Fleet(options=options) as fleet:
            if on_ready is not None:
                on_ready(fleet)
            while not received:
                time.sleep(poll_s)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return received[0]
