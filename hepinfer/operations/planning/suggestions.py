"""What would meet a demand that a plan cannot: each found by planning again with more of one thing
(``again``: the planner's :func:`.planner.make_plan` with some settings changed and no suggestions)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from hepinfer.operations.planning.packing import interference_table
from hepinfer.operations.planning.plan_data import MIG, Plan, device_kind, mig_slice

Replan = Callable[..., Plan]  # plans the demand again with some settings changed (hardware=, p99_ms=)

MAX_EXTRA_GPUS = 64
MAX_CPU_CORES = 4096
MAX_P99_TRIES = 60


def _met(plan: Plan, kind: str) -> bool:
    """No model planned on this kind of device is short."""
    return not any(s.kind == kind for s in plan.shortfalls)


def _possible(plan: Plan, models) -> str:
    return ", ".join(f"{m}: {plan.expected(m):,.0f} rows/s" for m in sorted(models))


def fewest_gpus(plan: Plan, again: Replan, whole: bool = False) -> str | None:
    """The fewest GPUs (split as the plan's, or ``whole``) that meet the demand of the models short on GPUs."""
    short = {s.model for s in plan.shortfalls if s.kind == "cuda"}
    if not short or (not plan.hardware.gpu_memory_bytes and (whole or not plan.hardware.mig)):
        return None
    first = plan.hardware.gpus if whole else plan.hardware.gpus + 1
    for n in range(max(first, 1), plan.hardware.gpus + MAX_EXTRA_GPUS + 1):
        hardware = replace(plan.hardware, gpus=n, mig=() if whole else plan.hardware.mig)
        replanned = again(hardware=hardware)
        if _met(replanned, "cuda"):
            return (
                f"{replanned.hardware.where('cuda')}{' without MIG' if whole else ''} ({_possible(replanned, short)})"
            )
    return None


def fewest_cores(plan: Plan, again: Replan) -> str | None:
    short = {s.model for s in plan.shortfalls if s.kind == "cpu"}
    if not short or not plan.hardware.cpu_memory_bytes:
        return None

    def with_cores(n: int) -> Plan:
        return again(hardware=replace(plan.hardware, cpu_cores=n))

    low, high = plan.hardware.cpu_cores, max(plan.hardware.cpu_cores, 1) * 2
    while not _met(with_cores(high), "cpu"):  # the smallest power-of-two multiple that meets it ...
        if high >= MAX_CPU_CORES:
            return None
        low, high = high, min(high * 2, MAX_CPU_CORES)
    while high - low > 1:  # ... then the fewest cores between
        mid = (low + high) // 2
        low, high = (low, mid) if _met(with_cores(mid), "cpu") else (mid, high)
    replanned = with_cores(high)
    return f"{replanned.hardware.where('cpu')} ({_possible(replanned, short)})"


def relaxed_p99(plan: Plan, profiles, again: Replan) -> str | None:
    """The smallest p99 limit (among the latencies in the profiles) that meets the whole demand."""
    if plan.p99_ms is None:
        return None
    slowdowns = {1.0} | {s for rec in interference_table(profiles).values() for s in rec.values()}
    scales = {1.0}
    for p in profiles:
        measured = mig_slice(p.hardware.slice)[0] if MIG.fullmatch(p.hardware.slice or "") else 1.0
        scales |= {measured / d.fraction for d in plan.devices if d.kind == "cuda"}
    limits = sorted(
        {
            math.ceil(m.p99_ms * s * k)
            for p in profiles
            for m in p.measurements
            for s in (scales if device_kind(m) == "cuda" else {1.0})
            for k in slowdowns
            if m.p99_ms * s * k > plan.p99_ms
        }
    )
    if len(limits) > MAX_P99_TRIES:
        step = len(limits) / MAX_P99_TRIES
        limits = sorted({limits[int(i * step)] for i in range(MAX_P99_TRIES)} | {limits[-1]})
    for limit in limits:
        if again(p99_ms=float(limit)).feasible:
            return f"relax p99 to {limit} ms"
    return None


def precision_hint(plan: Plan, profiles) -> list[str]:
    """Short models on the GPUs without any fp16 / bf16 measurement: profiling one may meet the demand."""
    out = []
    for s in plan.shortfalls:
        ms = [m for p in profiles for m in p.for_model(s.model) if device_kind(m) == "cuda"]
        if s.kind == "cuda" and plan.hardware.gpus and ms and all(m.config.precision == "fp32" for m in ms):
            out.append(f"{s.model}: only fp32 was profiled on the GPU; profile fp16 / bf16 and plan again")
    return out


def suggestions(plan: Plan, profiles, again: Replan) -> list[str]:
    """What would meet ``plan``'s demand: the fewest GPUs (and whole GPUs for MIG slices), the fewest
    CPU cores, the smallest p99 limit, each planned ``again``; and where fp16 / bf16 was never profiled."""
    found = [
        fewest_gpus(plan, again),
        fewest_gpus(plan, again, whole=True) if plan.hardware.mig else None,
        fewest_cores(plan, again),
        relaxed_p99(plan, profiles, again),
    ]
    return [s for s in found if s] + precision_hint(plan, profiles)
