"""``hepinfer setup``, ``hepinfer models``, ``hepinfer repo``, ``hepinfer server``: artefacts,
model repositories and the server's environment.  ``hepinfer models pull URL NAME -o FILE`` saves the
declaration of a model a Triton server serves (a TOML file for ``HEPINFER_MODELS``)."""

from __future__ import annotations

from hepinfer.cli.arguments import add_engine_options, add_models, model_list
from hepinfer.serving.repository import FLAVOURS


def _to_build(models) -> list:
    """The ModelSpecs of the models (names, resolved here) whose artefact hepinfer builds or installs
    (user models bring their own file, and a model that only a server has, none)."""
    from hepinfer.models.resolved import resolve

    specs = [resolve(m).spec for m in models]
    return [spec for spec in specs if spec.artefact_file is None and not spec.remote_only]


def cmd_setup(args) -> int:
    from hepinfer.models.architectures import build_all
    from hepinfer.serving.environment import ensure_server_env

    models = _to_build(model_list(args.models))
    build_all(models, force=args.force)
    torch = args.torch or args.gpu
    if torch:
        from hepinfer.models.architectures.torch_export import NETWORKS, build_torch

        for spec in models:
            if spec.name in NETWORKS:
                print(f"{spec.name}: torch engine program {build_torch(spec, force=args.force)}")
    env = ensure_server_env(torch=torch, gpu=args.gpu)
    if torch:
        print(f"server environment {env.root}: torch {env.torch_version} ({env.torch}), {env.cuda_devices} GPU(s) seen")
    return 0


def _describe(spec) -> str:
    ins = ", ".join(f"{t.name}{tuple(['N', *t.shape])} {t.dtype}" for t in spec.inputs)
    outs = ", ".join(f"{t.name}{tuple(['N', *t.shape])}" for t in spec.outputs)
    builder = spec.builder or (spec.name if spec.source == "built-in" else "none")
    params = "".join(f", {k}={v!r}" for k, v in spec.builder_params.items())
    where = f", artefact {spec.artefact_file}" if spec.artefact_file else ""
    return (
        f"{spec.name} [{spec.source}]: {spec.description}\n  inputs: {ins}\n  outputs: {outs}\n"
        f"  classes: {', '.join(spec.classes) or 'none declared'}; builder: {builder}{params}\n"
        f"  max batch {spec.max_batch_size}, engine {spec.engine}{where}\n"
        f"  domain: {spec.domain.describe() if spec.domain else 'none declared'}"
    )


def cmd_models(args) -> int:
    if args.action == "list":
        from hepinfer.models import SPECS

        for spec in SPECS.values():
            print(_describe(spec))
        return 0
    if args.action == "pull":
        return _pull(args)
    from hepinfer.models.architectures import build_all

    build_all(_to_build(model_list(args.models)), force=args.force)
    return 0


def _pull(args) -> int:
    import dataclasses

    from hepinfer.config import InferenceConfig
    from hepinfer.models.checks import check_declaration
    from hepinfer.models.declare import write_toml
    from hepinfer.runtime.discovery import spec_from_server

    # TLS files, token variable and timeouts as HEPINFER_* say (a shared server's settings)
    spec = spec_from_server(args.url, args.name, InferenceConfig.from_env(mode="remote", url=args.url))
    changes = {}
    if args.builder:
        changes["builder"] = args.builder
    if args.classes:
        changes["classes"] = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    spec = check_declaration(dataclasses.replace(spec, **changes)) if changes else spec
    out = write_toml(spec, args.out)
    print(f"wrote the declaration of {spec.name!r} (from {args.url}) to {out}; use it with HEPINFER_MODELS={out}")
    return 0


def cmd_repo(args) -> int:
    from hepinfer.models import SPECS
    from hepinfer.serving.repository import RepositoryOptions, write_repository

    opts = RepositoryOptions(
        flavour=args.flavour,
        models=SPECS.servable() if args.models in (None, "", "all") else model_list(args.models),
        instances=args.instances,
        gpu=args.gpu,
        dynamic_batching=not args.no_dynamic_batching,
        max_queue_delay_us=args.max_queue_delay_us,
        tensorrt=args.tensorrt,
        link_artefacts=False,
        engine=args.engine,
        device=args.device,
        precision=args.precision,
        compiled=args.compiled,
    )
    out = write_repository(args.out, opts)
    print(f"wrote {args.flavour} repository with {', '.join(spec.name for spec in opts.models)} to {out}")
    return 0


def cmd_server(args) -> int:
    from hepinfer.serving.environment import ensure_server_env

    print(ensure_server_env().tritonserver)
    return 0


def register(sub) -> None:
    s = sub.add_parser("setup", help="build model artefacts and the server environment")
    add_models(s)
    s.add_argument("--force", action="store_true", help="rebuild artefacts that are already there")
    s.add_argument("--torch", action="store_true", help="also the torch engine: programs and torch in the server")
    s.add_argument(
        "--gpu",
        action="store_true",
        help="the server environment on the CUDA torch of HEPINFER_SERVER_PYTHON (default: this Python)",
    )
    s.set_defaults(func=cmd_setup)

    s = sub.add_parser("models", help="build, list or pull the models")
    actions = s.add_subparsers(dest="action", required=True)
    a = actions.add_parser("build", help="build the artefacts into $HEPINFER_HOME")
    add_models(a)
    a.add_argument("--force", action="store_true", help="rebuild artefacts that are already there")
    a.set_defaults(func=cmd_models)
    a = actions.add_parser("list", help="print every declared model with its source, classes, builder and domain")
    a.set_defaults(func=cmd_models)
    a = actions.add_parser("pull", help="save the declaration of a model a Triton server serves, as TOML")
    a.add_argument("url", help="the server, e.g. grpc://host:8001")
    a.add_argument("name", help="the model's name on the server")
    a.add_argument("-o", "--out", required=True, help="the TOML file to write (for HEPINFER_MODELS)")
    a.add_argument("--builder", help="input builder to declare: a hepinfer.features name or package.module:function")
    a.add_argument("--classes", help="comma-separated class names of the first output (default: the server's labels)")
    a.set_defaults(func=cmd_models)

    s = sub.add_parser("repo", help="write a Triton model repository")
    s.add_argument("action", choices=("build",))
    s.add_argument("out", help="folder to write the repository into")
    s.add_argument("--flavour", choices=FLAVOURS, default="embedded")
    add_models(s)
    s.add_argument("--instances", type=int, default=1, help="model instances per model")
    s.add_argument("--gpu", action="store_true", help="production: KIND_GPU instances")
    s.add_argument("--tensorrt", action="store_true", help="production: TensorRT accelerator for ONNX models")
    add_engine_options(s)
    s.add_argument("--no-dynamic-batching", action="store_true")
    s.add_argument("--max-queue-delay-us", type=int, default=100)
    s.set_defaults(func=cmd_repo)

    s = sub.add_parser("server", help="manage the server environment")
    s.add_argument("action", choices=("setup",))
    s.set_defaults(func=cmd_server)
