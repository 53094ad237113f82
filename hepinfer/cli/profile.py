"""``hepinfer profile``: measure serving configurations of each model on this machine (the embedded
server on the CPU or a GPU) or on a remote server, and save the profile that ``hepinfer plan`` reads
(:mod:`hepinfer.operations.planning.profile`)."""

from __future__ import annotations

from hepinfer.cli.arguments import model_list


def cmd_profile(args) -> int:
    from hepinfer.operations.planning.profile import ProfileSettings, main

    settings = ProfileSettings(
        models=model_list(args.models) if args.models else None,
        device=args.device,
        engine=args.engine,
        url=args.url,
        metrics_url=args.metrics_url,
        admin_token=args.admin_token or "",
        latency_p99_ms=args.latency_p99_ms,
        duration_s=args.duration,
        request_rows=args.request_rows,
        concurrency=args.concurrency,
        max_steps=args.max_steps,
        colocate=not args.no_colocate,
        quick=args.quick,
    )
    return main(settings, args.out)


def register(sub) -> None:
    from hepinfer.serving.repository import SERVING_ENGINES

    s = sub.add_parser(
        "profile",
        help="measure serving configurations of each model (search, not a grid) and save a profile for hepinfer plan",
        description=(
            "For each model, a search over the embedded server's configuration (concurrency, instances, dynamic "
            "batching delay, precision, max_batch_size) keeps the fastest under the p99 latency limit; then the "
            "models are served together against each alone.  With --url only the client's load (request rows, "
            "concurrency) varies: a remote server's configuration is its own."
        ),
    )
    s.add_argument(
        "--models",
        default=None,
        help="comma-separated models (default particlenet,resnet50,bdt; quick: particlenet,bdt)",
    )
    s.add_argument("--device", default="cpu", help="the embedded server's device: cpu or cuda:N (default cpu)")
    s.add_argument(
        "--engine",
        choices=SERVING_ENGINES,
        default=None,
        help="the embedded server's engine (default: torch on a GPU, the models' own on the CPU)",
    )
    s.add_argument(
        "--url", default=None, help="profile a running server (grpc://host:port) instead of the embedded one"
    )
    s.add_argument("--metrics-url", default=None, help="with --url: its metrics (default http://<host>:8002/metrics)")
    s.add_argument("--admin-token", default=None, help="with --url: the server's admin token, sent with each request")
    s.add_argument("--latency-p99-ms", type=float, default=100.0, help="p99 latency limit of the best (default 100)")
    s.add_argument("--duration", type=float, default=None, help="seconds per configuration (default 5; quick 1)")
    s.add_argument(
        "--request-rows", type=int, default=None, help="rows per request at the start (default 64; quick 16)"
    )
    s.add_argument("--concurrency", type=int, default=None, help="requests in flight at the start (default 4; quick 2)")
    s.add_argument("--max-steps", type=int, default=None, help="configurations per model at most (default 24; quick 5)")
    s.add_argument("--no-colocate", action="store_true", help="skip serving the models together")
    s.add_argument("--quick", action="store_true", help="the CI size: 1 s per configuration, few steps")
    s.add_argument(
        "--out",
        default=None,
        help="profile JSON (default $HEPINFER_HOME/profiles/<host>-<device>.json); the PNG is written beside it",
    )
    s.set_defaults(func=cmd_profile)
