"""``hepinfer run``: the main job (the example processor over NanoAOD / PFNano files)."""

from __future__ import annotations

import sys

from hepinfer.cli.arguments import model_list
from hepinfer.config import MODES


def cmd_run(args) -> int:
    from hepinfer.analysis.clusters import HTCondorSettings
    from hepinfer.analysis.job import JobSettings, expand_inputs, format_summary, job_config, run_job

    if args.input:
        inputs = expand_inputs(args.input)
    else:
        from hepinfer.ml.samples import demo_files

        inputs = tuple(str(p) for p in demo_files(args.events))
        print(f"no --input: the demo sample ({args.events} ttbar + {args.events} QCD generated events)")
    htcondor = HTCondorSettings(
        cores=args.htcondor_cores,
        memory=args.htcondor_memory,
        disk=args.htcondor_disk,
        death_timeout_s=args.htcondor_death_timeout_s,
        scheduler_host=args.scheduler_host,
        log_directory=args.htcondor_logs,
    )
    # explicit options > HEPINFER_* variables > this command's default mode, remote; no URL in either:
    # the embedded server (hepinfer.analysis.job.settings.job_config, the one read of the environment)
    config, embedded = job_config(mode=args.mode, url=args.url)
    settings = JobSettings(
        inputs=inputs,
        models=model_list(args.models) if args.models else None,  # None: automatic
        config=config,
        embedded_server=embedded,
        executor=args.executor,
        workers=args.workers,
        cluster=args.cluster,
        chunksize=args.chunksize,
        schema=args.schema,
        treename=args.treename,
        check_local=args.check_local,
        server_instances=args.server_instances,
        server_host=args.server_host,
        server_tls_cert=args.server_tls_cert,
        server_tls_key=args.server_tls_key,
        htcondor=htcondor,
        pipeline=not args.no_pipeline,
        skip_bad_files=args.skip_bad_files,
        working_point=args.working_point,
        pt_min=args.pt_min,
        pt_max=args.pt_max,
        eta_max=args.eta_max,
    )
    result = run_job(settings, output=args.output, plots=args.plots)
    print()
    print(format_summary(result.summary))
    print(f"\nsummary: {args.output}" + (f"; plots: {', '.join(result.summary['plots'])}" if args.plots else ""))
    check = result.summary.get("local_check")
    if check is not None and not check["passed"]:
        differ = [m for m, c in check["models"].items() if not (c["agrees"] or c["reduced"])]
        print(
            f"local and {settings.config.mode} inference DIFFER"
            + (f" beyond {check['tolerance']:g} for {', '.join(differ)}" if differ else " in the cut flow"),
            file=sys.stderr,
        )
        return 1
    return 0


def register(sub) -> None:
    from hepinfer.analysis.clusters import CLUSTERS
    from hepinfer.analysis.job.settings import EXECUTORS, SCHEMAS

    s = sub.add_parser("run", help="main job: the example processor over NanoAOD/PFNano files, summary + plots")
    s.add_argument(
        "--input",
        nargs="+",
        default=None,
        help="ROOT files or globs (default: the demo sample, generated once and cached)",
    )
    s.add_argument("--events", type=int, default=400, help="without --input: ttbar and QCD events each")
    s.add_argument(
        "--models",
        default=None,
        help="comma-separated model names, or all: each must run on every file. Default: automatic, every "
        "model with trained weights whose inputs the files hold; the others are listed as skipped",
    )
    s.add_argument(
        "--mode",
        default=None,
        choices=MODES,
        help="default $HEPINFER_MODE, else remote",
    )
    s.add_argument("--url", default=None, help="Triton server (default $HEPINFER_URL; none: start the embedded one)")
    s.add_argument("--executor", default="dask", choices=EXECUTORS)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument(
        "--cluster", default="local", help=f"{' | '.join(CLUSTERS)} | tcp://scheduler:port (with --executor dask)"
    )
    s.add_argument("--chunksize", type=int, default=50_000, help="events per chunk")
    s.add_argument("--schema", default="pfnano", choices=tuple(SCHEMAS))
    s.add_argument("--treename", default="Events")
    s.add_argument("--output", required=True, help="summary JSON")
    s.add_argument("--plots", default=None, help="folder for PNG plots")
    selection = (
        "default: from the chosen models' validity domains (pT 200-2500 GeV, abs(eta) < 2.4 for the shipped taggers)"
    )
    s.add_argument(
        "--pt-min", type=float, default=None, metavar="GEV", help=f"select fat jets with pT >= GEV ({selection})"
    )
    s.add_argument(
        "--pt-max", type=float, default=None, metavar="GEV", help="select fat jets with pT <= GEV (default: idem)"
    )
    s.add_argument(
        "--eta-max",
        type=float,
        default=None,
        help="select fat jets with abs(eta) < this (default: idem). Each model scores the selected jets inside its own "
        "domain and counts the others (outside_domain)",
    )
    s.add_argument(
        "--working-point",
        default=None,
        metavar="NAME",
        help="tag a jet when its score passes this working point of each model's card instead of 0.5: top@1%% or "
        "top@10%% (mistag rate), top@eff30%% or top@eff50%% (signal efficiency)",
    )
    s.add_argument(
        "--check-local",
        action="store_true",
        help="run again with local inference and compare every jet's score: models served at full precision "
        "must agree to 1e-5 with no tag flipped; for models the server runs in reduced precision or compiled, "
        "the largest score difference and the fraction of flipped tags are reported",
    )
    s.add_argument(
        "--server-instances",
        type=int,
        default=0,
        help="embedded server: instances per model (default: one per worker, up to the cores)",
    )
    s.add_argument(
        "--server-host",
        default=None,
        metavar="ADDRESS",
        help="embedded server: the address it listens on (default: 127.0.0.1 for workers on this host; with "
        "--cluster tcp://... or htcondor, the address this host uses towards the workers, and a token made for "
        "the run)",
    )
    s.add_argument(
        "--server-tls-cert", default=None, metavar="PEM", help="embedded server: gRPC over TLS with this certificate"
    )
    s.add_argument("--server-tls-key", default=None, metavar="PEM", help="embedded server: the certificate's key")
    s.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="read every input once first; skip the files that cannot be read, list them, finish the rest",
    )
    s.add_argument(
        "--no-pipeline",
        action="store_true",
        help="score each model's jets in one call after the other (no overlap of features and inference)",
    )
    s.add_argument("--htcondor-cores", type=int, default=1)
    s.add_argument("--htcondor-memory", default="2GB")
    s.add_argument("--htcondor-disk", default="1GB")
    s.add_argument("--htcondor-death-timeout-s", type=float, default=60.0)
    s.add_argument("--htcondor-logs", default=None, help="folder for the HTCondor jobs' logs")
    s.add_argument("--scheduler-host", default=None, help="HTCondor: address the scheduler listens on")
    s.set_defaults(func=cmd_run)
