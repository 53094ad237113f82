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
each found by planning again (:mod:`.plan_suggest`): the fewest GPUs, the fewest CPU cores, the
smallest p99 limit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from hepinfer.errors import ConfigError
from hepinfer.operations.planning.schema import Measurement, Profile

THRESHOLD = 1.3  # slowdown above which two models are not placed on one device
MEMORY_MARGIN = 0.1  # share of each device's memory kept free
MIG = re.compile(r"([1-7])g\.(\d+)gb")


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


def mig_slice(name: str) -> tuple[float, int]:
    """``"3g.40gb"`` -> (compute fraction 3/7, memory 40e9 bytes); ConfigError otherwise."""
    m = MIG.fullmatch(name.strip().lower())
    if not m:
        raise ConfigError(f"--mig slice {name!r}: expected a MIG profile such as 1g.10gb, 3g.40gb or 7g.80gb")
    return int(m.group(1)) / 7, int(m.group(2)) * 10**9


def _fraction(slice_name: str) -> float:
    """Compute fraction of the GPU a profile was measured on: g/7 for a MIG slice, 1 otherwise."""
    return mig_slice(slice_name)[0] if MIG.fullmatch(slice_name or "") else 1.0


@dataclass(frozen=True)
class PlanHardware:
    gpus: int = 0
    gpu_memory_bytes: int = 0
    mig: tuple[str, ...] = ()  # slices of each GPU
    cpu_cores: int = 0
    cpu_memory_bytes: int = 0  # of each CPU server's host
    gpu_name: str = ""
    cpu_host_cores: int = 0  # cores of one CPU server (the profiled host's); 0: all cpu_cores in one

    def __post_init__(self) -> None:
        if self.gpus < 0 or self.cpu_cores < 0:
            raise ConfigError(f"--gpus ({self.gpus}) and --cpu-cores ({self.cpu_cores}) must be >= 0")
        if self.mig:
            slices = [mig_slice(s) for s in self.mig]
            if sum(f for f, _ in slices) > 1 + 1e-9:
                raise ConfigError(f"--mig {','.join(self.mig)}: more than the 7 compute slices of a GPU")
            if self.gpu_memory_bytes and sum(b for _, b in slices) > self.gpu_memory_bytes:
                raise ConfigError(
                    f"--mig {','.join(self.mig)}: more memory than the GPU's {self.gpu_memory_bytes / 1e9:.1f} GB"
                )

    def where(self, kind: str) -> str:
        if kind == "cpu":
            hosts = len([d for d in devices(self) if d.kind == "cpu"])
            cores = f"{self.cpu_cores} CPU core{'s' if self.cpu_cores != 1 else ''}"
            return cores + (f" ({hosts} servers)" if hosts > 1 else "")
        gpus = f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}"
        each = " each" if self.gpus != 1 else ""
        return f"{gpus} (MIG {' + '.join(self.mig)}{each})" if self.mig else gpus


@dataclass(frozen=True)
class Device:
    name: str  # gpu0, gpu0-mig1, cpu0
    kind: str  # cuda | cpu
    gpu: int | None = None
    slice: str = ""
    fraction: float = 1.0  # compute fraction of the GPU
    memory_bytes: int = 0
    capacity: float = 1.0  # utilisation units: 1 for a GPU or slice, cores for the CPU


def devices(hw: PlanHardware) -> list[Device]:
    out = []
    for g in range(hw.gpus):
        if not hw.mig:
            out.append(Device(f"gpu{g}", "cuda", g, "", 1.0, hw.gpu_memory_bytes, 1.0))
        for i, s in enumerate(hw.mig):
            fraction, memory = mig_slice(s)
            out.append(Device(f"gpu{g}-mig{i}", "cuda", g, s, fraction, memory, 1.0))
    left, host = hw.cpu_cores, hw.cpu_host_cores or hw.cpu_cores
    while left > 0:
        cores = min(left, host)
        out.append(
            Device(f"cpu{len([d for d in out if d.kind == 'cpu'])}", "cpu", None, "", 1.0, hw.cpu_memory_bytes, cores)
        )
        left -= cores
    return out


@dataclass(frozen=True)
class Option:
    """A measurement as it would run on one kind of device (scaled and ``modelled`` for a MIG slice)."""

    measurement: Measurement
    share: float  # utilisation units one replica takes
    basis: str  # where the figures come from


@dataclass
class Placement:
    """One model on one device, in one configuration (the only one of that model there)."""

    model: str
    device: Device
    option: Option
    slowdown: float = 1.0
    neighbours: tuple[str, ...] = ()

    @property
    def throughput(self) -> float:
        return self.option.measurement.throughput / self.slowdown

    @property
    def p99_ms(self) -> float:
        return self.option.measurement.p99_ms * self.slowdown

    @property
    def memory_bytes(self) -> int:
        return self.option.measurement.memory_bytes

    @property
    def share(self) -> float:
        return self.option.share

    @property
    def instances(self) -> int:
        return self.option.measurement.config.instances

    @property
    def modelled(self) -> bool:
        return self.option.measurement.modelled or self.slowdown != 1.0

    @property
    def basis(self) -> list[str]:
        out = [self.option.basis]
        if self.slowdown != 1.0:
            out.append(
                f"modelled: derated x{self.slowdown:.2f} (measured interference with {', '.join(self.neighbours)})"
            )
        return out


