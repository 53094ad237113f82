"""Values for SuperSONIC's Helm chart (the CMS / ATLAS inference-as-a-service deployment on
Kubernetes) from a fleet's settings: the same models, replicas, autoscaler metric, threshold and
bounds, admission guard and least-requests balancing, for a cluster instead of one machine.

The values are checked against :data:`DOCUMENTED`, the chart's documented keys with their types as
read from the chart's ``values.yaml`` and ``values.schema.json`` (:data:`CHART`): a key not in it is
refused, naming it, and so is a value of the wrong type (the chart's schema types both thresholds as
integers, so Helm itself would refuse 1.5).  Nothing here runs a cluster; ``helm install`` does::

    helm repo add supersonic https://fastmachinelearning.org/SuperSONIC
    helm install <release> supersonic/supersonic --values values.yaml -n <namespace>

How hepinfer's settings map (see :mod:`.autoscaler`): ``in_flight`` is the chart's default metric
(``serverLoadMetric: ""``, KEDA ``AverageValue``: ceil(metric / threshold) replicas), its window
``serverLoadRateInterval``; ``queue_time`` is written out as a ``serverLoadMetric`` query on the
release's series with KEDA ``Value`` (ceil(replicas x metric / threshold)); the guard's ceiling is
``serverAdmissionThreshold`` with Envoy's prometheus-based limiter; ``poll_s`` is KEDA's
``pollingInterval``, the cool-downs the HPA's stabilization windows, ``step`` their step sizes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .autoscaler import AutoscalerSettings, queue_time_query
from .prometheus import TRITON_JOB, duration

CHART = {
    "repository": "https://github.com/fastmachinelearning/SuperSONIC",
    "files": "helm/supersonic/values.yaml, helm/supersonic/values.schema.json",
    "commit": "0323a5ab18d3ecedaf3160aa680d1ab07b690623",
    # the chart version of that commit was not in the files read (a Chart.yaml of another commit says 0.3.1)
    "chart_version": None,
    "helm_repo": "https://fastmachinelearning.org/SuperSONIC",
}
# Triton 2.51.0 (what hepinfer's embedded server runs) is NVIDIA's container release 24.10; the full
# image, not the chart's default "-min" one, has the onnxruntime and FIL backends the production
# repository uses (hepinfer repo build OUT --flavour production)
IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"
STORAGE = ("pvc", "nfs", "cvmfs-pvc", "cvmfs-hostPath")

# Every key of the chart's values documented at CHART["commit"], with its type in values.schema.json:
# a line per parent ("." the top), then key:type.  A key typed object or array takes any content.
# Marked *: documented in values.yaml's comments or descriptions but not in the schema:
# triton.modelRepository's storage options, and the GPU request triton.resources' description invites.
_DOCUMENTED = """
. nameOverride:string serverLoadMetric:string serverLoadThreshold:integer serverLoadRateInterval:string
. serverAdmissionThreshold:integer
scaleFromZero enabled:boolean readyTimeoutSeconds:integer holdMinReplicasSeconds:integer admissionImage:string
triton replicas:integer image:string command:array args:array annotations:object nodeSelector:object
triton tolerations:array affinity:object readinessProbe:object startupProbe:object
triton.resources.limits cpu:integer memory:string "nvidia.com/gpu":integer*
triton.resources.requests cpu:integer memory:string "nvidia.com/gpu":integer*
triton.modelRepository enabled:boolean mountPath:string storageType:string*
triton.modelRepository.pvc claimName:string*
triton.modelRepository.nfs server:string* path:string*
triton.service labels:object annotations:object ports:array
envoy enabled:boolean replicas:integer image:string args:array annotations:object nodeSelector:object
envoy tolerations:array grpc_route_timeout:string loadBalancerPolicy:string
envoy.external_config load_from_configmap:boolean configmap_name:string configmap_key:string
envoy.resources.requests cpu:number memory:string
envoy.resources.limits cpu:number memory:string
envoy.service type:string ports:array
envoy.ingress enabled:boolean hostName:string ingressClassName:string annotations:object
envoy.rate_limiter.listener_level enabled:boolean max_tokens:integer tokens_per_fill:integer
envoy.rate_limiter.listener_level fill_interval:string
envoy.rate_limiter.prometheus_based enabled:boolean luaConfig:string
envoy.auth enabled:boolean jwt_issuer:string jwt_remote_jwks_uri:string audiences:array url:string
envoy.auth port:integer
keda enabled:boolean metricType:string minReplicaCount:integer maxReplicaCount:integer pollingInterval:integer
keda cooldownPeriod:integer zeroIdleReplicas:boolean
keda.scaleUp stabilizationWindowSeconds:integer periodSeconds:integer stepsize:integer
keda.scaleDown stabilizationWindowSeconds:integer periodSeconds:integer stepsize:integer
prometheus.external enabled:boolean url:string port:integer scheme:string
prometheus enabled:boolean server:object serviceAccounts:object rbac:object alertmanager:object
prometheus pushgateway:object kube-state-metrics:object prometheus-node-exporter:object
prometheus prometheus-pushgateway:object configmapReload:object
grafana enabled:boolean adminUser:string adminPassword:string persistence:object rbac:object
grafana serviceAccount:object datasources:object dashboardProviders:object dashboardsConfigMaps:object
grafana "grafana.ini":object resources:object ingress:object
metricsCollector enabled:boolean image:string host:string port:integer resources:object service:object
metricsCollector ingress:object
"""
_SEGMENT = re.compile(r'"([^"]+)"|([^.]+)')


def parse_key(dotted: str) -> tuple[str, ...]:
    """``a.b."c.d"`` -> ("a", "b", "c.d") (a segment holding a dot is quoted, as helm-docs writes it)."""
    parts, pos = [], 0
    while pos < len(dotted):
        m = _SEGMENT.match(dotted, pos)
        if m is None:
            raise ConfigError(f"malformed values key {dotted!r}")
        parts.append(m.group(1) or m.group(2))
        pos = m.end()
        if pos < len(dotted):
            if dotted[pos] != ".":
                raise ConfigError(f"malformed values key {dotted!r}")
            pos += 1
    if not parts:
        raise ConfigError("empty values key")
    return tuple(parts)


def dotted(path: tuple[str, ...]) -> str:
    return ".".join(f'"{p}"' if "." in p else p for p in path)


DOCUMENTED: dict[tuple[str, ...], str] = {
    (*(parse_key(parent) if parent != "." else ()), *parse_key(leaf)): kind.rstrip("*")
    for parent, *leaves in (line.split() for line in _DOCUMENTED.strip().splitlines())
    for leaf, kind in (item.rsplit(":", 1) for item in leaves)
}
_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def check_values(values: dict, path: tuple[str, ...] = ()) -> None:
    """ConfigError for the first key of ``values`` that the chart does not document, or whose value
    has another type than the chart's schema says."""
    for key, value in values.items():
        here = (*path, str(key))
        kind = DOCUMENTED.get(here)
        if kind is not None:
            if not _TYPES[kind](value):
                raise ConfigError(
                    f"SuperSONIC values: {dotted(here)} must be of type {kind} in the chart's schema, got {value!r}"
                )
            continue
        if isinstance(value, dict) and any(k[: len(here)] == here for k in DOCUMENTED):
            check_values(value, here)
            continue
        siblings = sorted({dotted(k[: len(here)]) for k in DOCUMENTED if k[: len(path)] == path})
        full = here
        while isinstance(value, dict) and value:  # name the key as it was given, down to its first leaf
            key, value = next(iter(value.items()))
            full = (*full, str(key))
        raise ConfigError(
            f"SuperSONIC values: unknown key {dotted(full)!r}: {dotted(here)} is not a documented value of the chart "
            f"(commit {CHART['commit'][:12]}); documented {'under ' + dotted(path) if path else 'at the top'}: "
            + ", ".join(siblings)
        )


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
    """``pvc:CLAIM``, ``nfs:SERVER:/PATH``, ``cvmfs-pvc`` or ``cvmfs-hostPath`` -> triton.modelRepository keys."""
    kind, _, rest = storage.partition(":")
    if kind not in STORAGE:
        raise ConfigError(
            f"--storage must be one of pvc:CLAIM, nfs:SERVER:/PATH, cvmfs-pvc, cvmfs-hostPath; got {storage!r}"
        )
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
    """The tritonserver command line of each replica: the mounted repository, only ``models`` loaded."""
    lines = ["/opt/tritonserver/bin/tritonserver", f"--model-repository={mount_path}", "--model-control-mode=explicit"]
    lines += [f"--load-model={m}" for m in models]
    lines += ["--log-verbose=0", "--exit-timeout-secs=60"]
    return " \\\n".join(lines) + "\n"


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
) -> dict:
    """The chart's values for a fleet of ``models``; ``extra``: more values by dotted key (checked like
    the rest).  Raises ConfigError for an undocumented key or a value the chart's schema refuses."""
    a = autoscaler or AutoscalerSettings()
    models = tuple(models)
    if not models:
        raise ConfigError("SuperSONIC values: at least one model")
    if not 1 <= min_replicas <= replicas <= max_replicas:
        raise ConfigError(f"need 1 <= min <= replicas <= max, got {min_replicas}, {replicas}, {max_replicas}")
    load: dict[str, Any] = {"serverLoadThreshold": _integer("the threshold", a.threshold)}
    if a.metric == "in_flight":
        load.update(serverLoadMetric="", serverLoadRateInterval=duration(a.window_s))
    else:  # hepinfer's query on the release's series (the chart labels them release=<name>)
        query = queue_time_query(duration(a.window_s)).replace(f'job="{TRITON_JOB}"', f'release=~"{name}"')
        load["serverLoadMetric"] = query
    if a.ceiling is not None:
        load["serverAdmissionThreshold"] = _integer("the guard's ceiling (admission ratio x threshold)", a.ceiling)
    limits = {"nvidia.com/gpu": 1} if gpu else {}
    values: dict[str, Any] = {
        "nameOverride": name,
        **load,
        "triton": {
            "replicas": replicas,
            "image": image,
            "args": [triton_args(models, mount_path)],
            **({"resources": {"limits": limits, "requests": dict(limits)}} if gpu else {}),
            "modelRepository": {"enabled": True, "mountPath": mount_path, **storage_values(storage)},
        },
        "envoy": {
            "enabled": True,
            "loadBalancerPolicy": "LEAST_REQUEST",  # HAProxy's leastconn in the fleet
            "rate_limiter": {"prometheus_based": {"enabled": a.ceiling is not None}},
        },
        "keda": {
            "enabled": a.scale,
            "metricType": "AverageValue" if a.metric == "in_flight" else "Value",
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
            "pollingInterval": _integer("poll_s", a.poll_s),
            "scaleUp": {
                "stabilizationWindowSeconds": _integer("up_cooldown_s", a.up_cooldown_s),
                "periodSeconds": _integer("poll_s", a.poll_s),
                "stepsize": a.step,
            },
            "scaleDown": {
                "stabilizationWindowSeconds": _integer("down_cooldown_s", a.down_cooldown_s),
                "periodSeconds": _integer("poll_s", a.poll_s),
                "stepsize": a.step,
            },
        },
        "prometheus": _prometheus(prometheus_url),
    }
    for key, value in (extra or {}).items():
        _set(values, parse_key(key) if isinstance(key, str) else tuple(key), value)
    check_values(values)
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


