"""The packing of :func:`.planner.make_plan`: each model's configurations that fit a device
(:func:`options`) and the one chosen (:func:`choose`), models placed first-fit decreasing on memory and
utilisation, interference respected (see :mod:`hepinfer.operations.planning.planner` for the method)."""

from __future__ import annotations

from dataclasses import replace

from hepinfer.operations.planning.plan_data import (
    MIG,
    Device,
    Option,
    Placement,
    Plan,
    Shortfall,
    device_kind,
    mig_slice,
)

ROUNDS = 20  # models that neighbours' slowdowns leave short are placed again, at most this often


# -- configurations ------------------------------------------------------------------------------
def _fraction(slice_name: str) -> float:
    """Compute fraction of the GPU a profile was measured on: g/7 for a MIG slice, 1 otherwise."""
    return mig_slice(slice_name)[0] if MIG.fullmatch(slice_name or "") else 1.0


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


# -- interference --------------------------------------------------------------------------------
def interference_table(profiles) -> dict:
    """{(kind, frozenset({a, b})): {a: slowdown, b: slowdown}}: a measured pair beats a larger group."""
    best: dict = {}
    for profile in profiles:
        for rec in profile.interference:
            slow = rec.slowdown
            for i, a in enumerate(rec.models):
                for b in rec.models[i + 1 :]:
                    key = (profile.hardware.kind, frozenset((a, b)))
                    entry = (len(rec.models), {a: slow[a], b: slow[b]})
                    old = best.get(key)
                    if (
                        old is None
                        or entry[0] < old[0]
                        or (entry[0] == old[0] and max(entry[1].values()) > max(old[1].values()))
                    ):
                        best[key] = entry
    return {k: v[1] for k, v in best.items()}


