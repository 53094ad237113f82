"""``hepinfer plan``: serving configurations chosen from saved profiles and placed on devices for a
demand; writes the model repositories, plan.md, plan.json and plan.png, and prints the plan.  Exit
code 1 when the demand cannot be met (the plan of what fits is written all the same)."""

from __future__ import annotations

from hepinfer.cli.arguments import parse_bytes


def cmd_plan(args) -> int:
    from hepinfer.operations.planning.plan_report import write_plan
    from hepinfer.operations.planning.planner import hardware_from_profiles, make_plan
    from hepinfer.operations.planning.schema import Profile

    profiles = [Profile.load(p) for p in args.profile]
    hardware = hardware_from_profiles(
        profiles,
        gpus=args.gpus,
        gpu_memory_bytes=parse_bytes(args.gpu_memory) if args.gpu_memory else None,
        mig=tuple(s.strip() for s in args.mig.split(",") if s.strip()) if args.mig else (),
        cpu_cores=args.cpu_cores,
    )
    plan = make_plan(
        profiles,
        args.demand,
        p99_ms=args.latency_p99_ms,
        hardware=hardware,
        threshold=args.interference_threshold,
        memory_margin=args.memory_margin,
    )
    repositories = not args.no_repository
    if repositories and args.flavour == "embedded":
        from hepinfer.models.architectures import build_all

        build_all(sorted({p.model for p in plan.placements}))
    written = write_plan(plan, args.out, flavour=args.flavour, repositories=repositories)
    print(written["markdown"])
    print(f"written: {written['md']}, {written['json']}, {written['png']}", flush=True)
    return 0 if plan.feasible else 1


def register(sub) -> None:
    from hepinfer.operations.planning.plan_data import MEMORY_MARGIN, THRESHOLD

    s = sub.add_parser(
        "plan",
        help="choose serving configurations from profiles and place them on devices for a demand",
        description=__doc__,
    )
    s.add_argument("--profile", action="append", required=True, help="a profile JSON (hepinfer profile); repeatable")
    s.add_argument("--demand", required=True, help="rows/s per model, e.g. particlenet=20000,bdt=50000")
    s.add_argument("--latency-p99-ms", type=float, default=None, help="p99 latency limit (default: none)")
    s.add_argument("--gpus", type=int, default=None, help="GPUs (default: 1 with a GPU profile, else 0)")
    s.add_argument("--gpu-memory", default=None, help="memory of each GPU, e.g. 80GB (default: the profiled GPU's)")
    s.add_argument("--mig", default=None, help="MIG slices of each GPU, e.g. 3g.40gb,3g.40gb (figures modelled)")
    s.add_argument("--cpu-cores", type=int, default=None, help="CPU cores for CPU instances (default: profiled host's)")
    s.add_argument(
        "--interference-threshold",
        type=float,
        default=THRESHOLD,
        help=f"models slowed by more than this together are not placed on one device (default {THRESHOLD})",
    )
    s.add_argument(
        "--memory-margin",
        type=float,
        default=MEMORY_MARGIN,
        help=f"share of each device's memory kept free ({MEMORY_MARGIN})",
    )
    s.add_argument("--flavour", choices=("embedded", "production"), default="embedded", help="repository flavour")
    s.add_argument("--out", default="plan", help="folder of the repositories and plan files (default plan)")
    s.add_argument("--no-repository", action="store_true", help="write the plan files only, no model repository")
    s.set_defaults(func=cmd_plan)
