"""``hepinfer bench gpu``: the paper's throughput table as one command.  Per model:

* **one CPU core**: the model's own engine (onnxruntime / XGBoost) with one thread, in this process;
* **direct**: the torch engine (:class:`hepinfer.runtime.engines.TorchEngine`, the networks'
  exported program) on the device, in this process, in each precision (fp32 / fp16 / bf16 where the
  device supports it; with ``--compiled`` also ``torch.compile`` at the served precision), numpy in
  and out, against batch size;
* **served**: the embedded server with ``engine="torch"`` on the device (the BDT keeps XGBoost on
  CPU in the same server), against batch size and requests in flight (the harness's closed loop);
* **dynamic batching** on / off: many small requests (``small_batch`` rows, ``in_flight`` at once);
* **instances**: 1 / 2 / 4 instances of each model, dynamic batching on;
* memory per row of each engine, device and precision (:func:`hepinfer.serving.memory_budget.memory_use`:
  CUDA memory on a GPU, resident memory on the CPU).

The device is ``cuda:0`` when torch sees a CUDA device in this process, else ``cpu``: then the
title and the summary say that the study ran on CPU and that the GPU targets are not measured.
The summary prints each ratio next to its target (never a failure: a bench measures).
"""

from __future__ import annotations

from hepinfer.errors import ConfigError
from hepinfer.figures import throughput_and_ratios
from hepinfer.operations.bench.study import Option, Point, Study

PRECISION_CHOICES = ("fp32", "fp16", "bf16")
SERVED = ("served", "dynamic batching", "instances")  # the parts measured through the server
# (model, ratio) -> (target, what the paper measured)
TARGETS = {
    ("particlenet", "served / one CPU core"): (300.0, "paper ~50"),
    ("particlenet", "compiled / one CPU core"): (1000.0, ""),
    ("particlenet", "served / direct"): (0.8, ""),
    ("particlenet", "batching on / off"): (3.0, ""),
    ("resnet50", "served / one CPU core"): (100.0, ""),
}
BDT_REASON = (
    "tree models are cheap per row (microseconds on one core); the request overhead (serialisation, "
    "gRPC, the server's scheduling) dominates, so serving the BDT pays only where the analysis has no CPU to spare"
)
CPU_NOTE = "(CPU run: GPU targets not applicable)"
COLUMNS = (
    "model",
    "part",
    "engine",
    "device",
    "precision",
    "compiled",
    "instances",
    "batching",
    "batch",
    "concurrency",
    "rows_per_s",
    "vs_one_core",
    "p50_ms",
    "p99_ms",
    "calls",
    "mem_per_row_mb",
    "compile_s",
)


def yes_no(text: str) -> bool:
    """``--compiled yes|no`` (the flag alone means yes)."""
    value = {"yes": True, "true": True, "on": True, "1": True, "no": False, "false": False, "off": False, "0": False}
    try:
        return value[text.lower()]
    except KeyError:
        raise ValueError(text) from None


def is_network(spec) -> bool:
    """Whether the torch engine runs the model of ``spec`` (hepinfer's networks)."""
    from hepinfer.models.architectures.torch_export import NETWORKS

    return spec.name in NETWORKS and spec.engine == "onnxruntime" and spec.artefact_file is None


def prepare(p):
    """The device (``cuda:0`` when torch sees CUDA, else ``cpu``), the precisions it supports, the
    served precision (fp16 on a GPU, fp32 on the CPU) and the models, each once."""
    import torch

    from hepinfer.serving.repository import check_engine_choice

    p.models = tuple({m.name: m for m in p.models}.values())
    p.compiled = True if p.compiled is None else bool(p.compiled)
    p.device = p.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    p.on_gpu = p.device != "cpu"
    if p.on_gpu and not torch.cuda.is_available():
        raise ConfigError(f"device {p.device!r}: torch {torch.__version__} sees no CUDA device in this process")
    bf16 = not p.on_gpu or torch.cuda.is_bf16_supported()
    wanted = p.precisions or (("fp32", "fp16", "bf16") if p.on_gpu else ("fp32", "bf16"))
    p.served_precision = p.served_precision or ("fp16" if p.on_gpu else "fp32")
    p.precisions = tuple(x for x in dict.fromkeys((*wanted, p.served_precision)) if x != "bf16" or bf16)
    p.skipped = () if bf16 or "bf16" not in wanted else ("bf16 (not supported by this GPU)",)
    for x in (*p.precisions, p.served_precision):
        check_engine_choice("torch", p.device, x, p.compiled)
    if p.on_gpu:
        p.where = f"{p.device} ({torch.cuda.get_device_name(torch.device(p.device))})"
    else:
        p.where = "CPU: torch sees no CUDA device, the GPU targets are not measured"


