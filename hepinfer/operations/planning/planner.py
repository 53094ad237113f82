"""``hepinfer plan``: serving configurations and their placement on devices, from saved profiles
(:mod:`.schema`) and a demand in rows/s per model.

**Devices.**  ``gpus`` whole GPUs (``cuda``), each split into MIG slices when ``mig`` names them
(``3g.40gb``: 3/7 of the GPU's compute, 40 GB), and ``cpu_cores`` CPU cores as servers of the
profiled host's size (``cpu_host_cores``; 32 cores profiled on 16 are two CPU servers).  Each device
is served by its own server, and a share of its memory (``memory_margin``) is kept free.  A model goes
to the GPUs when the profiles hold a GPU measurement of it that meets the p99 limit and fits a GPU
device, else to the CPU.

**Configurations.**  The candidates of a model on a device are its measurements without errors
whose p99 meets the limit and that fit the device.  What one takes of a device: its measured GPU
utilisation (1 when not measured), or on the CPU the cores of its instances (``min(instances, cores
of the host measured on)``), and its memory (on the CPU the whole server's resident memory: summed
over models served together, it counts the server's own share more than once).  Among the
candidates that meet the model's remaining demand alone, the one that takes the least of the
device; when none does, the fastest.  A model has one configuration per device (its instance count
is part of it: the profile measured how instances scale); more throughput means more devices.
Measured figures come before modelled ones.

**Placement.**  First-fit decreasing: models in order of what their configuration takes of a
device, largest first; each goes onto the devices already in use if a configuration fits the room
left there, else onto the next unused device (of unlike MIG slices, the smallest on which it meets
its remaining demand): the fewest devices are used.

**Interference.**  Two models whose measured slowdown together (:class:`.schema.Interference`, on
the same kind of device) exceeds ``threshold`` for either of them are never placed on one device.
Below it they may share one, each derated by its slowdown (the largest against any neighbour):
throughput divided by it, p99 multiplied by it (still within the limit).  A pair never measured
together is assumed not to interfere, and the plan says so.  A model that derating leaves short is
placed on more devices.

**Modelled figures.**  A measurement taken on a whole GPU and planned on a MIG slice (or on another
slice) is scaled by the ratio of compute fractions: throughput times it, latencies divided by it,
memory and utilisation as measured; it is ``modelled``, as are figures derated for interference.
Every table and figure labels them.

**A demand that cannot be met** is reported per model (asked, possible, %), with what would meet it,
each found by planning again (:mod:`.suggestions`): the fewest GPUs, the fewest CPU cores, the
smallest p99 limit.
"""

from __future__ import annotations

import math

from hepinfer.errors import ConfigError
from hepinfer.operations.planning.packing import pack
from hepinfer.operations.planning.plan_data import (
    MEMORY_MARGIN,
    MIG,
    THRESHOLD,
    Plan,
    PlanHardware,
    device_kind,
    devices,
)
from hepinfer.operations.planning.schema import Profile
from hepinfer.operations.planning.suggestions import suggestions


def parse_demand(demand) -> dict[str, float]:
    """``"particlenet=20000,bdt=50000"`` or a mapping -> {model: rows/s}; ConfigError naming the entry."""
    if isinstance(demand, str):
        pairs = []
        for item in (p.strip() for p in demand.split(",")):
            name, eq, value = item.partition("=")
            if not item or not eq or not name.strip():
                raise ConfigError(f"--demand entry {item!r}: expected MODEL=ROWS_PER_S, e.g. particlenet=20000")
            pairs.append((name.strip(), value.strip()))
    else:
        pairs = list(dict(demand).items())
    out = {}
    for name, value in pairs:
        try:
            rate = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"--demand {name}={value}: not a number of rows/s") from None
        if not math.isfinite(rate) or rate < 0:
            raise ConfigError(f"--demand {name}={value}: rows/s must be a finite number >= 0")
        out[name] = rate
    if not any(out.values()):
        raise ConfigError("--demand: no model with rows/s > 0")
    return out


