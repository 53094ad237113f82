"""The machine a profile is measured on, and what a measurement reads from it besides the load.

* :func:`detect_hardware`: the CPU (model name from ``/proc/cpuinfo``, cores, host memory from psutil) or the GPU
  of ``cuda:N`` (name and memory through NVML when ``pynvml`` / ``nvidia-ml-py`` is importable, else
  ``nvidia-smi``, else torch), with its MIG slice when ``nvidia-smi -L`` lists one for it.
* :class:`GpuProbe`: memory used by the server's processes on the GPU and the GPU's utilisation,
  through NVML or ``nvidia-smi``; None where neither answers (a MIG slice reports no utilisation).
  When the process list does not name the server's pids (a container with its own pid namespace),
  the memory is the device's used memory above what it was before the server started.

``cuda:N`` is CUDA's numbering: with ``CUDA_VISIBLE_DEVICES`` set, entry N of it names the device
(an index or a ``GPU-`` / ``MIG-`` UUID); without it, N is taken as nvidia-smi's index, which
matches CUDA's when ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or when there is one GPU.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

from hepinfer.logs import get_logger
from hepinfer.operations.bench.process_memory import psutil_module
from hepinfer.operations.planning.schema import Hardware

log = get_logger(__name__)
MIB = 2**20


def _run(cmd: list[str], timeout_s: float = 10.0) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _nvml():
    """The pynvml module, initialised, or None."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver: NVML is simply not there
        return None
    return pynvml


def device_id(device: str) -> str:
    """What NVML and nvidia-smi call ``cuda:N``: an index or a UUID (see the module doc)."""
    index = int(device.split(":")[1])
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible and index < len(visible):
        return visible[index]
    return str(index)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def host_memory_bytes() -> int:
    return int(psutil_module().virtual_memory().total)


def mig_slices() -> dict[str, tuple[str, str]]:
    """``nvidia-smi -L`` as {MIG UUID or GPU index: (MIG profile, parent GPU name)} for every MIG
    device (a GPU index maps to its first MIG device, the one CUDA shows without CUDA_VISIBLE_DEVICES)."""
    text = _run(["nvidia-smi", "-L"]) if shutil.which("nvidia-smi") else None
    out: dict[str, tuple[str, str]] = {}
    gpu_index, gpu_name = "", ""
    for line in (text or "").splitlines():
        gpu = re.match(r"\s*GPU (\d+): (.+?) \(UUID", line)
        mig = re.match(r"\s*MIG (\S+)\s+Device\s+\d+: \(UUID: (MIG-[^)]+)\)", line)
        if gpu:
            gpu_index, gpu_name = gpu.group(1), gpu.group(2)
        elif mig:
            out[mig.group(2)] = (mig.group(1), gpu_name)
            out.setdefault(gpu_index, (mig.group(1), gpu_name))
    return out


def _slice_bytes(profile: str) -> int:
    """The memory a MIG profile's name states (``3g.40gb`` -> 40 GB)."""
    m = re.search(r"\.(\d+)gb", profile)
    return int(m.group(1)) * 10**9 if m else 0


def _gpu_name_memory(ident: str) -> tuple[str, int]:
    nvml = _nvml()
    if nvml is not None:
        try:
            handle = _handle(nvml, ident)
            name = nvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            return name, int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
        except Exception as err:  # noqa: BLE001 - NVML errors: try the next source
            log.debug("NVML could not describe GPU %s: %s", ident, err)
    if shutil.which("nvidia-smi") and not ident.startswith("MIG-"):
        text = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits", "-i", ident])
        if text and text.strip():
            name, total = (x.strip() for x in text.strip().splitlines()[0].rsplit(",", 1))
            try:
                return name, int(float(total) * MIB)
            except ValueError:
                return name, 0
    return "", 0


def _torch_name_memory(device: str) -> tuple[str, int]:
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(torch.device(device))
            return str(props.name), int(props.total_memory)
    except (ImportError, RuntimeError, AssertionError) as err:
        log.debug("torch could not describe %s: %s", device, err)
    return "", 0


