"""The packing of :func:`.planner.make_plan`: models placed first-fit decreasing on memory and
utilisation, interference respected (see :mod:`hepinfer.operations.planning.planner` for the method)."""

from __future__ import annotations

from hepinfer.operations.planning.planner import (
    Device,
    Option,
    Placement,
    Plan,
    Shortfall,
    choose,
    device_kind,
    options,
)

ROUNDS = 20  # models that neighbours' slowdowns leave short are placed again, at most this often


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
