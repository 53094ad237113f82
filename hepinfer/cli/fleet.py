"""``hepinfer fleet up``: a serving fleet (replicas of the embedded Triton server behind HAProxy,
Prometheus, the autoscaler) in the foreground until SIGINT / SIGTERM; ``hepinfer fleet status``:
what a running fleet says about itself (``--timeline DIR``: its history as PNG and HTML);
``hepinfer fleet export --supersonic values.yaml``: the same settings as values for SuperSONIC's
Helm chart."""

from __future__ import annotations

import json
import os
import sys
import time

from hepinfer.cli.arguments import add_engine_options, add_models, model_list


def _token(variable: str | None) -> str | None:
    from hepinfer.errors import ConfigError

    if not variable:
        return None
    token = os.environ.get(variable, "").strip()
    if not token:
        raise ConfigError(f"--token-env {variable}: the variable is not set (it must hold the clients' token)")
    return token


def autoscaler_from(args):
    from hepinfer.operations.fleet import AutoscalerSettings

    return AutoscalerSettings(
        metric=args.metric,
        threshold=args.threshold,
        window_s=args.window,
        admission_ratio=None if args.no_guard else args.admission_ratio,
        poll_s=args.poll,
        up_cooldown_s=args.up_cooldown,
        down_cooldown_s=args.down_cooldown,
        step=args.step,
        scale=not args.no_autoscale,
    )


def options_from(args):
    from hepinfer.operations.fleet import AdmissionOptions, FleetOptions

    autoscaler = autoscaler_from(args)
    admission = AdmissionOptions(
        saturation=not args.no_guard,
        rate_limit=args.rate_limit,
        max_connections=args.max_connections,
        token=_token(args.token_env),
    )
    return FleetOptions.build(
        model_list(args.models),
        replicas=args.replicas,
        min_replicas=args.min,
        max_replicas=args.max,
        host=args.host,
        port=args.port,
        autoscaler=autoscaler,
        admission=admission,
        drain_timeout_s=args.drain_timeout,
        instances=args.instances,
        threads=args.threads,
        engine=args.engine,
        device=args.device,
        precision=args.precision,
        compiled=args.compiled,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        **({"repository": args.repository} if args.repository else {}),
    )


def cmd_up(args) -> int:
    from hepinfer.operations.fleet import Fleet
    from hepinfer.serving.foreground import run_until_signal

    options = options_from(args)
    if not args.repository:
        from hepinfer.models.architectures import build_all

        build_all(options.server.models)
    t0 = time.perf_counter()
    started = []

    def ready(fleet) -> None:
        started.append(fleet)
        a = fleet.options.autoscaler
        scaling = (
            f"{a.metric} threshold {a.threshold:g}, window {a.window_s:g} s, every {a.poll_s:g} s"
            if a.scale
            else "off (fixed size)"
        )
        for line in (
            f"hepinfer: fleet ready in {time.perf_counter() - t0:.1f} s: {fleet.serving_count()} replicas of "
            f"{', '.join(options.server.models)} (min {options.min_replicas}, max {options.max_replicas})",
            f"  gRPC        {fleet.url}",
            f"  status      {fleet.status_url}  (hepinfer fleet status --url {fleet.status_url})",
            f"  metrics     {fleet.metrics_url}",
            f"  prometheus  {fleet.prometheus.url}",
            f"  haproxy     {fleet.haproxy.stats_url}",
            f"  autoscaler  {scaling}; guard ceiling {a.ceiling}",
            f"  run dir     {fleet.run_dir}",
            fleet.url,
        ):
            print(line, flush=True)

    if run_until_signal(Fleet(options=options), on_ready=ready) is None:
        print("hepinfer: the fleet stopped on its own", file=sys.stderr)
        return 1
    print("hepinfer: fleet stopped", flush=True)
    if args.timeline and started:
        _timeline(started[0].run_dir, args.timeline)
    return 0