def header(values: dict, flavour: str = "production") -> str:
    """The comment lines written above the values: what wrote them, against which chart, how to install."""
    models = [a.split("=", 1)[1] for a in values["triton"]["args"][0].split() if a.startswith("--load-model=")]
    lines = [
        "SuperSONIC values written by `hepinfer fleet export --supersonic`",
        f"checked against the documented values of {CHART['repository']}",
        f"({CHART['files']} at commit {CHART['commit']})",
        f"models: {', '.join(models)}; mount NVIDIA's production repository of them at "
        f"{values['triton']['modelRepository']['mountPath']}:",
        f"  hepinfer repo build models --flavour production --models {','.join(models)}",
        "install:",
        f"  helm repo add supersonic {CHART['helm_repo']}",
        "  helm install <release> supersonic/supersonic --values <this file> -n <namespace>",
    ]
    if flavour != "production":
        lines.append(f"the plan's repositories are the {flavour} flavour: NVIDIA's container needs the production one")
    return "".join(f"# {line}\n" for line in lines)


def yaml_module():
    """PyYAML (the ``fleet`` extra), or a ConfigError naming the extra."""
    try:
        import yaml
    except ImportError as err:
        raise ConfigError("SuperSONIC values are YAML, which needs PyYAML: pip install 'hepinfer[fleet]'") from err
    return yaml


def to_yaml(values: dict) -> str:
    """``values`` as YAML (PyYAML), multi-line strings as literal blocks."""
    yaml = yaml_module()

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper, value: str):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return yaml.dump(values, Dumper=Dumper, sort_keys=False, default_flow_style=False)


def write_values(path, values: dict, flavour: str = "production") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header(values, flavour) + to_yaml(values))
    return path