def pack(plan: Plan, profiles) -> None:
    """Place each model of ``plan.demand`` on ``plan.devices`` (first-fit decreasing), filling
    ``plan.placements``, ``plan.shortfalls`` and ``plan.notes``."""
    table = interference_table(profiles)
    found: dict = {}  # (model, device kind, slice) -> options that fit such a device alone
    here: dict = {d.name: {} for d in plan.devices}  # device -> {model: Placement}
    why: dict = {m: {} for m in plan.demand}  # model -> reasons it is short (an ordered set)
    unmeasured: set = set()

    def candidates(model: str, device: Device) -> list[Option]:
        key = (model, device.kind, device.slice)
        if key not in found:
            found[key] = options(profiles, model, device, plan.p99_ms, plan.usable_memory(device))
        return found[key]

    def total(model: str) -> float:
        return sum(on[model].throughput for on in here.values() if model in on)

    def left(model: str) -> float:
        return plan.demand[model] - total(model)

    def slowdown(kind: str, a: str, b: str) -> float:
        pair = table.get((kind, frozenset((a, b))))
        if pair is None:
            unmeasured.add((*sorted((a, b)), kind))
            return 1.0
        return pair[a]

    def try_add(model: str, device: Device) -> bool:
        on = here[device.name]
        if model in on:
            return False
        names = [*on, model]
        slow = {x: max((slowdown(device.kind, x, y) for y in names if y != x), default=1.0) for x in names}
        worst = max(slow, key=slow.get)
        if slow[worst] > plan.threshold:
            why[model][
                f"not placed beside {worst if worst != model else ', '.join(on)}: slowdown x{slow[worst]:.2f}"
            ] = None
            return False
        limit = plan.p99_ms if plan.p99_ms is not None else float("inf")
        if any(p.option.measurement.p99_ms * slow[x] > limit for x, p in on.items()):
            why[model]["its neighbours' p99 would exceed the limit"] = None
            return False
        room = device.capacity - sum(p.share for p in on.values())
        memory = plan.usable_memory(device) - sum(p.memory_bytes for p in on.values())
        roomy = [
            o for o in candidates(model, device) if o.share <= room + 1e-9 and o.measurement.memory_bytes <= memory
        ]
        fits = [o for o in roomy if o.measurement.p99_ms * slow[model] <= limit]
        if roomy and not fits:
            why[model][f"derated x{slow[model]:.2f} beside {', '.join(on)} its p99 would exceed the limit"] = None
        opt = choose(fits, left(model) * slow[model], device, plan.usable_memory(device))
        if opt is None:
            return False
        on[model] = Placement(model, device, opt)
        for x in names:
            on[x].slowdown = slow[x]
            on[x].neighbours = tuple(y for y in names if y != x and slowdown(device.kind, x, y) != 1.0)
        return True

    def by_fit(model: str, free: list[Device]) -> list[Device]:
        """Unused devices of unlike sizes (MIG slices): the smallest on which the model meets its
        remaining demand, else the one giving it the most; alike devices keep their order."""

        def key(d: Device) -> tuple:
            o = choose(candidates(model, d), left(model), d, plan.usable_memory(d))
            if o is None:
                return (2, 0.0)
            t = o.measurement.throughput
            return (0, d.fraction * d.memory_bytes) if t >= left(model) else (1, -t)

        return sorted(free, key=key)

    kind_of: dict = {}  # model -> (kind of device, what its configuration takes of the first one)
    for model in plan.demand:
        for kind in ("cuda", "cpu"):
            first = next((d for d in plan.devices if d.kind == kind and candidates(model, d)), None)
            if first is not None:
                opt = choose(candidates(model, first), plan.demand[model], first, plan.usable_memory(first))
                size = max(opt.share / first.capacity, opt.measurement.memory_bytes / plan.usable_memory(first))
                kind_of[model] = (kind, size)
                break
        else:
            why[model][_no_option_reason(plan, profiles, model)] = None
    order = sorted(kind_of, key=lambda m: (-kind_of[m][1], -plan.demand[m], m))
    for _ in range(ROUNDS):
        short = [m for m in order if left(m) > plan.demand[m] * 1e-9]
        progress = False
        for model in short:
            kind = kind_of[model][0]
            while left(model) > plan.demand[model] * 1e-9:
                used = [d for d in plan.devices if d.kind == kind and here[d.name]]
                unused = by_fit(model, [d for d in plan.devices if d.kind == kind and not here[d.name]])
                if not any(try_add(model, d) for d in used + unused):
                    why[model][f"no room left on the {'GPUs' if kind == 'cuda' else 'CPU'}"] = None
                    break
                progress = True
        if not short or not progress:
            break
    plan.placements = [p for d in plan.devices for p in here[d.name].values()]
    for model, rate in plan.demand.items():
        if left(model) > rate * 1e-9:
            kind = kind_of[model][0] if model in kind_of else _measured_kind(profiles, model)
            reason = "; ".join(why[model])
            plan.shortfalls.append(Shortfall(model, rate, total(model), kind, plan.hardware.where(kind), reason))
    for a, b, kind in sorted(unmeasured):
        if any({a, b} <= set(on) for on in here.values()):
            plan.notes.append(
                f"{a} and {b} share a {kind} device but were never measured together: no slowdown assumed"
            )


def _measured_kind(profiles, model: str) -> str:
    kinds = {
        device_kind(m)
        for p in profiles
        for m in p.for_model(model)
        if p.hardware.kind == "cuda" or device_kind(m) == "cpu"
    }
    return "cuda" if "cuda" in kinds else "cpu"


def _no_option_reason(plan: Plan, profiles, model: str) -> str:
    ms = [
        m
        for p in profiles
        for m in p.for_model(model)
        if not m.errors and m.throughput > 0 and m.config.engine != "null"
    ]
    if not ms:
        return "every measurement of it failed or measured no throughput"
    kinds = {device_kind(m) for m in ms}
    have = {d.kind for d in plan.devices}
    if not kinds & have:
        return "measured on GPU only, and the plan has no GPU" if kinds == {"cuda"} else "no CPU cores in the plan"
    if plan.p99_ms is not None and all(m.p99_ms > plan.p99_ms for m in ms if device_kind(m) in have):
        best = min(m.p99_ms for m in ms if device_kind(m) in have)
        return f"no configuration meets p99 <= {plan.p99_ms:g} ms (best measured {best:.0f} ms)"
    return "no configuration fits a device's memory"
