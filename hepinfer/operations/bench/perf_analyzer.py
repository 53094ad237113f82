"""``hepinfer bench perf-analyzer``: Triton's own load generator as an independent measurement.

PyPI's ``perf-analyzer`` package is a placeholder; the working binary ships inside the wheel of
``tritonclient[grpc,http]==2.51.0`` (the release of the embedded server).  hepinfer downloads that
wheel once with pip (``--no-deps``), extracts only ``perf_analyzer`` into
``$HEPINFER_HOME/tools/perf-analyzer/`` and gives it the two libraries it links against:
``libb64.so.0d`` and ``libcudart.so.12`` (never called on a CPU-only run) are the renamed copies in
the server environment's ``nvidia_pytriton.libs``, linked under their sonames in a ``lib/`` folder
next to the binary.

The study runs perf_analyzer against the embedded server (its own random inputs, gRPC, the same
instance count as ``hepinfer bench models``) and then hepinfer's closed loop at the same batch size
and concurrency, and prints both inferences/s side by side: when they agree, the harness measures
the server and not itself.

perf_analyzer repeats its measurement window until two figures in a row agree; on a busy machine
they may never do.  ``requests`` > 0 (the ``--quick`` study) measures one fixed count of requests
instead, which always reports; a point whose windows do not settle is measured that way too.  The
``measurement`` column says which: ``stable`` (within ``stability_pct``), ``fixed count`` or
``unstable`` (did not settle: the figures of one fixed count, read with care).
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from hepinfer import paths
from hepinfer.errors import HepinferError
from hepinfer.figures import bar_chart
from hepinfer.logs import get_logger
from hepinfer.operations.bench.study import Point, Study, cores

log = get_logger(__name__)

TRITONCLIENT_VERSION = "2.51.0"
COLUMNS = ("model", "tool", "batch", "concurrency", "rows_per_s", "p50_ms", "p99_ms", "measurement", "stability_pct")
# perf_analyzer repeats its window until throughput and p99 vary by less than this (default 10 %):
# on a 2-core machine shared with the server, 10 % is rarely reached for ParticleNet.
STABILITY_PERCENT = 25
# the requests of the one measurement of a point that did not settle
FALLBACK_REQUESTS = 200
_LIBS = {"libb64.so.0d": "libb64-", "libcudart.so.12": "libcudart-"}


def tool_dir() -> Path:
    return paths.home() / "tools" / "perf-analyzer"


def ensure_perf_analyzer() -> Path:
    """The perf_analyzer binary (fetched and prepared on first use)."""
    from hepinfer.serving.environment import ensure_server_env

    root = tool_dir()
    binary = root / "bin" / "perf_analyzer"
    libdir = root / "lib"
    if not binary.exists():
        log.info(f"fetching perf_analyzer from tritonclient=={TRITONCLIENT_VERSION} into {root}")
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                tmp,
                f"tritonclient[grpc,http]=={TRITONCLIENT_VERSION}",
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            wheels = list(Path(tmp).glob("tritonclient-*.whl"))
            if done.returncode or not wheels:
                raise HepinferError(
                    f"could not download tritonclient=={TRITONCLIENT_VERSION}: {done.stderr.strip()[-500:]}"
                )
            with zipfile.ZipFile(wheels[0]) as wheel:
                member = next((n for n in wheel.namelist() if n.endswith("/bin/perf_analyzer")), None)
                if member is None:
                    raise HepinferError(f"{wheels[0].name} holds no perf_analyzer binary")
                binary.parent.mkdir(parents=True, exist_ok=True)
                part = binary.with_suffix(".part")
                part.write_bytes(wheel.read(member))
                part.chmod(0o755)
                part.replace(binary)
    libdir.mkdir(parents=True, exist_ok=True)
    bundled = ensure_server_env().site_packages / "nvidia_pytriton.libs"
    for soname, prefix in _LIBS.items():
        link = libdir / soname
        if not link.exists():
            found = sorted(bundled.glob(prefix + "*"))
            if not found:
                raise HepinferError(f"perf_analyzer needs {soname}: no {prefix}* in {bundled}")
            if link.is_symlink():
                link.unlink()
            link.symlink_to(found[0])
    return binary


def perf_analyzer(
    binary: Path,
    grpc_address: str,
    model: str,
    batch: int,
    concurrency: int,
    measurement_ms: int = 2000,
    requests: int = 0,
) -> dict:
    """One perf_analyzer measurement: rows/s (inferences/s), p50 / p99 latency in ms, and how it was
    measured.  With ``requests`` > 0: one count of that many requests (``fixed count``).  Else
    windows of ``measurement_ms`` until they agree within STABILITY_PERCENT, then twice that
    (``stable``, ``stability_pct``); a point that settles at neither is measured on
    FALLBACK_REQUESTS requests (``unstable``) rather than failing."""
    env = dict(
        os.environ,
        LD_LIBRARY_PATH=os.pathsep.join(
            [str(binary.parent.parent / "lib")]
            + [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
        ),
    )
    output = ""
    tries = [("stable", STABILITY_PERCENT), ("stable", 2 * STABILITY_PERCENT)] if requests <= 0 else []
    for measurement, stability in tries + [("fixed count" if requests > 0 else "unstable", None)]:
        if stability is None:
            window = ["--request-count", str(requests if requests > 0 else FALLBACK_REQUESTS)]
        else:
            window = ["--measurement-interval", str(measurement_ms), "--max-trials", "8"]
            window += ["--stability-percentage", str(stability)]
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.csv"
            cmd = [
                str(binary),
                "-m",
                model,
                "-u",
                grpc_address,
                "-i",
                "grpc",
                "-b",
                str(batch),
                "--concurrency-range",
                f"{concurrency}:{concurrency}",
                *window,
                "--percentile",
                "99",
                "-f",
                str(report),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
            output = (done.stdout + done.stderr).strip()
            if done.returncode == 0 and report.exists():
                row = next(csv.DictReader(io.StringIO(report.read_text())))
                if measurement == "unstable":
                    log.warning(f"perf_analyzer: {model} batch {batch} concurrency {concurrency} did not settle")
                return {
                    "rows_per_s": float(row["Inferences/Second"]),
                    "p50_ms": float(row["p50 latency"]) / 1e3,
                    "p99_ms": float(row["p99 latency"]) / 1e3,
                    "measurement": measurement,
                    "stability_pct": stability,
                }
            if "stable measurement" not in output:
                break
    raise HepinferError(f"perf_analyzer failed on {model} (batch {batch}, concurrency {concurrency}): {output[-800:]}")


def prepare(p):
    p.binary = ensure_perf_analyzer()


def points(p):
    server = dict(models=[m.name for m in p.models], instances=cores())
    for m in p.models:
        for b in [b for b in p.batches if b <= m.max_batch_size]:
            for c in p.concurrency:
                for tool in ("perf_analyzer", "hepinfer"):
                    yield Point({"model": m.name, "tool": tool, "batch": b, "concurrency": c}, server, m)


def measure(run, point):
    m, b, c = point.model, point.row["batch"], point.row["concurrency"]
    if point.row["tool"] == "perf_analyzer":
        address = run.server.url.split("://", 1)[1]
        return perf_analyzer(
            run.params.binary, address, m.name, b, c, int(run.params.duration_s * 1000), run.params.requests
        )
    return run.loop(run.scorer(m), run.inputs(m, b, seed=b), c)


def agreement(rows: list[dict]) -> dict[tuple, float]:
    """hepinfer / perf_analyzer rows/s per (model, batch, concurrency)."""
    pa = {(r["model"], r["batch"], r["concurrency"]): r["rows_per_s"] for r in rows if r["tool"] == "perf_analyzer"}
    return {
        k: r["rows_per_s"] / pa[k]
        for r in rows
        if r["tool"] == "hepinfer"
        for k in [(r["model"], r["batch"], r["concurrency"])]
        if pa.get(k)
    }


STUDY = Study(
    name="perf-analyzer",
    help="Triton's perf_analyzer vs hepinfer's harness, same server",
    columns=COLUMNS,
    # requests: perf_analyzer's fixed count of requests per point (0: windows of duration_s until stable)
    params=dict(
        models=("particlenet", "resnet50", "bdt"), batches=(1, 64), concurrency=(1, 2), duration_s=2.0, requests=0
    ),
    quick=dict(models=("bdt",), batches=(64,), concurrency=(1,), duration_s=1.0, requests=200),
    prepare=prepare,
    points=points,
    measure=measure,
    output="perf_analyzer",
    title="perf_analyzer against hepinfer's harness (same server)",
    plot=lambda rows, path, p: bar_chart(
        rows, path, lambda r: f"{r['model']} b{r['batch']} c{r['concurrency']}: {r['tool']}"
    ),
    summary=lambda rows, p: (
        [
            "hepinfer / perf_analyzer rows/s: "
            + ", ".join(f"{m} b{b} c{c} {v:.2f}" for (m, b, c), v in agreement(rows).items())
        ]
        + [
            f"perf_analyzer did not settle on {r['model']} b{r['batch']} c{r['concurrency']}: "
            f"its figures come from one count of {FALLBACK_REQUESTS} requests (unstable)"
            for r in rows
            if r.get("measurement") == "unstable"
        ]
    ),
)