def _row(model, part, engine, device, precision="fp32", compiled=False, instances="", batching="", batch=1, c=1):
    return {
        "model": model,
        "part": part,
        "engine": engine,
        "device": device,
        "precision": precision,
        "compiled": compiled,
        "instances": instances,
        "batching": batching,
        "batch": batch,
        "concurrency": c,
    }


def points(p):
    """Server-less points first (one CPU core, direct), then one server per configuration."""
    nets = {m.name for m in p.models if is_network(m)}
    served_engine = {m.name: "torch" if m.name in nets else m.engine for m in p.models}
    served_device = {m.name: p.device if m.name in nets else "cpu" for m in p.models}
    served_precision = {m.name: p.served_precision if m.name in nets else "fp32" for m in p.models}
    for m in p.models:
        for b in p.batches:
            yield Point(_row(m.name, "one CPU core", m.engine, "cpu", batch=b), model=m)
    for m in [m for m in p.models if m.name in nets]:
        variants = [(x, False) for x in p.precisions] + ([(p.served_precision, True)] if p.compiled else [])
        for precision, compiled in variants:
            for b in p.batches:
                yield Point(_row(m.name, "direct", "torch", p.device, precision, compiled, batch=b), model=m)

    def server(instances, batching):
        options = dict(
            models=[m.name for m in p.models],
            engine="torch",
            device=p.device,
            precision=p.served_precision,
            instances=instances,
            dynamic_batching=batching,
            max_queue_delay_us=p.max_queue_delay_us,
        )
        if p.memory_budget_gb:
            options["memory_budget"] = int(p.memory_budget_gb * 1e9)
        return options

    def served(m, part, instances, batching, b, c):
        n = m.name
        row = _row(n, part, served_engine[n], served_device[n], served_precision[n], False, instances, batching, b, c)
        return Point(row, server(instances, batching == "on"), m)

    big, many = max(p.batches), max(p.concurrency)
    for m in p.models:
        for b in p.batches:
            for c in p.concurrency:
                yield served(m, "served", 1, "on", b, c)
    for m in p.models:
        yield served(m, "dynamic batching", 1, "on", p.small_batch, p.in_flight)
    for m in p.models:
        yield served(m, "instances", 1, "on", big, many)
    for m in p.models:
        yield served(m, "dynamic batching", 1, "off", p.small_batch, p.in_flight)
    for k in [k for k in p.instances if k != 1]:
        for m in p.models:
            yield served(m, "instances", k, "on", big, many)


class _Direct:
    """A torch engine of this process, its device's cached memory freed when it is closed."""

    def __init__(self, spec, device: str, precision: str, compiled: bool):
        from hepinfer.models.architectures.torch_export import build_torch
        from hepinfer.runtime.engines import TorchEngine

        shapes = {n: spec.input(n).shape for n in spec.input_names}
        self.engine = TorchEngine(
            str(build_torch(spec)),  # derived from the ONNX artefact the first time
            spec.input_names,
            spec.output_names,
            threads=1,
            device=device,
            precision=precision,
            compiled=compiled,
            input_shapes=shapes,
        )

    def close(self) -> None:
        torch, on_gpu = self.engine.torch, self.engine.device.type == "cuda"
        self.engine = None
        if on_gpu:
            torch.cuda.empty_cache()