# -- the plan ------------------------------------------------------------------------------------
def hardware_from_profiles(
    profiles, gpus=None, gpu_memory_bytes=None, mig=(), cpu_cores=None, cpu_memory_bytes=None
) -> PlanHardware:
    """The plan's hardware: what is given, the rest from the profiles: one GPU of the profiled kind
    with the profiled GPU's memory (profiled on MIG slices only: one GPU split into one such slice,
    its whole memory unknown), the cores and memory of the host the CPU measurements were taken on."""
    gpu_profiles = [p for p in profiles if p.hardware.kind == "cuda"]
    names = sorted({p.hardware.name.split(" MIG")[0] for p in gpu_profiles})
    if len(names) > 1:
        raise ConfigError(f"--profile: measured on different GPUs ({', '.join(names)}); plan one kind of GPU at a time")
    cpu_hosts = [p.hardware for p in profiles if any(device_kind(m) == "cpu" for m in p.measurements)]
    host_cores = max((h.cores for h in cpu_hosts), default=0)
    whole = [p.hardware for p in gpu_profiles if not MIG.fullmatch(p.hardware.slice or "")]
    if gpu_memory_bytes is None:
        gpu_memory_bytes = max((h.device_memory_bytes for h in whole), default=0)
    mig = tuple(s.strip().lower() for s in mig or ())
    if not mig and gpu_profiles and not whole:
        mig = (gpu_profiles[0].hardware.slice,)
    return PlanHardware(
        gpus=(1 if gpu_profiles else 0) if gpus is None else gpus,
        gpu_memory_bytes=gpu_memory_bytes,
        mig=mig,
        cpu_cores=host_cores if cpu_cores is None else cpu_cores,
        cpu_host_cores=host_cores,
        cpu_memory_bytes=cpu_memory_bytes or max((h.memory_bytes for h in cpu_hosts), default=0),
        gpu_name=names[0] if names else "",
    )


def make_plan(
    profiles,
    demand,
    p99_ms: float | None = None,
    hardware: PlanHardware | None = None,
    threshold: float = THRESHOLD,
    memory_margin: float = MEMORY_MARGIN,
    suggest: bool = True,
) -> Plan:
    """Choose configurations for ``demand`` ({model: rows/s} or ``"m=rows,..."``) and place them."""
    profiles = [p if isinstance(p, Profile) else Profile.load(p) for p in profiles]
    demand = {m: r for m, r in parse_demand(demand).items() if r > 0}
    if not profiles:
        raise ConfigError("--profile: at least one profile is needed")
    known = {m for p in profiles for m in p.models()}
    missing = sorted(set(demand) - known)
    if missing:
        raise ConfigError(
            f"--demand names {', '.join(missing)}: not in any profile (profiled: {', '.join(sorted(known))})"
        )
    if p99_ms is not None and p99_ms <= 0:
        raise ConfigError(f"--latency-p99-ms must be > 0, got {p99_ms}")
    if threshold < 1:
        raise ConfigError(f"interference threshold must be >= 1 (a slowdown), got {threshold}")
    if not 0 <= memory_margin < 1:
        raise ConfigError(f"memory margin must be in [0, 1), got {memory_margin}")
    hw = hardware or hardware_from_profiles(profiles)
    plan = Plan(dict(demand), p99_ms, hw, devices(hw), [], threshold=threshold, memory_margin=memory_margin)
    pack(plan, profiles)
    if suggest and not plan.feasible:
        plan.suggestions = suggestions(plan, profiles, _replanner(plan, profiles))
    return plan


def _replanner(plan: Plan, profiles):
    """Plans ``plan``'s demand again with some of its settings changed (``hardware=``, ``p99_ms=``),
    without suggestions: what :mod:`.suggestions` tries."""

    def again(**changes) -> Plan:
        settings = {"p99_ms": plan.p99_ms, "hardware": plan.hardware, **changes}
        return make_plan(
            profiles, plan.demand, threshold=plan.threshold, memory_margin=plan.memory_margin, suggest=False, **settings
        )

    return again