def _timeline(run_dir, out) -> None:
    """timeline.png and timeline.html of the fleet of ``run_dir`` into the folder ``out``."""
    from pathlib import Path

    from hepinfer.operations.fleet.timeline import find_history, read_history, write_html, write_png

    timeline = read_history(find_history(run_dir))
    title = f"hepinfer fleet {Path(find_history(run_dir)).parent.name}"
    png = write_png(timeline, Path(out) / "timeline.png", title=title)
    page = write_html(timeline, Path(out) / "timeline.html", title=title)
    print(f"hepinfer: timeline of {len(timeline.samples)} samples: {png}, {page}", flush=True)


def cmd_status(args) -> int:
    from hepinfer.operations.fleet import format_status, read_status

    if args.timeline:
        run_dir = args.run_dir
        if args.url is not None:
            run_dir = read_status(url=args.url)["run_dir"]
        _timeline(run_dir, args.timeline)
        return 0
    doc = read_status(url=args.url, run_dir=args.run_dir)
    print(json.dumps(doc, indent=1) if args.json else format_status(doc, decisions=args.decisions))
    return 0


def cmd_export(args) -> int:
    from pathlib import Path

    from hepinfer.errors import ConfigError
    from hepinfer.operations.fleet.export import (
        IMAGE,
        install_command,
        notes,
        plan_settings,
        supersonic_values,
        write_values,
    )

    plan = {"models": None, "gpu": False, "flavour": "production"}
    if args.plan:
        try:
            plan = plan_settings(json.loads(Path(args.plan).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"--plan {args.plan}: not a plan.json of hepinfer plan ({err})") from err
    models = model_list(args.models) if args.models or not plan["models"] else plan["models"]
    extra = {}
    for item in args.set or ():
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        from hepinfer.operations.fleet.export import yaml_module

        extra[key.strip()] = yaml_module().safe_load(text)  # as Helm's --set reads it: numbers, booleans, strings
    autoscaler = autoscaler_from(args)
    values = supersonic_values(
        models,
        replicas=args.replicas,
        min_replicas=args.min,
        max_replicas=args.max,
        autoscaler=autoscaler,
        name=args.name,
        image=args.image or IMAGE,
        storage=args.storage,
        mount_path=args.mount_path,
        gpu=args.gpu or plan["gpu"],
        prometheus_url=args.prometheus_url,
        extra=extra,
    )
    remarks = notes(autoscaler)
    path = write_values(args.supersonic, values, flavour=plan["flavour"], remarks=remarks)
    print(f"hepinfer: SuperSONIC values for {', '.join(models)} -> {path}")
    for remark in remarks:
        print(f"  note: {remark}")
    print(
        f"  helm repo add supersonic https://fastmachinelearning.org/SuperSONIC && {install_command(args.name, path)}"
    )
    return 0


def register(sub) -> None:
    fleet = sub.add_parser("fleet", help="a serving fleet: Triton replicas behind HAProxy, with an autoscaler")
    commands = fleet.add_subparsers(dest="fleet_command", required=True)

    up = commands.add_parser("up", help="start a fleet in the foreground (until SIGINT / SIGTERM); prints its URL")
    add_models(up)
    up.add_argument("--replicas", type=int, default=2, help="replicas to start with (default 2)")
    up.add_argument("--min", type=int, default=1, help="fewest replicas the autoscaler keeps (default 1)")
    up.add_argument("--max", type=int, default=4, help="most replicas the autoscaler starts (default 4)")
    up.add_argument("--host", default="127.0.0.1", help="address of the fleet's gRPC front (default loopback)")
    up.add_argument("--port", type=int, default=0, help="the fleet's gRPC port (0 = a free one)")
    up.add_argument("--repository", default=None, help="serve this repository instead of writing one")
    up.add_argument("--instances", type=int, default=1, help="model instances per model, per replica")
    up.add_argument("--threads", type=int, default=1, help="engine threads per instance")
    add_engine_options(up)
    scaling = _add_scaling(up)
    scaling.add_argument("--drain-timeout", type=float, default=30.0, help="s a leaving replica may take (30)")
    front = up.add_argument_group("admission control at the front")
    front.add_argument("--rate-limit", type=float, default=None, help="requests/s per client address")
    front.add_argument("--max-connections", type=int, default=None, help="open connections per client address")
    front.add_argument(
        "--token-env", default=None, help="require 'authorization: Bearer <token>', the token read from this variable"
    )
    front.add_argument("--tls-cert", default=None, help="PEM certificate: the front speaks gRPC over TLS")
    front.add_argument("--tls-key", default=None, help="its PEM key")
    up.add_argument("--timeline", default=None, help="at stop, write timeline.png and timeline.html into this folder")
    up.set_defaults(func=cmd_up)

    status = commands.add_parser("status", help="replicas, queue and compute time, requests/s, recent decisions")
    status.add_argument("--url", default=None, help="the fleet's status URL (default: the newest fleet's run dir)")
    status.add_argument("--run-dir", default=None, help="a fleet's run directory")
    status.add_argument("--decisions", type=int, default=10, help="recent decisions shown (default 10)")
    status.add_argument("--json", action="store_true", help="the whole status document")
    status.add_argument(
        "--timeline", default=None, help="write timeline.png and timeline.html of the fleet's history into this folder"
    )
    status.set_defaults(func=cmd_status)

    export = commands.add_parser("export", help="values for SuperSONIC's Helm chart (0.3.1) from the fleet's settings")
    export.add_argument("--supersonic", required=True, help="the values YAML to write")
    export.add_argument(
        "--models", default=None, help="comma-separated model names, or all (default: the plan's, else all)"
    )
    export.add_argument("--plan", default=None, help="plan.json of hepinfer plan: its models, and a GPU if it uses one")
    export.add_argument("--replicas", type=int, default=2, help="replicas without autoscaling (default 2)")
    export.add_argument("--min", type=int, default=1, help="keda.minReplicaCount (default 1)")
    export.add_argument("--max", type=int, default=4, help="keda.maxReplicaCount (default 4)")
    _add_scaling(export)
    export.add_argument("--name", default="hepinfer", help="nameOverride, the release's name (default hepinfer)")
    export.add_argument("--image", default=None, help="Triton image (default: NVIDIA's 24.10-py3, Triton 2.51.0)")
    export.add_argument(
        "--storage",
        default="pvc:hepinfer-models",
        help="the repository's volume: pvc:CLAIM, nfs:SERVER:/PATH, cvmfs-pvc or cvmfs (default pvc:hepinfer-models)",
    )
    export.add_argument("--mount-path", default="/models", help="where the replicas mount the repository (/models)")
    export.add_argument("--gpu", action="store_true", help="one GPU per replica (nvidia.com/gpu: 1)")
    export.add_argument("--prometheus-url", default=None, help="an existing Prometheus (default: the chart's own)")
    export.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="another value of the chart, e.g. envoy.replicas=2 (repeatable)",
    )
    export.set_defaults(func=cmd_export)


