"""``hepinfer bench STUDY``: the benchmark studies."""

from __future__ import annotations

import sys

from ..models import SPECS


def cmd_bench(args) -> int:
    """Each study prints its table and writes CSV / markdown (and PNG) into --out; --quick is the
    CI-sized version."""
    from ..app.bench.harness import markdown

    if args.study == "models":
        from ..app.bench.models import COLUMNS, ceiling, run_models

        quick = dict(models=("particlenet", "bdt"), batches=(1, 64), concurrency=(1, 2), duration_s=0.5)
        rows = run_models(out_dir=args.out, **(quick if args.quick else {}))
        print("\n" + markdown(rows, COLUMNS))
        print("\none-core ceiling (best local rows/s): " + ", ".join(f"{m} {v:,.0f}" for m, v in ceiling(rows).items()))
        return 0
    if args.study == "configs":
        from ..app.bench.configs import COLUMNS, batching_gain, run_configs

        quick = dict(models=("bdt",), duration_s=1.0)
        rows = run_configs(out_dir=args.out, **(quick if args.quick else {}))
        print("\n" + markdown(rows, COLUMNS))
        print(
            "\ndynamic batching on / off (target >= 2.0): "
            + ", ".join(f"{m} {g:.2f}" for m, g in batching_gain(rows).items())
        )
        return 0
    if args.study == "workers":
        from ..app.bench.workers import COLUMNS, run_workers

        quick = dict(workers=(1, 2), models=("bdt",), chunksize=200)
        rows = run_workers(files=args.input, out_dir=args.out, **(quick if args.quick else {}))
        print("\n" + markdown(rows, COLUMNS))
        return 0
    if args.study == "perf-analyzer":
        from ..app.bench.perf_analyzer import COLUMNS, agreement, run_perf_analyzer

        quick = dict(models=("bdt",), batches=(64,), concurrency=(1,), duration_s=1.0)
        full = dict(models=("particlenet", "resnet50", "bdt"), batches=(1, 64), concurrency=(1, 2))
        rows = run_perf_analyzer(out_dir=args.out, **(quick if args.quick else full))
        print("\n" + markdown(rows, COLUMNS))
        print(
            "\nhepinfer / perf_analyzer rows/s: "
            + ", ".join(f"{m} b{b} c{c} {v:.2f}" for (m, b, c), v in agreement(rows).items())
        )
        return 0
    if args.study == "load":
        from ..app.bench.load import COLUMNS, run_load

        quick = dict(clients=2, seconds=3.0)
        row = run_load(
            model="bdt" if args.quick else args.model,
            batch=args.batch,
            url=args.url,
            out_dir=args.out,
            **(quick if args.quick else dict(clients=args.clients, seconds=args.seconds)),
        )
        print("\n" + markdown([row], COLUMNS))
        if row["errors"]:
            print(f"\n{row['errors']} errors; first: {row['first_error']}", file=sys.stderr)
        return 1 if row["errors"] else 0
    if args.study == "shm":
        from ..app.bench.shm import COLUMNS, gains, run_shm

        rows = run_shm(out_dir=args.out, **(dict(models=("bdt",), duration_s=1.0) if args.quick else {}))
        print("\n" + markdown(rows, COLUMNS))
        print("\nsystem shared memory / gRPC rows/s: " + ", ".join(f"{m} {g:.2f}" for m, g in gains(rows).items()))
        return 0
    from ..app.bench.peer import TARGET, run_peer

    quick = dict(repeats=1, max_chunks=3) if args.quick else dict(repeats=args.repeats, max_chunks=None)
    result = run_peer(
        args.model,
        files=args.input,
        events_per_chunk=args.events_per_chunk,
        instances=args.server_instances,
        out_dir=args.out,
        **quick,
    )
    print()
    print(result.table())
    print(
        f"\nhepinfer / coffea.ml_tools = {result.ratio:.2f} (target >= {TARGET:g}); wrote {args.out}/peer.csv, peer.md"
    )
    return 0 if result.max_abs_diff <= 1e-5 else 1


def register(sub) -> None:
    s = sub.add_parser("bench", help="benchmarks: models | configs | workers | peer | perf-analyzer | shm | load")
    s.add_argument("study", choices=("models", "configs", "workers", "peer", "perf-analyzer", "shm", "load"))
    s.add_argument("--model", default="particlenet", choices=tuple(SPECS), help="peer, load: the model")
    s.add_argument("--clients", type=int, default=4, help="load: client processes")
    s.add_argument("--seconds", type=float, default=10.0, help="load: how long each client calls")
    s.add_argument("--batch", type=int, default=16, help="load: rows per request")
    s.add_argument("--url", default=None, help="load: a server already running on this machine (default: embedded)")
    s.add_argument("--input", nargs="+", default=None, help="peer, workers: files (default: the demo sample)")
    s.add_argument("--events-per-chunk", type=int, default=100)
    s.add_argument("--server-instances", type=int, default=2)
    s.add_argument("--repeats", type=int, default=2)
    s.add_argument("--quick", action="store_true", help="3 chunks, one pass (CI)")
    s.add_argument("--out", default="bench-out")
    s.set_defaults(func=cmd_bench)
