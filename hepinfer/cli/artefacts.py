"""``hepinfer setup``, ``hepinfer models``, ``hepinfer repo``, ``hepinfer server``: artefacts,
model repositories and the server's environment."""

from __future__ import annotations

from ..serving.repository import FLAVOURS
from .common import add_models, model_list


def cmd_setup(args) -> int:
    from ..models.build import build_all
    from ..serving.environment import ensure_server_env

    build_all(model_list(args.models), force=args.force)
    ensure_server_env()
    return 0


def cmd_models(args) -> int:
    if args.action == "list":
        from ..models import SPECS

        for spec in SPECS.values():
            ins = ", ".join(f"{t.name}{tuple(['N', *t.shape])} {t.dtype}" for t in spec.inputs)
            outs = ", ".join(f"{t.name}{tuple(['N', *t.shape])}" for t in spec.outputs)
            print(
                f"{spec.name}: {spec.description}\n  inputs: {ins}\n  outputs: {outs}\n"
                f"  max batch {spec.max_batch_size}, engine {spec.engine}"
            )
        return 0
    from ..models.build import build_all

    build_all(model_list(args.models), force=args.force)
    return 0


def cmd_repo(args) -> int:
    from ..serving.repository import RepositoryOptions, write_repository

    opts = RepositoryOptions(
        flavour=args.flavour,
        models=model_list(args.models),
        instances=args.instances,
        gpu=args.gpu,
        dynamic_batching=not args.no_dynamic_batching,
        max_queue_delay_us=args.max_queue_delay_us,
        tensorrt=args.tensorrt,
        link_artefacts=False,
    )
    out = write_repository(args.out, opts)
    print(f"wrote {args.flavour} repository with {', '.join(opts.models)} to {out}")
    return 0


def cmd_server(args) -> int:
    from ..serving.environment import ensure_server_env

    print(ensure_server_env().tritonserver)
    return 0


def register(sub) -> None:
    s = sub.add_parser("setup", help="build model artefacts and the server environment")
    add_models(s)
    s.add_argument("--force", action="store_true", help="rebuild artefacts that are already there")
    s.set_defaults(func=cmd_setup)

    s = sub.add_parser("models", help="build or list the models")
    s.add_argument("action", choices=("build", "list"))
    add_models(s)
    s.add_argument("--force", action="store_true", help="rebuild artefacts that are already there")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("repo", help="write a Triton model repository")
    s.add_argument("action", choices=("build",))
    s.add_argument("out", help="folder to write the repository into")
    s.add_argument("--flavour", choices=FLAVOURS, default="embedded")
    add_models(s)
    s.add_argument("--instances", type=int, default=1, help="model instances per model")
    s.add_argument("--gpu", action="store_true", help="production: KIND_GPU instances")
    s.add_argument("--tensorrt", action="store_true", help="production: TensorRT accelerator for ONNX models")
    s.add_argument("--no-dynamic-batching", action="store_true")
    s.add_argument("--max-queue-delay-us", type=int, default=100)
    s.set_defaults(func=cmd_repo)

    s = sub.add_parser("server", help="manage the server environment")
    s.add_argument("action", choices=("setup",))
    s.set_defaults(func=cmd_server)
