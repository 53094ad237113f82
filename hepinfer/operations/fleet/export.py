"""Values for SuperSONIC's Helm chart (the CMS / ATLAS inference-as-a-service deployment on
Kubernetes), release 0.3.1, from a fleet's settings: the same models, replicas, autoscaler metric,
threshold and bounds, admission guard and least-requests balancing, for a cluster instead of one
machine.

The values are checked against the chart's own files (:mod:`.chart`): merged over its
``values.yaml`` as Helm merges them and validated against its ``values.schema.json``; a key the
chart does not have is refused too (Helm would ignore it).  Nothing here runs a cluster; ``helm
install`` does::

    helm repo add supersonic https://fastmachinelearning.org/SuperSONIC
    helm install <release> supersonic/supersonic --version 0.3.1 --values values.yaml -n <namespace>

How hepinfer's settings map onto chart 0.3.1 (see :mod:`.autoscaler`).  The chart has one load
metric (``serverLoadMetric``, a PromQL query; its default is the queue time per execution over
15 s) and one integer threshold (``serverLoadThreshold``, default 100), read by both KEDA, which
scales on the metric's value (more replicas above the threshold: ``ceil(replicas x metric /
threshold)``), and Envoy's prometheus-based limiter, which refuses new sessions above the same
threshold.  The export writes hepinfer's metric as that query on the release's series, in the form
whose value scales the same way: ``queue_time`` as it is, ``in_flight`` per replica
(``R_needed / R``, what the fleet's guard compares).  The guard is written only at
``admission_ratio`` 1: the chart has no separate admission threshold (:func:`notes`).  The
cool-downs are the HPA's stabilization windows, ``poll_s`` and ``step`` their policies' period and
step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hepinfer.errors import ConfigError
from hepinfer.operations.fleet.autoscaler import AutoscalerSettings, in_flight_queries, queue_time_query
from hepinfer.operations.fleet.chart import STORAGE_TYPES, check, dotted, load_chart, yaml_module
from hepinfer.operations.fleet.prometheus import TRITON_JOB, duration

HELM_REPO = "https://fastmachinelearning.org/SuperSONIC"
# Triton 2.51.0 (what hepinfer's embedded server runs) is NVIDIA's container release 24.10; the full
# image, not the chart's default "-min" one, has the onnxruntime and FIL backends the production
# repository uses (hepinfer repo build OUT --flavour production)
IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"
KEDA_POLL_S = 30  # KEDA's polling interval: chart 0.3.1 has no value for it


def parse_key(text: str) -> tuple[str, ...]:
    """``a.b."c.d"`` -> ("a", "b", "c.d") (a segment holding a dot is quoted, as helm-docs writes it)."""
    parts, rest = [], text
    while rest:
        if rest.startswith('"'):
            end = rest.find('"', 1)
            if end < 1 or end + 1 < len(rest) and rest[end + 1] != ".":
                raise ConfigError(f"malformed values key {text!r}")
            parts.append(rest[1:end])
            rest = rest[end + 2 :]
        else:
            part, _, rest = rest.partition(".")
            if not part or '"' in part:
                raise ConfigError(f"malformed values key {text!r}")
            parts.append(part)
    if not parts:
        raise ConfigError("empty values key")
    return tuple(parts)


def _integer(name: str, value: float) -> int:
    if not math.isclose(value, round(value)):
        raise ConfigError(f"{name} must be a whole number for SuperSONIC (the chart's schema: integer), got {value:g}")
    return int(round(value))


def _set(values: dict, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        values = values.setdefault(part, {})
        if not isinstance(values, dict):
            raise ConfigError(f"SuperSONIC values: {dotted(path)} sets inside a value that is not a mapping")
    values[path[-1]] = value


def storage_values(storage: str) -> dict:
    """``pvc:CLAIM``, ``nfs:SERVER:/PATH``, ``cvmfs-pvc`` or ``cvmfs`` -> triton.modelRepository keys."""
    kind, _, rest = storage.partition(":")
    if kind not in STORAGE_TYPES:
        raise ConfigError(f"--storage must be one of pvc:CLAIM, nfs:SERVER:/PATH, cvmfs-pvc, cvmfs; got {storage!r}")
    out: dict[str, Any] = {"storageType": kind}
    if kind == "pvc":
        if not rest:
            raise ConfigError("--storage pvc:CLAIM needs the claim's name")
        out["pvc"] = {"claimName": rest}
    elif kind == "nfs":
        server, _, folder = rest.partition(":")
        if not server or not folder:
            raise ConfigError("--storage nfs:SERVER:/PATH needs the server and the exported path")
        out["nfs"] = {"server": server, "path": folder}
    elif rest:
        raise ConfigError(f"--storage {kind} takes no argument, got {storage!r}")
    return out


def triton_args(models, mount_path: str) -> str:
    """The tritonserver command line of each replica (run by ``/bin/sh -c``): the mounted repository,
    only ``models`` loaded."""
    words = ["/opt/tritonserver/bin/tritonserver", f"--model-repository={mount_path}", "--model-control-mode=explicit"]
    words += [f"--load-model={m}" for m in models]
    return " ".join([*words, "--log-verbose=0", "--exit-timeout-secs=60"])


def load_values(a: AutoscalerSettings, name: str) -> dict:
    """``serverLoadMetric`` (hepinfer's metric on the release's series, in the form KEDA's value
    target and Envoy's limiter read as hepinfer does) and ``serverLoadThreshold``."""
    w = duration(a.window_s)
    if a.metric == "queue_time":
        query = queue_time_query(w)
    else:  # R_needed / R = L_in_flight / max(L_executing, R), R: the replicas reporting
        inside, executing = in_flight_queries(w)
        replicas = f'count(count by (instance) (nv_inference_request_duration_us{{job="{TRITON_JOB}"}}))'
        query = f"({inside}) / clamp_min({executing}, scalar({replicas}))"
    return {
        "serverLoadMetric": query.replace(f'job="{TRITON_JOB}"', f'release=~"{name}"'),
        "serverLoadThreshold": _integer("the threshold", a.threshold),
    }


def admits_at_threshold(a: AutoscalerSettings) -> bool:
    """Whether the fleet's guard is the chart's limiter: on, at the threshold itself."""
    return a.admission_ratio is not None and math.isclose(a.admission_ratio, 1.0)


def notes(a: AutoscalerSettings) -> list[str]:
    """What of the fleet's settings chart 0.3.1 cannot hold (written in the file's header)."""
    out = []
    if a.admission_ratio is not None and not admits_at_threshold(a):
        out.append(
            f"no admission guard: the chart's Envoy limiter refuses new sessions above serverLoadThreshold itself "
            f"and has no ceiling of its own for admission ratio {a.admission_ratio:g} (--admission-ratio 1 enables it)"
        )
    if not math.isclose(a.poll_s, KEDA_POLL_S):
        out.append(
            f"KEDA polls every {KEDA_POLL_S} s (the chart has no value for it): --poll {a.poll_s:g} sets the "
            "scaling policies' period only"
        )
    return out


def supersonic_values(
    models,
    *,
    replicas: int = 2,
    min_replicas: int = 1,
    max_replicas: int = 4,
    autoscaler: AutoscalerSettings | None = None,
    name: str = "hepinfer",
    image: str = IMAGE,
    storage: str = "pvc:hepinfer-models",
    mount_path: str = "/models",
    gpu: bool = False,
    prometheus_url: str | None = None,
    extra: dict[str, Any] | None = None,
    chart=None,
) -> dict:
    """The chart's values for a fleet of ``models``; ``extra``: more values by dotted key (checked like
    the rest); ``chart``: the :class:`.chart.Chart` to check against (default: the shipped 0.3.1).
    Raises ConfigError naming each key the chart does not have or its schema refuses."""
    a = autoscaler or AutoscalerSettings()
    models = tuple(models)
    if not models:
        raise ConfigError("SuperSONIC values: at least one model")
    if not 1 <= min_replicas <= replicas <= max_replicas:
        raise ConfigError(f"need 1 <= min <= replicas <= max, got {min_replicas}, {replicas}, {max_replicas}")
    gpu_request = {"nvidia.com/gpu": 1}
    period = _integer("poll_s", a.poll_s)
    values: dict[str, Any] = {
        "nameOverride": name,
        **load_values(a, name),
        "triton": {
            "replicas": replicas,
            "image": image,
            "args": [triton_args(models, mount_path)],
            **({"resources": {"limits": gpu_request, "requests": dict(gpu_request)}} if gpu else {}),
            "modelRepository": {"enabled": True, "mountPath": mount_path, **storage_values(storage)},
        },
        "envoy": {
            "enabled": True,
            "loadBalancerPolicy": "LEAST_REQUEST",  # HAProxy's leastconn in the fleet
            "rate_limiter": {"prometheus_based": {"enabled": admits_at_threshold(a)}},
        },
        "keda": {
            "enabled": a.scale,
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
            "scaleUp": {
                "stabilizationWindowSeconds": _integer("up_cooldown_s", a.up_cooldown_s),
                "periodSeconds": period,
                "stepsize": a.step,
            },
            "scaleDown": {
                "stabilizationWindowSeconds": _integer("down_cooldown_s", a.down_cooldown_s),
                "periodSeconds": period,
                "stepsize": a.step,
            },
        },
        "prometheus": _prometheus(prometheus_url),
    }
    for key, value in (extra or {}).items():
        _set(values, parse_key(key) if isinstance(key, str) else tuple(key), value)
    check(values, chart)
    return values


def _prometheus(url: str | None) -> dict:
    """The chart's own Prometheus, or an external one (``https://host[:port]``)."""
    if url is None:
        return {"enabled": True}
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--prometheus-url must be http(s)://host[:port], got {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {"external": {"enabled": True, "url": parts.hostname, "port": port, "scheme": parts.scheme}}


def plan_settings(plan: dict) -> dict:
    """From a ``hepinfer plan`` plan.json: the models it places and whether any runs on a GPU."""
    placements = plan.get("placements") or []
    if not placements:
        raise ConfigError("the plan places no model")
    used = {p["device"] for p in placements}
    kinds = {d["name"]: d.get("kind") for d in plan.get("devices", [])}
    return {
        "models": tuple(dict.fromkeys(p["model"] for p in placements)),
        "gpu": any(kinds.get(d) == "cuda" for d in used),
        "flavour": plan.get("flavour", "embedded"),
    }


def install_command(release: str, path, chart=None) -> str:
    """The ``helm install`` line for values written for ``chart`` (its version pinned)."""
    chart = chart or load_chart()
    return f"helm install {release} supersonic/supersonic --version {chart.version} --values {path} -n <namespace>"


def header(values: dict, flavour: str = "production", remarks=(), chart=None) -> str:
    """The comment lines written above the values: what wrote them, for which chart, how to install."""
    chart = chart or load_chart()
    models = [a.split("=", 1)[1] for a in values["triton"]["args"][0].split() if a.startswith("--load-model=")]
    lines = [
        f"SuperSONIC values for {chart.label}, written by `hepinfer fleet export --supersonic`",
        "(merged over the chart's values.yaml as Helm does, they pass its values.schema.json)",
        f"models: {', '.join(models)}; mount NVIDIA's production repository of them at "
        f"{values['triton']['modelRepository']['mountPath']}:",
        f"  hepinfer repo build models --flavour production --models {','.join(models)}",
        "install:",
        f"  helm repo add supersonic {HELM_REPO}",
        "  " + install_command("<release>", "<this file>", chart),
    ]
    if flavour != "production":
        lines.append(f"the plan's repositories are the {flavour} flavour: NVIDIA's container needs the production one")
    lines += [f"note: {remark}" for remark in remarks]
    return "".join(f"# {line}\n" for line in lines)


def write_values(path, values: dict, flavour: str = "production", remarks=(), chart=None) -> Path:
    """``values`` as YAML (``yaml.safe_dump``) under the :func:`header`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml_module().safe_dump(values, sort_keys=False, default_flow_style=False)
    path.write_text(header(values, flavour, remarks, chart) + text)
    return path