def _memory_mb(run, row, spec) -> float:
    """Memory per row (MB) of the row's engine, device and precision, from the memory budget
    (:mod:`hepinfer.serving.memory_budget`: measured once in the server environment, then read from the
    model's memory.json)."""
    from hepinfer.serving.memory_budget import memory_use
    from hepinfer.serving.repository import RepositoryOptions

    if row["engine"] not in ("torch", "xgboost"):
        return ""  # the networks' onnxruntime: the one-core reference, not an engine this study serves
    key = ("memory", row["model"], row["engine"], row["device"], row["precision"])

    def measured():
        options = RepositoryOptions(
            models=(row["model"],), engine="torch", device=row["device"], precision=row["precision"], threads=1
        )
        return memory_use(spec, options).per_row_bytes / 1e6

    return run.keep(key, measured, with_server=False)


def measure(run, point):
    r = point.row
    m, b, c = point.model, r["batch"], r["concurrency"]
    one_core = run.keep(("one CPU core",), dict, with_server=False)  # model -> best rows/s
    x = run.inputs(m, b, seed=b)
    extra = {}
    if r["part"] == "one CPU core":
        result = run.loop(run.scorer(m, mode="local", threads=1), x, 1)
        one_core[m.name] = max(one_core.get(m.name, 0.0), result["rows_per_s"])
    elif r["part"] == "direct":
        key = ("direct", m.name, r["device"], r["precision"], r["compiled"])
        direct = run.keep(key, lambda: _Direct(m, r["device"], r["precision"], r["compiled"])).engine
        result = run.loop(direct.run, x, 1)
        extra["compile_s"] = direct.compile_seconds if r["compiled"] else ""
    else:
        result = run.loop(run.scorer(m, timeout_s=600.0, max_request_bytes=64 * 2**20), x, c)
    core = one_core.get(m.name)
    return {
        **result,
        **extra,
        "vs_one_core": result["rows_per_s"] / core if core and r["part"] != "one CPU core" else "",
        "mem_per_row_mb": _memory_mb(run, r, m),
    }


# -- what the rows say ---------------------------------------------------------------------------
def _best(rows, model, parts, **match) -> float | None:
    found = [
        r["rows_per_s"]
        for r in rows
        if r["model"] == model and r["part"] in parts and all(r[k] == v for k, v in match.items())
    ]
    return max(found) if found else None


def ratios(rows: list[dict]) -> list[tuple[str, str, float]]:
    """``(model, ratio name, value)`` for every ratio the rows hold (see :data:`TARGETS`)."""
    out = []

    def add(model, name, num, den):
        if num is not None and den:
            out.append((model, name, num / den))

    for m in dict.fromkeys(r["model"] for r in rows):
        core, served = _best(rows, m, ("one CPU core",)), _best(rows, m, SERVED)
        if any(r["model"] == m and r["part"] == "direct" for r in rows):
            add(m, "served / one CPU core", served, core)
            add(m, "compiled / one CPU core", _best(rows, m, ("direct",), compiled=True), core)
            precision = next((r["precision"] for r in rows if r["model"] == m and r["part"] == "served"), None)
            direct = _best(rows, m, ("direct",), compiled=False, precision=precision)
            add(m, f"served / direct ({precision})", _best(rows, m, ("served",)), direct)
        else:
            add(m, "remote / local", served, core)
        on = _best(rows, m, ("dynamic batching",), batching="on")
        add(m, "batching on / off", on, _best(rows, m, ("dynamic batching",), batching="off"))
        one = _best(rows, m, ("instances",), instances=1)
        for k in sorted({r["instances"] for r in rows if r["model"] == m and r["part"] == "instances"} - {1}):
            add(m, f"{k} instances / 1", _best(rows, m, ("instances",), instances=k), one)
    return out


def target(model: str, name: str) -> tuple[float, str] | None:
    """The target of a ratio (and the paper's figure), or None."""
    return TARGETS.get((model, name.split(" (")[0]))