def detect_hardware(device: str = "cpu") -> Hardware:
    """The :class:`Hardware` of ``device`` ("cpu" or "cuda:N") on this machine."""
    common = dict(cores=os.cpu_count() or 0, memory_bytes=host_memory_bytes(), host=socket.gethostname())
    if device == "cpu":
        return Hardware(kind="cpu", name=cpu_name(), **common)
    ident = device_id(device)
    name, memory = _gpu_name_memory(ident)
    slice_, parent = mig_slices().get(ident, ("", ""))
    if not name and not slice_:
        name, memory = _torch_name_memory(device)
    name = name or parent or f"unknown GPU ({device})"
    if slice_:
        memory = memory or _slice_bytes(slice_)
        name = f"{parent or name} MIG {slice_}"
    return Hardware(kind="cuda", name=name, device_memory_bytes=memory, slice=slice_, **common)


def _handle(nvml, ident: str):
    if ident.isdigit():
        return nvml.nvmlDeviceGetHandleByIndex(int(ident))
    try:
        return nvml.nvmlDeviceGetHandleByUUID(ident)
    except (TypeError, AttributeError):  # older bindings take bytes
        return nvml.nvmlDeviceGetHandleByUUID(ident.encode())


class GpuProbe:
    """Memory and utilisation of one GPU (``cuda:N``); every reading is None where nothing answers."""

    def __init__(self, device: str):
        self.device = device
        self.ident = device_id(device)
        self.nvml = _nvml()
        self.handle = None
        if self.nvml is not None:
            try:
                self.handle = _handle(self.nvml, self.ident)
            except Exception as err:  # noqa: BLE001 - fall back to nvidia-smi
                log.debug("NVML has no handle for %s: %s", self.ident, err)
        self.smi = shutil.which("nvidia-smi") is not None and not self.ident.startswith("MIG-")
        self.baseline = self.device_used()

    @property
    def available(self) -> bool:
        return self.handle is not None or self.smi

    def device_used(self) -> int | None:
        """Bytes used on the device by every process."""
        if self.handle is not None:
            try:
                return int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used)
            except Exception:  # noqa: BLE001 - a reading that fails is no reading
                return None
        if self.smi:
            text = _run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", self.ident])
            try:
                return int(float(text.strip().splitlines()[0]) * MIB) if text else None
            except (ValueError, IndexError):
                return None
        return None

    def _processes(self) -> dict[int, int] | None:
        """{pid: bytes} of the processes computing on the device."""
        if self.handle is not None:
            try:
                procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
                return {int(p.pid): int(p.usedGpuMemory or 0) for p in procs}
            except Exception:  # noqa: BLE001
                return None
        if self.smi:
            text = _run(
                [
                    "nvidia-smi",
                    "--query-compute-apps=pid,used_memory",
                    "--format=csv,noheader,nounits",
                    "-i",
                    self.ident,
                ]
            )
            out = {}
            for line in (text or "").splitlines():
                try:
                    pid, used = line.split(",")
                    out[int(pid)] = int(float(used) * MIB)
                except ValueError:
                    continue
            return out
        return None

    def reset_baseline(self) -> None:
        """Take the device's used memory now as what the next server's memory is counted above."""
        self.baseline = self.device_used()

    def memory_used(self, pids: set[int]) -> int | None:
        """Bytes the processes ``pids`` hold on the device; the device's used memory above the
        baseline when the device's process list names none of them."""
        procs = self._processes()
        if procs:
            mine = [used for pid, used in procs.items() if pid in pids]
            if mine:
                return sum(mine)
        used = self.device_used()
        if used is None:
            return None
        return max(used - (self.baseline or 0), 0)

    def utilisation(self) -> float | None:
        """The GPU's busy fraction (0..1) over the driver's last sample period."""
        if self.handle is not None:
            try:
                return float(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu) / 100.0
            except Exception:  # noqa: BLE001 - MIG slices report none
                return None
        if self.smi:
            text = _run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", self.ident]
            )
            try:
                return float(text.strip().splitlines()[0]) / 100.0 if text else None
            except (ValueError, IndexError):
                return None
        return None
