"""Triton's Prometheus metrics, read with prometheus_client's own text parser.

``model_metrics(server.metrics_url)`` gives, per model, the counters a performance study needs:
successful requests, inferences (rows), executions (batches the backend ran: fewer than requests
when dynamic batching merged them), and the cumulative queue / compute / request durations (µs).
"""

from __future__ import annotations

import urllib.request

from hepinfer.errors import ConfigError

# Triton metric -> our name (all counters, cumulative since the server started)
COUNTERS = {
    "nv_inference_request_success": "requests",
    "nv_inference_request_failure": "failures",
    "nv_inference_count": "inferences",
    "nv_inference_exec_count": "executions",
    "nv_inference_request_duration_us": "request_us",
    "nv_inference_queue_duration_us": "queue_us",
    "nv_inference_compute_infer_duration_us": "compute_infer_us",
}


def read_metrics(url: str, timeout_s: float = 5.0) -> list:
    """Every sample of the endpoint, as prometheus_client ``Sample`` tuples (name, labels, value, ...)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError as err:
        raise ConfigError("reading a server's metrics needs prometheus-client: pip install 'hepinfer[serve]'") from err

    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - the server's own URL
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def model_metrics(url: str, timeout_s: float = 5.0) -> dict[str, dict[str, float]]:
    """{model: {"requests", "failures", "inferences", "executions", "request_us", "queue_us",
    "compute_infer_us"}} summed over versions."""
    out: dict[str, dict[str, float]] = {}
    for sample in read_metrics(url, timeout_s):
        key = COUNTERS.get(sample.name) or COUNTERS.get(sample.name.removesuffix("_total"))
        model = sample.labels.get("model")
        if key and model:
            row = out.setdefault(model, dict.fromkeys(COUNTERS.values(), 0.0))
            row[key] += sample.value
    return out


def difference(after: dict, before: dict) -> dict[str, dict[str, float]]:
    """Counters accumulated between two ``model_metrics`` readings."""
    return {m: {k: v - before.get(m, {}).get(k, 0.0) for k, v in row.items()} for m, row in after.items()}