def summary(rows, p):
    on_gpu = any(r["device"].startswith("cuda") for r in rows)
    lines = [f"device: {p.where}" + ("" if on_gpu else "; every ratio below is a CPU figure")]
    cores = {m: _best(rows, m, ("one CPU core",)) for m in dict.fromkeys(r["model"] for r in rows)}
    lines.append("one CPU core (best rows/s): " + ", ".join(f"{m} {v:,.0f}" for m, v in cores.items() if v))
    for m, name, value in ratios(rows):
        goal, note = target(m, name) or (None, "")
        text = f"{m} {name}: {value:,.3g}"
        if goal is not None and on_gpu:
            text += f" (target >= {goal:g}{', ' + note if note else ''}: {'met' if value >= goal else 'MISSED'})"
        elif goal is not None:
            text += f" {CPU_NOTE}"
        if name == "remote / local":
            text += f" (why: {BDT_REASON})"
        lines.append(text)
    if p.compiled is False and any(is_network(m) for m in p.models):
        lines.append("compiled: not measured (--compiled: torch.compile takes minutes)")
    memory = {(r["model"], r["engine"], r["precision"]): r["mem_per_row_mb"] for r in rows}
    lines.append(
        "memory per row: " + ", ".join(f"{m} {e} {x} {v:.3g} MB" for (m, e, x), v in memory.items() if v != "")
    )
    lines += [f"not measured: {s}" for s in p.skipped]
    if not on_gpu and "fp16" not in p.precisions:
        lines.append("fp16 on CPU is emulated by torch (slow); --precisions fp32 fp16 bf16 measures it")
    return lines


def plot(rows, path, p):
    lines = [r for r in rows if r["part"] in ("one CPU core", "direct", "served")]

    def series(r):
        if r["part"] == "direct":
            return f"direct {r['precision']}{' compiled' if r['compiled'] else ''}"
        if r["part"] == "served":
            return f"served {r['precision']}, {r['concurrency']} in flight"
        return f"one CPU core ({r['engine']})"

    bars = [(f"{m} {name}", value, (target(m, name) or (None,))[0]) for m, name, value in ratios(rows)]
    title = f"on {p.where}"
    throughput_and_ratios(lines, path, series, lambda r: r["model"], bars, title=title)


STUDY = Study(
    name="gpu",
    help="one CPU core vs the torch engine direct and served on the GPU (CPU when there is none)",
    columns=COLUMNS,
    table=(*COLUMNS[:12], "p50_ms", "mem_per_row_mb"),
    headers={
        "rows_per_s": "rows/s",
        "vs_one_core": "x one core",
        "concurrency": "in flight",
        "p50_ms": "p50 ms",
        "mem_per_row_mb": "MB/row",
    },
    params=dict(
        models=("particlenet", "resnet50", "bdt"),
        batches=(16, 64, 256, 1024),
        concurrency=(1, 4),
        precisions=None,
        served_precision=None,
        compiled=False,
        device=None,
        instances=(1, 2, 4),
        small_batch=16,
        in_flight=32,
        max_queue_delay_us=2000,
        memory_budget_gb=None,
        duration_s=3.0,
    ),
    quick=dict(
        models=("particlenet", "bdt"),
        batches=(4, 16),
        concurrency=(1, 2),
        precisions=("fp32", "bf16"),
        instances=(1, 2),
        in_flight=4,
        duration_s=0.5,
    ),
    options={
        "models": Option("--models", "the models", nargs="+"),
        "batches": Option("--batches", "batch sizes", type=int, nargs="+"),
        "concurrency": Option("--concurrency", "requests in flight through the server", type=int, nargs="+"),
        "precisions": Option(
            "--precisions", "direct precisions (default: the device's)", nargs="+", choices=PRECISION_CHOICES
        ),
        "served_precision": Option(
            "--served-precision", "the server's precision (default: fp16 on a GPU, fp32)", choices=PRECISION_CHOICES
        ),
        "compiled": Option("--compiled", "also torch.compile (takes minutes; the flag alone: yes)", yes_no, "?"),
        "device": Option("--device", "cpu or cuda:N (default: cuda:0 when torch sees one)"),
        "instances": Option("--instances", "server instances compared", type=int, nargs="+"),
        "in_flight": Option("--in-flight", "small requests in flight (dynamic batching on / off)", type=int),
        "memory_budget_gb": Option("--memory-budget-gb", "size the server's batch limits to this (GB)", type=float),
        "duration_s": Option("--duration", "seconds per measurement", type=float),
    },
    prepare=prepare,
    points=points,
    measure=measure,
    output="gpu",
    title="One CPU core, the torch engine direct and served, on {where}",
    plot=plot,
    summary=summary,
)
