"""A serving fleet on one machine: replicas of the embedded Triton server behind HAProxy on one gRPC
URL, Prometheus scraping them, an autoscaler sizing the fleet from Prometheus' numbers, admission
control at the front::

    from hepinfer.operations.fleet import Fleet

    with Fleet(["bdt"], replicas=2, min_replicas=1, max_replicas=4) as fleet:
        scorer = hepinfer.Scorer("bdt", mode="remote", url=fleet.url)

``hepinfer fleet up`` runs one in the foreground, ``hepinfer fleet status`` shows it.  The modules:
:mod:`.control` (the Fleet), :mod:`.fleet_options`, :mod:`.replicas`, :mod:`.supervisor`, :mod:`.haproxy`,
:mod:`.admission`, :mod:`.prometheus`, :mod:`.autoscaler`, :mod:`.status`, :mod:`.processes`,
:mod:`.timeline` (the run's history as PNG / HTML), :mod:`.export` (values for
SuperSONIC's Helm chart 0.3.1), :mod:`.chart` (the chart's own files they are checked against).
HAProxy (>= 2.6) and Prometheus (>= 2.42) are external binaries (Debian: ``apt-get install haproxy
prometheus``).
"""

from hepinfer.operations.fleet.admission import AdmissionOptions
from hepinfer.operations.fleet.autoscaler import AutoscalerSettings, Decision
from hepinfer.operations.fleet.control import Fleet
from hepinfer.operations.fleet.fleet_options import FleetOptions
from hepinfer.operations.fleet.haproxy import Checks
from hepinfer.operations.fleet.status import format_status, read_status

__all__ = [
    "AdmissionOptions",
    "AutoscalerSettings",
    "Checks",
    "Decision",
    "Fleet",
    "FleetOptions",
    "format_status",
    "read_status",
]
