"""``hepinfer fleet up``: a serving fleet (replicas of the embedded Triton server behind HAProxy,
Prometheus, the autoscaler) in the foreground until SIGINT / SIGTERM; ``hepinfer fleet status``:
what a running fleet says about itself."""

from __future__ import annotations

import json
import os
import time

from .common import add_engine_options, add_models, model_list


def _token(variable: str | None) -> str | None:
    from ..errors import ConfigError

    if not variable:
        return None
    token = os.environ.get(variable, "").strip()
    if not token:
        raise ConfigError(f"--token-env {variable}: the variable is not set (it must hold the clients' token)")
    return token


def options_from(args):
    from ..serving.fleet import AdmissionOptions, AutoscalerSettings, FleetOptions

    autoscaler = AutoscalerSettings(
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
    from ..serving.fleet.foreground import run_until_signal

    options = options_from(args)
    if not args.repository:
        from ..models.build import build_all

        build_all(options.server.models)
    t0 = time.perf_counter()

    def ready(fleet) -> None:
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

    run_until_signal(options, on_ready=ready)
    print("hepinfer: fleet stopped", flush=True)
    return 0


def cmd_status(args) -> int:
    from ..serving.fleet import format_status, read_status

    doc = read_status(url=args.url, run_dir=args.run_dir)
    print(json.dumps(doc, indent=1) if args.json else format_status(doc, decisions=args.decisions))
    return 0


def register(sub) -> None:
    from ..serving.fleet.autoscaler import METRICS

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
    scaling = up.add_argument_group("autoscaler (defaults: SuperSONIC's)")
    scaling.add_argument("--metric", choices=METRICS, default="in_flight", help="what the autoscaler reads")
    scaling.add_argument("--threshold", type=float, default=None, help="in_flight: 2 (default); queue_time: 100 ms")
    scaling.add_argument("--window", type=float, default=None, help="rate window, s (in_flight 60, queue_time 15)")
    scaling.add_argument("--poll", type=float, default=30.0, help="seconds between decisions (default 30)")
    scaling.add_argument("--up-cooldown", type=float, default=120.0, help="s after a scale-up (default 120)")
    scaling.add_argument("--down-cooldown", type=float, default=120.0, help="s before a scale-down (default 120)")
    scaling.add_argument("--step", type=int, default=1, help="replicas added or removed per decision (default 1)")
    scaling.add_argument("--no-autoscale", action="store_true", help="keep --replicas replicas")
    scaling.add_argument("--drain-timeout", type=float, default=30.0, help="s a leaving replica may take (30)")
    front = up.add_argument_group("admission control at the front")
    front.add_argument(
        "--admission-ratio", type=float, default=1.5, help="saturation guard at this x the threshold (default 1.5)"
    )
    front.add_argument("--no-guard", action="store_true", help="no saturation guard")
    front.add_argument("--rate-limit", type=float, default=None, help="requests/s per client address")
    front.add_argument("--max-connections", type=int, default=None, help="open connections per client address")
    front.add_argument(
        "--token-env", default=None, help="require 'authorization: Bearer <token>', the token read from this variable"
    )
    front.add_argument("--tls-cert", default=None, help="PEM certificate: the front speaks gRPC over TLS")
    front.add_argument("--tls-key", default=None, help="its PEM key")
    up.set_defaults(func=cmd_up)

    status = commands.add_parser("status", help="replicas, queue and compute time, requests/s, recent decisions")
    status.add_argument("--url", default=None, help="the fleet's status URL (default: the newest fleet's run dir)")
    status.add_argument("--run-dir", default=None, help="a fleet's run directory")
    status.add_argument("--decisions", type=int, default=10, help="recent decisions shown (default 10)")
    status.add_argument("--json", action="store_true", help="the whole status document")
    status.set_defaults(func=cmd_status)
