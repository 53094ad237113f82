"""``hepinfer bench shm``: does Triton's system shared memory pay for a server on the same host?

For each model, the same batch is sent to the embedded server two ways, one request at a time:

* ``grpc``: hepinfer's remote Scorer (tensors serialised into the gRPC message);
* ``system shm``: the inputs are copied into a POSIX shared-memory region registered with the
  server, the outputs are written by the server into a second region, and the gRPC request only
  names the regions (tritonclient.utils.shared_memory).  Registering a region is a restricted
  endpoint of the embedded server, so this path needs the launcher's admin token.

Both transports must give the same outputs (checked before either is timed).  The answer decides
whether hepinfer offers shared memory in its runtime; the docs' performance page reports it.
"""

from __future__ import annotations

import os
import uuid

import numpy as np

from hepinfer.figures import bar_chart
from hepinfer.operations.bench.study import Point, Study

COLUMNS = ("model", "transport", "batch", "request_mb", "rows_per_s", "p50_ms", "p99_ms", "calls")


class SharedMemoryCaller:
    """Infer one fixed batch shape through two system shared-memory regions (inputs, outputs)."""

    def __init__(self, url: str, spec, rows: int, headers: dict):
        import tritonclient.grpc as grpcclient
        import tritonclient.utils.shared_memory as shm

        self.grpc, self.shm = grpcclient, shm
        self.spec, self.rows, self.headers = spec, rows, headers
        self.client = grpcclient.InferenceServerClient(url=url.split("://", 1)[1])
        self.in_sizes = [rows * t.row_bytes for t in spec.inputs]
        self.out_sizes = [rows * t.row_bytes for t in spec.outputs]
        tag = f"hepinfer-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.regions = []
        for kind, size in (("in", sum(self.in_sizes)), ("out", sum(self.out_sizes))):
            name = f"{tag}-{kind}"
            handle = shm.create_shared_memory_region(name, "/" + name, size)
            self.client.register_system_shared_memory(name, "/" + name, size, headers=headers)
            self.regions.append((name, handle))

    def __call__(self, inputs) -> dict[str, np.ndarray]:
        (in_name, in_handle), (out_name, out_handle) = self.regions
        arrays = [np.ascontiguousarray(inputs[t.name]) for t in self.spec.inputs]
        self.shm.set_shared_memory_region(in_handle, arrays)
        infer_inputs, offset = [], 0
        for t, arr, size in zip(self.spec.inputs, arrays, self.in_sizes):
            inp = self.grpc.InferInput(t.name, list(arr.shape), t.wire_dtype)
            inp.set_shared_memory(in_name, size, offset)
            infer_inputs.append(inp)
            offset += size
        outputs, offset = [], 0
        for t, size in zip(self.spec.outputs, self.out_sizes):
            out = self.grpc.InferRequestedOutput(t.name)
            out.set_shared_memory(out_name, size, offset)
            outputs.append(out)
            offset += size
        self.client.infer(self.spec.name, infer_inputs, outputs=outputs)
        result, offset = {}, 0
        for t, size in zip(self.spec.outputs, self.out_sizes):
            result[t.name] = self.shm.get_contents_as_numpy(
                out_handle, t.numpy_dtype, (self.rows, *t.shape), offset=offset
            ).copy()
            offset += size
        return result

    def close(self) -> None:
        for name, handle in self.regions:
            try:
                self.client.unregister_system_shared_memory(name, headers=self.headers)
            finally:
                self.shm.destroy_shared_memory_region(handle)
        self.regions = []
        self.client.close()


def points(p):
    models = [m.name for m in p.models]
    for m in p.models:
        for transport in ("grpc", "system shm"):
            row = {"model": m.name, "transport": transport, "batch": m.max_batch_size}
            yield Point(row, dict(models=models, instances=1), m)


def measure(run, point):
    m, b = point.model, point.row["batch"]
    x = run.inputs(m, b, seed=3)
    grpc = run.scorer(m, max_request_bytes=64 * 2**20)
    shm = run.keep(("shm", m.name), lambda: _checked(run.server, grpc, x))
    call = grpc if point.row["transport"] == "grpc" else shm
    return {"request_mb": sum(a.nbytes for a in x.values()) / 2**20, **run.loop(call, x, 1)}


def _checked(server, grpc, x) -> SharedMemoryCaller:
    """A SharedMemoryCaller for ``x``'s batch whose outputs are gRPC's (else closed, AssertionError)."""
    shm = SharedMemoryCaller(server.url, grpc.spec, len(next(iter(x.values()))), server.admin_headers("grpc"))
    try:
        if not all(np.allclose(grpc(x)[k], v, rtol=1e-6, atol=1e-7) for k, v in shm(x).items()):
            raise AssertionError(f"{shm.spec.name}: shared-memory outputs differ from gRPC outputs")
    except BaseException:
        shm.close()
        raise
    return shm


def gains(rows: list[dict]) -> dict[str, float]:
    """shm / grpc rows/s per model."""
    by = {(r["model"], r["transport"]): r["rows_per_s"] for r in rows}
    return {m: by[(m, "system shm")] / by[(m, "grpc")] for m, t in by if t == "grpc" and (m, "system shm") in by}


STUDY = Study(
    name="shm",
    help="gRPC tensors vs Triton system shared memory (same host)",
    columns=COLUMNS,
    params=dict(models=("resnet50", "particlenet", "bdt"), duration_s=3.0),
    quick=dict(models=("bdt",), duration_s=1.0),
    points=points,
    measure=measure,
    output="shm",
    title="gRPC tensors against system shared memory (same host, one request at a time)",
    plot=lambda rows, path, p: bar_chart(rows, path, lambda r: f"{r['model']} b{r['batch']}: {r['transport']}"),
    summary=lambda rows, p: [
        "system shared memory / gRPC rows/s: " + ", ".join(f"{m} {g:.2f}" for m, g in gains(rows).items())
    ],
)