def _add_scaling(parser):
    """The autoscaler's options (``fleet up`` and ``fleet export``); returns their group."""
    from hepinfer.operations.fleet.autoscaler import METRICS

    scaling = parser.add_argument_group("autoscaler (defaults: SuperSONIC's)")
    scaling.add_argument("--metric", choices=METRICS, default="in_flight", help="what the autoscaler reads")
    scaling.add_argument("--threshold", type=float, default=None, help="in_flight: 2 (default); queue_time: 100 ms")
    scaling.add_argument("--window", type=float, default=None, help="rate window, s (in_flight 60, queue_time 15)")
    scaling.add_argument("--poll", type=float, default=30.0, help="seconds between decisions (default 30)")
    scaling.add_argument("--up-cooldown", type=float, default=120.0, help="s after a scale-up (default 120)")
    scaling.add_argument("--down-cooldown", type=float, default=120.0, help="s before a scale-down (default 120)")
    scaling.add_argument("--step", type=int, default=1, help="replicas added or removed per decision (default 1)")
    scaling.add_argument("--no-autoscale", action="store_true", help="keep --replicas replicas")
    scaling.add_argument(
        "--admission-ratio", type=float, default=1.5, help="saturation guard at this x the threshold (default 1.5)"
    )
    scaling.add_argument("--no-guard", action="store_true", help="no saturation guard")
    return scaling
