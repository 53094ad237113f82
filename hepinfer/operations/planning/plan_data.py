"""The plan's data model, shared by the planner (:mod:`.planner`), the packing (:mod:`.packing`), the
suggestions (:mod:`.suggestions`) and the report (:mod:`.plan_report`): the hardware planned for, its
devices, a configuration as it would run on one (:class:`Option`), a model placed on a device
(:class:`Placement`), a demand not met (:class:`Shortfall`) and the :class:`Plan` that holds them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hepinfer.errors import ConfigError
from hepinfer.operations.planning.schema import Measurement

THRESHOLD = 1.3  # slowdown above which two models are not placed on one device
MEMORY_MARGIN = 0.1  # share of each device's memory kept free
MIG = re.compile(r"([1-7])g\.(\d+)gb")


def mig_slice(name: str) -> tuple[float, int]:
    """``"3g.40gb"`` -> (compute fraction 3/7, memory 40e9 bytes); ConfigError otherwise."""
    m = MIG.fullmatch(name.strip().lower())
    if not m:
        raise ConfigError(f"--mig slice {name!r}: expected a MIG profile such as 1g.10gb, 3g.40gb or 7g.80gb")
    return int(m.group(1)) / 7, int(m.group(2)) * 10**9


def device_kind(measurement: Measurement) -> str:
    """The kind of device a measurement ran on: cpu or cuda."""
    return "cpu" if measurement.config.device == "cpu" else "cuda"


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
