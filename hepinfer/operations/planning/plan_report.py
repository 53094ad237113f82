"""A :class:`.plan_data.Plan` written out: its model repositories (one per device, each served by its own
server), ``plan.md`` (the tables ``hepinfer plan`` prints), ``plan.json`` and ``plan.png``.

Each device gets a repository folder named after it (``gpu0``, ``gpu0-mig1``, ``cpu0``) holding the
models placed there, each with the instance count and batching of its chosen configuration.
Embedded flavour: ``hepinfer serve --repository OUT/gpu0 ...`` (the command is in the plan); a MIG
slice is served by a server that sees only that slice (``CUDA_VISIBLE_DEVICES=<its MIG UUID>``),
where it is ``cuda:0``.  Production flavour: NVIDIA's container, one per device, seeing that device
only.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from hepinfer.errors import ConfigError
from hepinfer.operations.planning.plan_data import Device, Placement, Plan

FLAVOURS = ("embedded", "production")


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n < 10e9 else f"{n / 1e9:.1f} GB"


def configuration(p: Placement) -> str:
    c = p.option.measurement.config
    batching = f"queue {c.max_queue_delay_us} us" if c.dynamic_batching else "no dynamic batching"
    compiled = "+compiled" if c.compiled else ""
    return (
        f"{c.engine}/{c.precision}{compiled}, {p.instances} instance{'s' if p.instances != 1 else ''}, "
        f"batch {c.max_batch_size or 'default'}, {batching}"
    )


def usage(plan: Plan, device: Device) -> dict:
    on = plan.on(device)
    share, memory = sum(p.share for p in on), sum(p.memory_bytes for p in on)
    return {
        "models": [p.model for p in on],
        "share": share,
        "memory_bytes": memory,
        "headroom_share": device.capacity - share,
        "headroom_memory_bytes": plan.usable_memory(device) - memory,
    }


def _utilisation(device: Device, share: float) -> str:
    return f"{share:.1f} / {device.capacity:g} cores" if device.kind == "cpu" else f"{100 * share:.0f} %"


def describe_device(device: Device) -> str:
    if device.kind == "cpu":
        return f"{device.name} ({device.capacity:g} cores)"
    return (
        f"{device.name} ({device.slice}, {device.fraction * 7:.0f}/7 of GPU {device.gpu})"
        if device.slice
        else device.name
    )


def markdown(plan: Plan, repositories: list[dict] | None = None) -> str:
    hw = plan.hardware
    wanted = ", ".join(f"{m} {r:,.0f} rows/s" for m, r in plan.demand.items())
    limit = f"p99 <= {plan.p99_ms:g} ms" if plan.p99_ms is not None else "no p99 limit"
    parts = []
    if hw.gpus:
        memory = f" of {_gb(hw.gpu_memory_bytes)}" if hw.gpu_memory_bytes else ""
        parts.append(f"{hw.where('cuda')}: {hw.gpu_name or 'GPU'}{memory}")
    if hw.cpu_cores:
        parts.append(f"{hw.cpu_cores} CPU cores ({_gb(hw.cpu_memory_bytes)})")
    lines = [
        "# Serving plan",
        "",
        f"Demand: {wanted}; {limit}.  ",
        f"Hardware: {', '.join(parts) or 'none'}; {100 * plan.memory_margin:.0f} % of each device's memory kept free."
        "  ",
        f"**{'Demand met' if plan.feasible else 'Demand NOT met'}** on {len(plan.used_devices())} device(s).  ",
        "Figures marked * are modelled (derived from the measurements, not measured as such): see basis.",
        "",
        "| model | device | configuration | rows/s | p99 ms | memory | basis |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for p in plan.placements:
        star = "*" if p.modelled else ""
        lines.append(
            f"| {p.model} | {p.device.name} | {configuration(p)} | {p.throughput:,.0f}{star} | {p.p99_ms:.0f}{star} "
            f"| {_gb(p.memory_bytes)} | {'; '.join(p.basis)} |"
        )
    lines += ["", "| model | demand rows/s | expected rows/s | of demand |", "|---|---:|---:|---:|"]
    for m, rate in plan.demand.items():
        got = plan.expected(m)
        star = "*" if any(p.modelled for p in plan.placements if p.model == m) else ""
        lines.append(f"| {m} | {rate:,.0f} | {got:,.0f}{star} | {100 * got / rate:.0f} % |")
    lines += ["", "| device | models | utilisation | memory | headroom |", "|---|---|---:|---:|---:|"]
    for d in plan.devices:
        u = usage(plan, d)
        lines.append(
            f"| {describe_device(d)} | {', '.join(u['models']) or '-'} | {_utilisation(d, u['share'])} "
            f"| {_gb(u['memory_bytes'])} / {_gb(plan.usable_memory(d))} "
            f"| {_utilisation(d, u['headroom_share'])}, {_gb(u['headroom_memory_bytes'])} |"
        )
    if plan.shortfalls:
        lines += ["", "## Demand not met", ""] + [f"- {s.describe()}" for s in plan.shortfalls]
        lines += ["", "What would meet it:", ""] + [f"- {s}" for s in plan.suggestions or ["nothing found"]]
    if repositories:
        lines += ["", "## Serving", ""] + [f"- {r['device']}: `{r['command']}`" for r in repositories]
    if plan.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in plan.notes]
    return "\n".join(lines) + "\n"


def to_dict(plan: Plan, repositories: list[dict] | None = None, flavour: str = "embedded") -> dict:
    return {
        "feasible": plan.feasible,
        "demand": plan.demand,
        "p99_ms": plan.p99_ms,
        "hardware": dataclasses.asdict(plan.hardware),
        "threshold": plan.threshold,
        "memory_margin": plan.memory_margin,
        "flavour": flavour,
        "devices": [{**dataclasses.asdict(d), **usage(plan, d)} for d in plan.devices],
        "placements": [
            {
                "model": p.model,
                "device": p.device.name,
                "config": dataclasses.asdict(p.option.measurement.config),
                "instances": p.instances,
                "throughput": p.throughput,
                "p99_ms": p.p99_ms,
                "memory_bytes": p.memory_bytes,
                "share": p.share,
                "slowdown": p.slowdown,
                "modelled": p.modelled,
                "basis": p.basis,
            }
            for p in plan.placements
        ],
        "models": [{"model": m, "demand": r, "expected": plan.expected(m)} for m, r in plan.demand.items()],
        "shortfalls": [{**dataclasses.asdict(s), "text": s.describe()} for s in plan.shortfalls],
        "suggestions": plan.suggestions,
        "notes": plan.notes,
        "repositories": repositories or [],
    }


def _repository_options(p: Placement, flavour: str):
    from hepinfer.serving.repository import RepositoryOptions

    c, d = p.option.measurement.config, p.device
    common = {
        "flavour": flavour,
        "models": (p.model,),
        "instances": p.instances,
        "dynamic_batching": c.dynamic_batching,
        "max_queue_delay_us": c.max_queue_delay_us,
        "max_batch_size": {p.model: c.max_batch_size} if c.max_batch_size else {},
    }
    if flavour == "production":
        return RepositoryOptions(**common, gpu=d.kind == "cuda", tensorrt=d.kind == "cuda" and c.precision != "fp32")
    device = "cpu" if d.kind == "cpu" else ("cuda:0" if d.slice else f"cuda:{d.gpu}")
    torch = c.engine == "torch"
    return RepositoryOptions(
        **common,
        engine=c.engine,
        device=device if torch else "cpu",
        precision=c.precision if torch else "fp32",
        compiled=c.compiled and torch,
    )


def serve_command(plan: Plan, device: Device, path: Path, flavour: str) -> str:
    on = plan.on(device)
    if flavour == "production":
        server = f"tritonserver --model-repository={path}  (in NVIDIA's Triton container"
        if device.kind == "cpu":
            return f"{server}, no GPU)"
        which = f"{device.gpu}:{device.name.rsplit('mig', 1)[1]}" if device.slice else f"{device.gpu}"
        return f"{server}: docker run --gpus '\"device={which}\"')"
    cmd = f"hepinfer serve --repository {path} --models {','.join(p.model for p in on)}"
    torch = [p for p in on if p.option.measurement.config.engine == "torch"]
    if torch:
        device_arg = "cpu" if device.kind == "cpu" else ("cuda:0" if device.slice else f"cuda:{device.gpu}")
        cmd += f" --engine torch --device {device_arg}"
    if device.slice:
        cmd = f"CUDA_VISIBLE_DEVICES=<MIG UUID of {device.name}, from nvidia-smi -L> {cmd}"
    return cmd


def _clear(out: Path, names: list[str]) -> None:
    """Remove the repositories of an earlier plan in ``out``; refuse folders another tool wrote."""
    earlier = out / "plan.json"
    old = []
    if earlier.is_file():
        try:
            old = [r["path"] for r in json.loads(earlier.read_text()).get("repositories", [])]
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"--out {out}: {earlier} is not a plan ({err})") from err
    for name in old:
        folder = out / Path(name).name
        if folder.is_dir() and out.resolve() in folder.resolve().parents:
            shutil.rmtree(folder)
    clash = [n for n in names if (out / n).exists()]
    if clash:
        raise ConfigError(
            f"--out {out}: {', '.join(clash)} exist(s) and hepinfer plan did not write it: choose another --out"
        )


def write_plan(plan: Plan, out, flavour: str = "embedded", repositories: bool = True) -> dict:
    """Write the repositories (unless ``repositories=False``), plan.md, plan.json and plan.png into
    ``out``; return {"markdown": text, "json": path, "md": path, "png": path, "repositories": [...]}."""
    from hepinfer.figures import plan_figure
    from hepinfer.serving.repository import write_repository

    if flavour not in FLAVOURS:
        raise ConfigError(f"--flavour must be one of {FLAVOURS}, got {flavour!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    used = plan.used_devices() if repositories else []
    _clear(out, [d.name for d in used])
    if flavour == "production" and used:
        plan.notes.append(
            "production flavour: the profiles measured hepinfer's embedded engines; NVIDIA's container runs "
            "onnxruntime / TensorRT / FIL instead, so its throughput differs: profile it there before relying on it"
        )
    for d in used:
        folder = out / d.name
        for p in plan.on(d):
            write_repository(folder, _repository_options(p, flavour))
        written.append(
            {
                "device": d.name,
                "path": str(folder),
                "models": [p.model for p in plan.on(d)],
                "command": serve_command(plan, d, folder, flavour),
            }
        )
    text = markdown(plan, written)
    (out / "plan.md").write_text(text)
    (out / "plan.json").write_text(json.dumps(to_dict(plan, written, flavour), indent=1) + "\n")
    png = plan_figure(plan, out / "plan.png")
    return {"markdown": text, "md": out / "plan.md", "json": out / "plan.json", "png": png, "repositories": written}
