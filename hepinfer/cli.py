"""The ``hepinfer`` command.

    hepinfer setup                      build the model artefacts and the server environment
    hepinfer run [--input FILES] ...    main job: TopTagProcessor over files, local / remote / auto,
                                        on a Dask cluster; summary JSON and plots
    hepinfer bench models|configs|workers|peer|perf-analyzer|shm|load [--quick] [--out DIR]
                                        throughput vs batch / concurrency; server configurations;
                                        events/s vs Dask workers; hepinfer vs coffea.ml_tools
    hepinfer demo [--jets N]            per-model check: local vs embedded-Triton scores, jets/s
    hepinfer serve [--models ...]       run the embedded Triton server until SIGINT / SIGTERM
    hepinfer models build|list          build the artefacts into $HEPINFER_HOME / list the ModelSpecs
    hepinfer repo build --flavour embedded|production OUT
    hepinfer server setup               create the server's numpy<2 environment
    hepinfer generate --process ttbar|qcd --events N --seed S -o FILE.root [--files K --jobs J]
    hepinfer train particlenet|resnet50|bdt --sample FILES [--test FILES]
    hepinfer evaluate MODEL --sample FILES [--plot roc.png] [--mode remote --url URL]
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time

from .errors import HepinferError
from .models import SPECS


def _models(text: str | None) -> tuple[str, ...]:
    if not text or text == "all":
        return tuple(SPECS)
    return tuple(m.strip() for m in text.split(",") if m.strip())


def cmd_setup(args) -> int:
    from .models.build import build_all
    from .serving.environment import ensure_server_env

    build_all(_models(args.models), force=args.force)
    ensure_server_env()
    return 0


def cmd_demo(args) -> int:
    from .demo import compare, format_table

    rows = compare(_models(args.models), jets=args.jets, url=args.url, chunk=args.chunk, seed=args.seed,
                   events=args.events, toy=args.toy)
    print()
    print(format_table(rows))
    bad = [r.model for r in rows if not r.agree]
    if bad:
        print(f"\nlocal and remote scores DISAGREE for {', '.join(bad)}", file=sys.stderr)
        return 1
    print("\nlocal and remote scores agree to 1e-5 for every model")
    return 0


def cmd_run(args) -> int:
    from .cluster import HTCondorSettings
    from .config import InferenceConfig
    from .job import JobSettings, expand_inputs, format_summary, run_job

    if args.input:
        inputs = expand_inputs(args.input)
    else:
        from .demo import demo_files

        inputs = tuple(str(p) for p in demo_files(args.events))
        print(f"no --input: the demo sample ({args.events} ttbar + {args.events} QCD generated events)")
    htcondor = HTCondorSettings(cores=args.htcondor_cores, memory=args.htcondor_memory, disk=args.htcondor_disk,
                                death_timeout_s=args.htcondor_death_timeout_s,
                                scheduler_host=args.scheduler_host, log_directory=args.htcondor_logs)
    settings = JobSettings(
        inputs=inputs, models=_models(args.models), mode=args.mode, url=args.url, executor=args.executor,
        workers=args.workers, cluster=args.cluster, chunksize=args.chunksize, schema=args.schema,
        treename=args.treename, check_local=args.check_local, server_instances=args.server_instances,
        base_config=InferenceConfig.from_env(mode=args.mode), htcondor=htcondor, pipeline=not args.no_pipeline,
        skip_bad_files=args.skip_bad_files,
    )
    result = run_job(settings, output=args.output, plots=args.plots)
    print()
    print(format_summary(result.summary))
    print(f"\nsummary: {args.output}" + (f"; plots: {', '.join(result.summary['plots'])}" if args.plots else ""))
    check = result.summary.get("local_check")
    if check is not None and not check["identical"]:
        print("local and remote histograms DIFFER", file=sys.stderr)
        return 1
    return 0


def cmd_bench(args) -> int:
    """Each study prints its table and writes CSV / markdown (and PNG) into --out; --quick is the
    CI-sized version."""
    from .bench.harness import markdown

    if args.study == "models":
        from .bench.models import COLUMNS, ceiling, run_models

        quick = dict(models=("particlenet", "bdt"), batches=(1, 64), concurrency=(1, 2), duration_s=0.5)
        rows = run_models(out_dir=args.out, **(quick if args.quick else {}))
        print("\n" + markdown(rows, COLUMNS))
        print("\none-core ceiling (best local rows/s): " + ", ".join(f"{m} {v:,.0f}" for m, v in ceiling(rows).items()))
        return 0
    if args.study == "configs":
        from .bench.configs import COLUMNS, batching_gain, run_configs

        quick = dict(models=("bdt",), duration_s=1.0)
        rows = run_configs(out_dir=args.out, **(quick if args.quick else {}))
        print("\n" + markdown(rows, COLUMNS))
        print("\ndynamic batching on / off (target >= 2.0): "
              + ", ".join(f"{m} {g:.2f}" for m, g in batching_gain(rows).items()))
        return 0
    if args.study == "workers":
        from .bench.workers import COLUMNS, run_workers

        quick = dict(workers=(1, 2), models=("bdt",), chunksize=200)
        rows = run_workers(files=args.input, out_dir=args.out, **(quick if args.quick else {}))
        print("\n" + markdown(rows, COLUMNS))
        return 0
    if args.study == "perf-analyzer":
        from .bench.perf_analyzer import COLUMNS, agreement, run_perf_analyzer

        quick = dict(models=("bdt",), batches=(64,), concurrency=(1,), duration_s=1.0)
        full = dict(models=("particlenet", "resnet50", "bdt"), batches=(1, 64), concurrency=(1, 2))
        rows = run_perf_analyzer(out_dir=args.out, **(quick if args.quick else full))
        print("\n" + markdown(rows, COLUMNS))
        print("\nhepinfer / perf_analyzer rows/s: " + ", ".join(
            f"{m} b{b} c{c} {v:.2f}" for (m, b, c), v in agreement(rows).items()))
        return 0
    if args.study == "load":
        from .bench.load import COLUMNS, run_load

        quick = dict(clients=2, seconds=3.0)
        row = run_load(model="bdt" if args.quick else args.model,
                       batch=args.batch, url=args.url, out_dir=args.out,
                       **(quick if args.quick else dict(clients=args.clients, seconds=args.seconds)))
        print("\n" + markdown([row], COLUMNS))
        if row["errors"]:
            print(f"\n{row['errors']} errors; first: {row['first_error']}", file=sys.stderr)
        return 1 if row["errors"] else 0
    if args.study == "shm":
        from .bench.shm import COLUMNS, gains, run_shm

        rows = run_shm(out_dir=args.out, **(dict(models=("bdt",), duration_s=1.0) if args.quick else {}))
        print("\n" + markdown(rows, COLUMNS))
        print("\nsystem shared memory / gRPC rows/s: " + ", ".join(f"{m} {g:.2f}" for m, g in gains(rows).items()))
        return 0
    from .bench.peer import TARGET, run_peer

    quick = dict(repeats=1, max_chunks=3) if args.quick else dict(repeats=args.repeats, max_chunks=None)
    result = run_peer(args.model, files=args.input, events_per_chunk=args.events_per_chunk,
                      instances=args.server_instances, out_dir=args.out, **quick)
    print()
    print(result.table())
    print(f"\nhepinfer / coffea.ml_tools = {result.ratio:.2f} (target >= {TARGET:g}); wrote {args.out}/peer.csv, peer.md")
    return 0 if result.max_abs_diff <= 1e-5 else 1


def cmd_serve(args) -> int:
    from .serving.server import serve

    opts = dict(
        models=_models(args.models), host=args.host, grpc_port=args.grpc_port, http_port=args.http_port,
        metrics_port=args.metrics_port, instances=args.instances, threads=args.threads,
        dynamic_batching=not args.no_dynamic_batching, max_queue_delay_us=args.max_queue_delay_us,
    )
    if args.repository:
        opts["repository"] = args.repository
    stop = {"signal": None}

    def handler(signum, _frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        from .models.build import build_all

        if not args.repository:
            build_all(opts["models"])
        with serve(**opts) as server:
            print(f"hepinfer: Triton ready in {server.startup_seconds:.2f} s (pid {server.pid})", flush=True)
            print(f"  gRPC    {server.url}", flush=True)
            print(f"  HTTP    {server.http_url}", flush=True)
            print(f"  metrics {server.metrics_url}", flush=True)
            print(f"  models  {', '.join(server.options.models)}; log {server.log_path}", flush=True)
            print(server.url, flush=True)
            while stop["signal"] is None and server.is_running():
                time.sleep(0.2)
            if stop["signal"] is None:
                print(f"hepinfer: tritonserver exited unexpectedly; log {server.log_path}", file=sys.stderr)
                return 1
        print("hepinfer: server stopped", flush=True)
        return 0
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def cmd_models(args) -> int:
    if args.action == "list":
        for spec in SPECS.values():
            ins = ", ".join(f"{t.name}{tuple(['N', *t.shape])} {t.dtype}" for t in spec.inputs)
            outs = ", ".join(f"{t.name}{tuple(['N', *t.shape])}" for t in spec.outputs)
            print(f"{spec.name}: {spec.description}\n  inputs: {ins}\n  outputs: {outs}\n"
                  f"  max batch {spec.max_batch_size}, engine {spec.engine}")
        return 0
    from .models.build import build_all

    build_all(_models(args.models), force=args.force)
    return 0


def cmd_repo(args) -> int:
    from .serving.repository import RepositoryOptions, write_repository

    opts = RepositoryOptions(
        flavour=args.flavour, models=_models(args.models), instances=args.instances, gpu=args.gpu,
        dynamic_batching=not args.no_dynamic_batching, max_queue_delay_us=args.max_queue_delay_us,
        tensorrt=args.tensorrt, link_artefacts=False,
    )
    out = write_repository(args.out, opts)
    print(f"wrote {args.flavour} repository with {', '.join(opts.models)} to {out}")
    return 0


def cmd_server(args) -> int:
    from .serving.environment import ensure_server_env

    env = ensure_server_env()
    print(env.tritonserver)
    return 0


def cmd_generate(args) -> int:
    from .data.generate import generate, generate_many

    if args.files == 1 and "{seed}" not in args.output:
        out = generate(args.process, args.events, args.seed, args.output, progress=not args.no_progress)
        print(out)
        return 0
    seeds = range(args.seed, args.seed + args.files)
    for out in generate_many(args.process, args.events, seeds, args.output, jobs=args.jobs,
                             progress=not args.no_progress):
        print(out)
    return 0


def cmd_train(args) -> int:
    from .training import BDTSettings, TrainSettings, train

    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             device=args.device, max_minutes=args.max_minutes, progress=not args.no_progress)
    command = "hepinfer " + " ".join(shlex.quote(a) for a in (args.argv or sys.argv[1:]))
    train(args.model, args.sample, settings=settings, bdt_settings=BDTSettings(seed=args.seed),
          test=args.test, out_dir=args.out, max_jets=args.max_jets, command=command)
    return 0


def cmd_evaluate(args) -> int:
    from .training import evaluate

    result = evaluate(args.model, args.sample, artefact=args.artefact, mode=args.mode, url=args.url, plot=args.plot)
    if args.json:
        import json

        print(json.dumps(result, indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hepinfer", description="ML inference for collider analyses, local or on Triton")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("setup", help="build model artefacts and the server environment")
    s.add_argument("--models", default="all")
    s.add_argument("--force", action="store_true")
    s.set_defaults(func=cmd_setup)

    s = sub.add_parser("run", help="main job: the example processor over NanoAOD/PFNano files, summary + plots")
    s.add_argument("--input", nargs="+", default=None,
                   help="ROOT files or globs (default: the demo sample, generated once and cached)")
    s.add_argument("--events", type=int, default=400, help="without --input: ttbar and QCD events each")
    s.add_argument("--models", default="particlenet,bdt", help="comma-separated, or all")
    s.add_argument("--mode", default=os.environ.get("HEPINFER_MODE", "remote"), choices=("local", "remote", "auto"),
                   help="default $HEPINFER_MODE or remote")
    s.add_argument("--url", default=None, help="Triton server (default $HEPINFER_URL; none: start the embedded one)")
    s.add_argument("--executor", default="dask", choices=("iterative", "futures", "dask"))
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--cluster", default="local", help="local | htcondor | tcp://scheduler:port (with --executor dask)")
    s.add_argument("--chunksize", type=int, default=50_000, help="events per chunk")
    s.add_argument("--schema", default="pfnano", choices=("pfnano", "nanoaod"))
    s.add_argument("--treename", default="Events")
    s.add_argument("--output", required=True, help="summary JSON")
    s.add_argument("--plots", default=None, help="folder for PNG plots")
    s.add_argument("--check-local", action="store_true",
                   help="run again with local inference and check the histograms are identical")
    s.add_argument("--server-instances", type=int, default=0,
                   help="embedded server: instances per model (default: one per worker, up to the cores)")
    s.add_argument("--skip-bad-files", action="store_true",
                   help="read every input once first; skip the files that cannot be read, list them, finish the rest")
    s.add_argument("--no-pipeline", action="store_true",
                   help="score each model's jets in one call after the other (no overlap of features and inference)")
    s.add_argument("--htcondor-cores", type=int, default=1)
    s.add_argument("--htcondor-memory", default="2GB")
    s.add_argument("--htcondor-disk", default="1GB")
    s.add_argument("--htcondor-death-timeout-s", type=float, default=60.0)
    s.add_argument("--htcondor-logs", default=None, help="folder for the HTCondor jobs' logs")
    s.add_argument("--scheduler-host", default=None, help="HTCondor: address the scheduler listens on")
    s.set_defaults(func=cmd_run)

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

    s = sub.add_parser("demo", help="per-model check: score the same jets locally and on Triton, compare")
    s.add_argument("--models", default="all", help="comma-separated, default all")
    s.add_argument("--events", type=int, default=400, help="generated ttbar and QCD events each")
    s.add_argument("--toy", action="store_true", help="score toy arrays instead of generated jets")
    s.add_argument("--jets", type=int, default=2000, help="with --toy: jets per model")
    s.add_argument("--chunk", type=int, default=256, help="jets per scoring call")
    s.add_argument("--url", default=None, help="use this server instead of starting the embedded one")
    s.add_argument("--seed", type=int, default=1)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("serve", help="run the embedded Triton server (foreground)")
    s.add_argument("--models", default="all")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--grpc-port", type=int, default=0, help="0 = a free port")
    s.add_argument("--http-port", type=int, default=0)
    s.add_argument("--metrics-port", type=int, default=0)
    s.add_argument("--repository", default=None, help="serve this repository instead of writing one")
    s.add_argument("--instances", type=int, default=1)
    s.add_argument("--threads", type=int, default=1, help="engine threads per instance")
    s.add_argument("--no-dynamic-batching", action="store_true")
    s.add_argument("--max-queue-delay-us", type=int, default=100)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("models", help="build or list the models")
    s.add_argument("action", choices=("build", "list"))
    s.add_argument("--models", default="all")
    s.add_argument("--force", action="store_true")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("repo", help="write a Triton model repository")
    s.add_argument("action", choices=("build",))
    s.add_argument("out")
    s.add_argument("--flavour", choices=("embedded", "production"), default="embedded")
    s.add_argument("--models", default="all")
    s.add_argument("--instances", type=int, default=1)
    s.add_argument("--gpu", action="store_true", help="production: KIND_GPU instances")
    s.add_argument("--tensorrt", action="store_true", help="production: TensorRT accelerator for ONNX models")
    s.add_argument("--no-dynamic-batching", action="store_true")
    s.add_argument("--max-queue-delay-us", type=int, default=100)
    s.set_defaults(func=cmd_repo)

    s = sub.add_parser("generate", help="generate PFNano-shaped events with Pythia 8 + FastJet")
    s.add_argument("--process", required=True, choices=("ttbar", "qcd"))
    s.add_argument("--events", type=int, required=True, help="events per file")
    s.add_argument("--seed", type=int, required=True, help="seed of the first file (then seed+1, ...)")
    s.add_argument("-o", "--output", required=True, help="FILE.root, or a pattern with {seed} for several files")
    s.add_argument("--files", type=int, default=1, help="number of files, one seed each, made in parallel")
    s.add_argument("--jobs", type=int, default=None, help="parallel processes (default: cores)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("train", help="train a tagger on generated samples and export it with a model card")
    s.add_argument("model", choices=tuple(SPECS))
    s.add_argument("--sample", nargs="+", required=True, help="training files (globs), signal and background")
    s.add_argument("--test", nargs="+", default=None, help="independent files to evaluate the result on")
    s.add_argument("--epochs", type=int, default=20)
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--lr", type=float, default=3e-3)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--device", default="auto", help="auto | cpu | cuda")
    s.add_argument("--max-jets", type=int, default=None)
    s.add_argument("--max-minutes", type=float, default=None, help="bound the training time")
    s.add_argument("--out", default=None, help="folder for the artefact (default: the artefact cache)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="AUC and background rejection of a model on labelled samples")
    s.add_argument("model", choices=tuple(SPECS))
    s.add_argument("--sample", nargs="+", required=True)
    s.add_argument("--artefact", default=None, help="evaluate this file instead of the cached artefact")
    s.add_argument("--mode", default="local", choices=("local", "remote", "auto"))
    s.add_argument("--url", default=None)
    s.add_argument("--plot", default=None, help="write the ROC curve to this PNG")
    s.add_argument("--json", action="store_true", help="print the metrics as JSON")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("server", help="manage the server environment")
    s.add_argument("action", choices=("setup",))
    s.set_defaults(func=cmd_server)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    try:
        return args.func(args)
    except HepinferError as err:
        print(f"hepinfer: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