@dataclass(frozen=True)
class Shortfall:
    model: str
    demand: float
    possible: float
    kind: str  # the kind of device it was planned on: cuda | cpu
    where: str  # "1 GPU", "16 CPU cores"
    reason: str = ""

    def describe(self) -> str:
        pct = 100 * self.possible / self.demand
        why = f" ({self.reason})" if self.reason else ""
        asked = f"{self.model}: {self.demand:,.0f} rows/s asked"
        return f"{asked}, {self.possible:,.0f} possible on {self.where}: {pct:.0f} %{why}"


@dataclass
class Plan:
    demand: dict
    p99_ms: float | None
    hardware: PlanHardware
    devices: list[Device]
    placements: list[Placement]
    shortfalls: list[Shortfall] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    threshold: float = THRESHOLD
    memory_margin: float = MEMORY_MARGIN

    @property
    def feasible(self) -> bool:
        return not self.shortfalls

    def expected(self, model: str) -> float:
        return sum(p.throughput for p in self.placements if p.model == model)

    def on(self, device: Device) -> list[Placement]:
        return [p for p in self.placements if p.device == device]

    def used_devices(self) -> list[Device]:
        return [d for d in self.devices if self.on(d)]

    def usable_memory(self, device: Device) -> int:
        return int(device.memory_bytes * (1 - self.memory_margin))


# -- options -------------------------------------------------------------------------------------
def device_kind(measurement: Measurement) -> str:
    """The kind of device a measurement ran on: cpu or cuda."""
    return "cpu" if measurement.config.device == "cpu" else "cuda"


def options(profiles, model: str, device: Device, p99_ms: float | None, usable_memory: int) -> list[Option]:
    """Every configuration of ``model`` that meets the p99 limit and fits ``device`` alone."""
    found = []
    for profile in profiles:
        hw = profile.hardware
        for m in profile.for_model(model):
            if m.errors or m.throughput <= 0 or m.config.engine == "null" or device_kind(m) != device.kind:
                continue
            if device.kind == "cuda" and hw.kind != "cuda":
                continue
            if device.kind == "cpu":
                share = float(min(m.config.instances, hw.cores or m.config.instances))
                host = hw.name if hw.kind == "cpu" else f"the CPU of the {hw.name} host"
                basis = f"{'modelled' if m.modelled else 'measured'} on {host}"
            else:
                share = 1.0 if m.gpu_utilisation is None else min(1.0, max(m.gpu_utilisation, 0.0))
                measured_on = hw.slice or "whole GPU"
                scale = device.fraction / _fraction(hw.slice)
                if (hw.slice or "") != device.slice and abs(scale - 1) > 1e-9:
                    m = replace(
                        m,
                        throughput=m.throughput * scale,
                        p50_ms=m.p50_ms / scale,
                        p99_ms=m.p99_ms / scale,
                        compute_us=m.compute_us / scale,
                        modelled=True,
                    )
                    target = device.slice or "whole GPU"
                    basis = f"modelled: {measured_on} of {hw.name} scaled to {target} (x{scale:.2f} throughput)"
                else:
                    basis = f"{'modelled' if m.modelled else 'measured'} on {hw.name} ({measured_on})"
            if p99_ms is not None and m.p99_ms > p99_ms:
                continue
            if share > device.capacity + 1e-9 or m.memory_bytes > usable_memory:
                continue
            found.append(Option(m, share, basis))
    return found


def choose(candidates: list[Option], demand: float, device: Device, usable_memory: int) -> Option | None:
    """The option to serve ``demand`` with on ``device``, measured before modelled: of those that
    meet it alone, the one that takes the least of the device; when none does, the fastest."""
    measured = [o for o in candidates if not o.measurement.modelled]
    pool = measured or candidates
    if not pool:
        return None

    def need(o: Option) -> tuple:
        m = o.measurement
        one = round(max(o.share / device.capacity, m.memory_bytes / max(usable_memory, 1)), 9)
        return (0, one, -m.throughput, m.p99_ms) if m.throughput >= demand else (1, -m.throughput, one, m.p99_ms)

    return min(pool, key=need)


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
    from hepinfer.operations.planning.plan_pack import pack

    hw = hardware or hardware_from_profiles(profiles)
    plan = Plan(dict(demand), p99_ms, hw, devices(hw), [], threshold=threshold, memory_margin=memory_margin)
    pack(plan, profiles)
    if suggest and not plan.feasible:
        from hepinfer.operations.planning.plan_suggest import suggestions

        plan.suggestions = suggestions(plan, profiles)
    return plan
