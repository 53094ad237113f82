"""``hepinfer serve``: the embedded Triton server in the foreground until SIGINT / SIGTERM."""

from __future__ import annotations

import sys

from hepinfer.cli.arguments import add_engine_options, add_models, model_list, parse_bytes


def cmd_serve(args) -> int:
    from hepinfer.serving.foreground import run_until_signal
    from hepinfer.serving.server import EmbeddedServer, ServerOptions

    # with --repository, "all" (the default) is every model of that repository, as it is
    whole_repository = args.repository and args.models in (None, "", "all")
    options = ServerOptions(
        models=None if whole_repository else model_list(args.models),
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        instances=args.instances,
        threads=args.threads,
        dynamic_batching=not args.no_dynamic_batching,
        max_queue_delay_us=args.max_queue_delay_us,
        engine=args.engine,
        device=args.device,
        precision=args.precision,
        compiled=args.compiled,
        memory_budget=parse_bytes(args.gpu_memory) if args.gpu_memory else None,
        **({"repository": args.repository} if args.repository else {}),
    )
    if not args.repository:
        from hepinfer.models.architectures import build_all

        build_all(options.models)
    log_path = []

    def ready(server) -> None:
        log_path.append(server.log_path)
        for line in (
            f"hepinfer: Triton ready in {server.startup_seconds:.2f} s (pid {server.pid})",
            f"  gRPC    {server.url}",
            f"  HTTP    {server.http_url}",
            f"  metrics {server.metrics_url}",
            f"  models  {', '.join(server.served_models)}; log {server.log_path}",
            *(
                repository_lines(server)
                if server.repository_models is not None
                else [
                    "  engine  {engine} on {device}, {precision}{c}".format(
                        **server.serving, c=", compiled" if server.options.compiled else ""
                    )
                ]
            ),
            *budget_lines(server),
            server.url,
        ):
            print(line, flush=True)

    if run_until_signal(EmbeddedServer(options), on_ready=ready) is None:
        print(f"hepinfer: tritonserver exited unexpectedly; log {log_path[0] if log_path else '-'}", file=sys.stderr)
        return 1
    print("hepinfer: server stopped", flush=True)
    return 0


def repository_lines(server) -> list[str]:
    """One line per model of a served repository: its platform and what runs it, or why it was skipped."""
    width = max(len(m.name) for m in server.repository_models)
    return [
        f"  {'model' if m.servable else 'skipped':<8}{m.name:<{width}}  {m.describe()}"
        for m in server.repository_models
    ]


def budget_lines(server) -> list[str]:
    """One line per model whose batch limit was sized from the memory budget."""
    if server.options.memory_budget is None:
        return []
    from hepinfer.serving.memory_budget import last_plans

    return [f"  batch   {plan.describe()}" for plan in last_plans()]


def register(sub) -> None:
    s = sub.add_parser("serve", help="run the embedded Triton server (foreground)")
    add_models(s)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    s.add_argument("--grpc-port", type=int, default=0, help="0 = a free port")
    s.add_argument("--http-port", type=int, default=0, help="0 = a free port")
    s.add_argument("--metrics-port", type=int, default=0, help="0 = a free port")
    s.add_argument(
        "--repository",
        default=None,
        help="serve this Triton model repository as it is (any platform hepinfer runs: see the serving guide); "
        "without --models every model of it, skipping with a warning those that cannot be served",
    )
    s.add_argument("--instances", type=int, default=1, help="model instances per model")
    s.add_argument("--threads", type=int, default=1, help="engine threads per instance")
    s.add_argument("--no-dynamic-batching", action="store_true")
    s.add_argument("--max-queue-delay-us", type=int, default=100)
    add_engine_options(s)
    s.add_argument(
        "--gpu-memory",
        default=None,
        help="memory the models' batches may take, e.g. 40GB: batch limits sized from memory per row",
    )
    s.set_defaults(func=cmd_serve)
