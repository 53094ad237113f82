"""What ``hepinfer profile`` records and ``hepinfer plan`` reads: profiles, saved as JSON.

A :class:`Profile` holds the hardware it was measured on, one :class:`Measurement` per serving
configuration tried (a :class:`ServingConfig` of one model under a client load), and the
interference of models served together (:class:`Interference`).  Figures that were not measured but
derived (a MIG slice scaled from a whole GPU) carry ``modelled=True`` and say so wherever they are
shown.  Units: rows/s, milliseconds, bytes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from hepinfer.errors import ConfigError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Hardware:
    """The device a profile was measured on."""

    kind: str  # "cpu" | "cuda"
    name: str  # CPU model or GPU name (with its MIG / MPS slice, if any)
    cores: int  # CPU cores of the machine
    memory_bytes: int  # host memory
    device_memory_bytes: int = 0  # GPU memory (0 on CPU)
    slice: str = ""  # MIG profile such as "3g.40gb", "mps", or "" for a whole device
    host: str = ""


@dataclass(frozen=True)
class ServingConfig:
    """One model's serving configuration and the client load it was measured under."""

    model: str
    engine: str = "default"  # the embedded server's engine option: "default" | "torch"
    device: str = "cpu"  # "cpu" | "cuda:N"
    precision: str = "fp32"
    compiled: bool = False
    instances: int = 1
    max_batch_size: int = 0  # 0: the model's own
    dynamic_batching: bool = True
    max_queue_delay_us: int = 100
    request_rows: int = 64  # rows per client request
    concurrency: int = 4  # requests in flight

    def key(self) -> str:
        """A short readable name: ``particlenet torch/fp16 i2 b256 d100 r64 c4``."""
        batching = f"d{self.max_queue_delay_us}" if self.dynamic_batching else "nodb"
        return (
            f"{self.model} {self.engine}/{self.precision}{'+compiled' if self.compiled else ''} i{self.instances} "
            f"b{self.max_batch_size} {batching} r{self.request_rows} c{self.concurrency}"
        )


@dataclass(frozen=True)
class Measurement:
    config: ServingConfig
    throughput: float  # rows/s
    p50_ms: float
    p99_ms: float
    memory_bytes: int  # GPU memory (NVML) on a GPU, resident memory of the server otherwise
    gpu_utilisation: float | None = None  # 0..1, None without a GPU
    queue_us: float = 0.0  # the server's queue time per request (its metrics)
    compute_us: float = 0.0  # the server's compute time per request (its metrics)
    errors: int = 0
    modelled: bool = False  # True: derived, not measured


@dataclass(frozen=True)
class Interference:
    """Models served together on one device against each alone: ``slowdown[m]`` = alone / together
    throughput of model m (1.0: no interference; 2.0: half the throughput)."""

    models: tuple[str, ...]
    alone: dict  # model -> rows/s
    together: dict  # model -> rows/s
    modelled: bool = False

    @property
    def slowdown(self) -> dict:
        return {m: (self.alone[m] / self.together[m]) if self.together.get(m) else float("inf") for m in self.models}


@dataclass
class Profile:
    hardware: Hardware
    measurements: list[Measurement] = field(default_factory=list)
    interference: list[Interference] = field(default_factory=list)
    created: str = ""  # ISO time
    hepinfer_version: str = ""
    notes: list[str] = field(default_factory=list)

    def for_model(self, model: str) -> list[Measurement]:
        return [m for m in self.measurements if m.config.model == model]

    def models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.config.model for m in self.measurements))

    # -- JSON -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["schema"] = SCHEMA_VERSION
        return data

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict, where: str = "profile") -> Profile:
        if data.get("schema") != SCHEMA_VERSION:
            raise ConfigError(f"{where}: profile schema {data.get('schema')!r}, this hepinfer reads {SCHEMA_VERSION}")
        try:
            measurements = [
                Measurement(**{**m, "config": ServingConfig(**m["config"])}) for m in data.get("measurements", [])
            ]
            interference = [Interference(**{**i, "models": tuple(i["models"])}) for i in data.get("interference", [])]
            return cls(
                hardware=Hardware(**data["hardware"]),
                measurements=measurements,
                interference=interference,
                created=data.get("created", ""),
                hepinfer_version=data.get("hepinfer_version", ""),
                notes=list(data.get("notes", [])),
            )
        except (KeyError, TypeError) as err:
            raise ConfigError(f"{where}: not a hepinfer profile ({type(err).__name__}: {err})") from err

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"profile {path}: cannot be read ({err})") from err
        return cls.from_dict(data, where=f"profile {path}")
