"""``hepinfer bench shm``: does Triton's system shared memory pay for a server on the same host?

For each model, the same batch is sent to the embedded server two ways, one request at a time:

* ``grpc``: hepinfer's remote Scorer (tensors serialised into the gRPC message);
* ``system shm``: the inputs are copied into a POSIX shared-memory region registered with the
  server, the outputs are written by the server into a second region, and the gRPC request only
  names the regions (tritonclient.utils.shared_memory).  Registering a region is a restricted
  endpoint of the embedded server, so this path needs the launcher's admin token.

The answer decides whether hepinfer offers shared memory in its runtime; the docs' performance page
reports it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np

from ...logs import get_logger
from ...models import get_spec

log = get_logger(__name__)

COLUMNS = ["model", "transport", "batch", "request_mb", "rows_per_s", "p50_ms", "p99_ms", "calls"]


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


def run_shm(models=("resnet50", "particlenet", "bdt"), duration_s: float = 3.0, out_dir=None) -> list[dict]:
    from ...config import InferenceConfig
    from ...models.build import build_all
    from ...models.toy import toy_inputs
    from ...scorer import Scorer
    from ...serving.server import serve
    from .harness import bar_plot, closed_loop, write_rows

    models = [get_spec(m).name for m in models]
    build_all(models)
    rows = []
    with serve(models, instances=1) as server:
        for m in models:
            spec = get_spec(m)
            b = spec.max_batch_size
            x = toy_inputs(m, b, seed=3)
            mb = sum(a.nbytes for a in x.values()) / 2**20
            grpc = Scorer(m, config=InferenceConfig(mode="remote", url=server.url, max_request_bytes=64 * 2**20))
            shm = SharedMemoryCaller(server.url, spec, b, server.admin_headers("grpc"))
            try:
                same = all(np.allclose(grpc(x)[k], v, rtol=1e-6, atol=1e-7) for k, v in shm(x).items())
                if not same:
                    raise AssertionError(f"{m}: shared-memory outputs differ from gRPC outputs")
                for label, call in (("grpc", grpc), ("system shm", shm)):
                    r = closed_loop(call, x, 1, duration_s)
                    rows.append({"model": m, "transport": label, "batch": b, "request_mb": mb, **r})
                    log.info(
                        f"{m} batch {b} ({mb:.2f} MB) {label}: {r['rows_per_s']:,.0f} rows/s, p50 {r['p50_ms']:.2f} ms"
                    )
            finally:
                shm.close()
                grpc.close()
    if out_dir:
        write_rows(
            rows,
            out_dir,
            "shm",
            "gRPC tensors against system shared memory (same host, one request at a time)",
            COLUMNS,
        )
        bar_plot(rows, Path(out_dir) / "shm.png", lambda r: f"{r['model']} b{r['batch']}: {r['transport']}")
    return rows


def gains(rows: list[dict]) -> dict[str, float]:
    """shm / grpc rows/s per model."""
    by = {(r["model"], r["transport"]): r["rows_per_s"] for r in rows}
    return {m: by[(m, "system shm")] / by[(m, "grpc")] for m, t in by if t == "grpc" and (m, "system shm") in by}
