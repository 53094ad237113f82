"""A server already running elsewhere as a profiling target: its models as it serves them (their
configuration read from its model config), under a client load that the search varies (request
rows, concurrency); memory and GPU utilisation from its own metrics when it publishes GPU metrics
(``nv_gpu_memory_used_bytes``, ``nv_gpu_utilization``), else not measured (0 and None)."""

from __future__ import annotations

from dataclasses import replace

from hepinfer.config import InferenceConfig
from hepinfer.errors import ConfigError
from hepinfer.operations.planning.schema import Hardware, ServingConfig
from hepinfer.operations.planning.search import server_side
from hepinfer.operations.planning.targets import Target


class RemoteTarget(Target):
    """A server already running at ``url``: its models as it serves them; only the client's load
    (request rows, concurrency) varies."""

    kind = "remote"

    def __init__(self, url: str, duration_s: float = 5.0, metrics_url: str | None = None, admin_token: str = ""):
        from hepinfer.serving.server import ADMIN_HEADER
        from hepinfer.urls import TritonUrl

        parsed = TritonUrl.parse(url)
        key = f"triton-grpc-protocol-{ADMIN_HEADER}" if parsed.protocol == "grpc" else ADMIN_HEADER
        super().__init__(duration_s, headers={key: admin_token} if admin_token else None)
        self.url = str(url)
        host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
        self.metrics_url = metrics_url or f"http://{host}:8002/metrics"
        self.hardware = Hardware(kind="cpu", name=f"remote server {url}", cores=0, memory_bytes=0, host=parsed.host)
        self._configs: dict[str, dict] = {}
        self._utilisation: float | None = None

    def _server_config(self, model: str) -> dict:
        if model not in self._configs:
            from hepinfer.runtime.triton import TritonRuntime

            scorer = self.scorer(model)
            config = InferenceConfig(mode="remote", url=self.url, headers=self.headers)
            with TritonRuntime(scorer.spec, config=config) as rt:
                self._configs[model] = rt.model_info()[1]
        return self._configs[model]

    def start_config(self, model: str, request_rows: int, concurrency: int) -> ServingConfig:
        """``model`` as the server serves it (its model config), under the given load."""
        from hepinfer.runtime.discovery import engine_from_config

        cfg = self._server_config(model)
        served = engine_from_config(model, cfg)
        groups = cfg.get("instance_group") or [{}]
        batching = cfg.get("dynamic_batching")
        if served.device.startswith("cuda"):
            self.hardware = replace(self.hardware, kind="cuda")
        return ServingConfig(
            model=model,
            engine=served.engine,
            device=served.device,
            precision=served.precision,
            compiled=served.compiled,
            instances=sum(int(g.get("count", 1) or 1) for g in groups),
            max_batch_size=int(cfg.get("max_batch_size", 0) or 0),
            dynamic_batching=batching is not None,
            max_queue_delay_us=int((batching or {}).get("max_queue_delay_microseconds", 0) or 0),
            request_rows=request_rows,
            concurrency=concurrency,
        )

    def _gauges(self) -> dict[str, float]:
        from hepinfer.serving.triton_metrics import read_metrics

        out: dict[str, list[float]] = {}
        try:
            for s in read_metrics(self.metrics_url):
                if s.name in ("nv_gpu_memory_used_bytes", "nv_gpu_utilization"):
                    out.setdefault(s.name, []).append(s.value)
        except (OSError, ValueError):
            return {}
        return {
            "memory": sum(out.get("nv_gpu_memory_used_bytes", [])),
            "utilisation": (sum(u) / len(u)) if (u := out.get("nv_gpu_utilization")) else None,
        }

    def memory(self) -> int | None:
        gauges = self._gauges()  # one read for both figures: utilisation() follows memory() in the sampler
        self._utilisation = gauges.get("utilisation")
        value = gauges.get("memory")
        return int(value) if value else None

    def utilisation(self) -> float | None:
        return self._utilisation

    def _serve(self, configs: list[ServingConfig]) -> None:
        for c in configs:
            served = self.start_config(c.model, c.request_rows, c.concurrency)
            if server_side(served) != server_side(c):
                raise ConfigError(
                    f"model {c.model!r} on {self.url}: a remote server's configuration cannot be changed from here "
                    f"(asked {c.key()}, it serves {served.key()}); only request rows and concurrency vary"
                )
