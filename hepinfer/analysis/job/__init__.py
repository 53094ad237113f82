"""``hepinfer run``: the main job.  TopTagProcessor over NanoAOD / PFNano files with coffea's
processor.Runner, on the executor and cluster asked for, inference local or on Triton; a JSON
summary and mplhep plots.

Choices (the docs' *Main job* page repeats them):

* The run's inference settings are one :class:`~hepinfer.config.InferenceConfig`
  (``JobSettings.config``), read from the command line and the environment once, at the start
  (:func:`~hepinfer.analysis.job.settings.job_config`); the workers receive it pickled into their
  tasks and read no ``HEPINFER_*`` setting themselves (hepinfer.analysis.clusters).
* ``--mode remote`` or ``auto`` without a URL (neither ``--url`` nor ``HEPINFER_URL``) starts the
  embedded Triton server for the job and stops it at the end: on 127.0.0.1 for workers on this
  host; for workers on other hosts (a scheduler's, HTCondor's) on the address this host uses
  towards them, or ``--server-host``, with a token made for the run (hepinfer.analysis.job.access).
* Each worker checks the server's URL when it joins: in remote mode a run whose workers cannot reach
  it stops before its first chunk, naming the URL and the workers; in auto mode they score locally
  and the summary's ``unreachable`` says which worker could not reach what.
* The files are checked before any work: each must open (TTree or RNTuple) and hold the tree.
  ``models=None`` (the default) scores every model with trained weights whose inputs all the files
  hold, and lists the others as skipped with the reason; models named by the user must run on every
  file, else the run fails naming the file, the model and its missing branches.
* The embedded server gets one model instance per worker, up to the machine's cores (a single
  instance serialises the workers' requests; ``--server-instances`` overrides).
* Wall time and events/s cover ``Runner`` only (reading, features, inference, histograms); server and
  cluster start-up, and the workers' imports (hepinfer.analysis.clusters.warm_up), are reported apart, as
  ``setup_s``.
* The mode actually used is counted per scored jet on the workers (TopTagProcessor's ``inference``
  output), so an ``auto`` run that fell back part-way says so ("mixed").
* The summary is written only when the run is complete, through a temporary file and a rename:
  a failed run leaves no summary that looks complete.
* In remote and auto mode the summary's ``serving`` says, per model, what the server computes it
  with (engine, device, precision, compiled), read from the server's model config
  (hepinfer.runtime.discovery.served_engines); precision ``unknown`` where the server does not say.
* ``check_local`` runs the same job again with local inference on the same executor and compares
  every jet's score, model by model (hepinfer.analysis.job.agreement): the largest absolute score difference and
  the fraction of jets whose tag flips at the threshold.  A model served at full precision must agree
  to 1e-5 with no flip (the local/remote toggle must change nothing); a model the server runs in
  reduced precision or compiled is reported, not checked.  ``identical`` says whether histograms and
  cut flow are bin for bin the same.
* The fat jets selected: by default those inside the chosen models' validity domains
  (``ModelSpec.domain``; the smallest pT range and ``|eta|`` cut holding them all, no cut when a model
  declares none); ``pt_min`` / ``pt_max`` / ``eta_max`` replace one bound each
  (hepinfer.analysis.selection).  Each model scores the selected jets inside its own domain; the others
  are counted per model (``outside_domain``), and the summary gives the counts by pT bin.
* Where the files store CMS's top taggers, the summary gives each model's Spearman rank correlation
  with each of them over the jets both scored (hepinfer.analysis.cms_compare), and the plots a scatter of
  the two scores per model.
* RNTuple files are read like TTrees, through processor.Runner's virtual chunks with every executor
  (coffea's dask mode, ``NanoEventsFactory.from_root(..., mode="dask")``, does not open them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import replace

from hepinfer import figures as plotting
from hepinfer.analysis.cms_compare import pair_array
from hepinfer.analysis.job.access import ServerAccess, server_access, stop_if_unreachable, token_in_environment
from hepinfer.analysis.job.agreement import compare_scores, local_check
from hepinfer.analysis.job.execute import Progress, executor_for, process, server_instances
from hepinfer.analysis.job.inputs import check_inputs, inspect_inputs, required_branches, scan_inputs, select_models
from hepinfer.analysis.job.settings import (
    EXECUTORS,
    SCHEMAS,
    JobSettings,
    automatic_models,
    expand_inputs,
    job_config,
)
from hepinfer.analysis.job.summary import (
    RunResult,
    format_summary,
    hist_to_dict,
    make_summary,
    same_result,
    write_summary,
)
from hepinfer.config import InferenceConfig
from hepinfer.errors import HepinferError, InputMismatch, ServerUnavailable
from hepinfer.logs import get_logger

log = get_logger(__name__)

__all__ = [
    "EXECUTORS",
    "SCHEMAS",
    "JobSettings",
    "automatic_models",
    "Progress",
    "RunResult",
    "check_inputs",
    "compare_scores",
    "expand_inputs",
    "format_summary",
    "hist_to_dict",
    "inspect_inputs",
    "job_config",
    "local_check",
    "required_branches",
    "run_job",
    "same_result",
    "select_models",
    "write_summary",
]


def run_job(
    settings: JobSettings,
    output: str | os.PathLike | None = None,
    plots: str | os.PathLike | None = None,
    progress=None,
) -> RunResult:
    """Run the job; returns a RunResult (and writes the summary to ``output`` and plots to ``plots``).
    ``progress``: called with a :class:`Progress` after each round of chunks (the notebook panel)."""
    from hepinfer.models.architectures import build_all

    t_setup = time.perf_counter()
    requested = settings.models
    settings, events_in, skipped, choice = _usable_inputs(settings)
    build_all(settings.resolved, level=logging.DEBUG)
    with contextlib.ExitStack() as stack:
        config, access = _inference_server(settings, stack)
        embedded = access is not None
        url = config.url if config.mode != "local" else None
        if embedded:
            stack.enter_context(token_in_environment(access))
        executor, unreachable = stack.enter_context(executor_for(settings, config, access and access.token))
        stop_if_unreachable(unreachable, config)
        setup_s = time.perf_counter() - t_setup
        where = settings.executor if settings.executor != "dask" else f"dask on a {settings.cluster} cluster"
        log.info(
            f"processing with {settings.workers} worker(s) ({where}), chunks of {settings.chunksize} events, "
            f"inference {config.mode}{' at ' + url if url else ''} ..."
        )
        out, wall_s = process(settings, executor, config, progress, record_scores=settings.check_local)
        serving = _serving(url, settings.models, config) if url else None
        check = None
        if settings.check_local:
            log.info("processing again with local inference (--check-local) ...")
            local_out, local_s = process(settings, executor, config.replace(mode="local"), record_scores=True)
            cut = settings.threshold
            if settings.working_point:  # each model's threshold of that working point
                cut = {m.name: m.working_point_cut(settings.working_point) for m in settings.resolved}
            check = {
                **local_check(out, local_out, serving, cut),
                "wall_s": round(local_s, 3),
                "events_per_s": round(int(local_out["cutflow"]["events"]) / local_s, 2),
            }
    choice["models_requested"] = list(requested) if requested is not None else "auto"
    summary = make_summary(
        settings,
        out,
        url=url,
        embedded=embedded,
        server={**access.as_dict(), "unreachable": unreachable} if access else {"unreachable": unreachable},
        wall_s=wall_s,
        setup_s=setup_s,
        skipped=skipped,
        check=check,
        choice=choice,
        serving=serving,
    )
    if summary["events"] != events_in:
        raise InputMismatch(f"processed {summary['events']} events but the files hold {events_in}")
    if plots:
        pairs = {m: {t: pair_array(v) for t, v in per.items()} for m, per in out.get("pairs", {}).items()}
        figures = plotting.analysis_plots(
            out["hists"], plots, settings.models, cms_taggers=summary["cms_taggers"], pairs=pairs
        )
        summary["plots"] = [str(p) for p in figures]
    if output:
        write_summary(summary, output)
    return RunResult(summary, out["hists"])


def _usable_inputs(settings: JobSettings) -> tuple[JobSettings, int, dict[str, str], dict]:
    """The settings with only the good files (bad ones raise, or are skipped with
    ``skip_bad_files``) and the models to run (automatic: those every good file can feed), the number
    of events in the files, {skipped file: reason}, and for the summary ``skipped_models``
    {model: reason} and ``cms_taggers`` (CMS's own tagger scores the files carry)."""
    from hepinfer.analysis.processor import CMS_TAGGERS

    auto = settings.models is None
    models = settings.candidates  # resolved: the named models, or automatic mode's
    scan = scan_inputs(settings.inputs, models, settings.treename, deep=settings.skip_bad_files, require_all=not auto)
    bad, good = scan.bad, scan.good
    if bad and not settings.skip_bad_files:
        raise next(iter(bad.values()))
    for err in bad.values():
        log.info(f"skipping {err}")
    if bad and not good:
        raise InputMismatch(f"every input file is bad ({len(bad)} skipped); nothing to process")
    chosen, skipped_models = select_models(scan, models) if auto else (models, {})
    if not chosen:
        raise InputMismatch(
            "no model can run on every input file: "
            + "; ".join(f"{m}: {reason}" for m, reason in skipped_models.items())
        )
    settings = replace(settings, inputs=tuple(good), models=chosen)
    for m, reason in skipped_models.items():
        log.info(f"model {m} skipped: {reason}")
    skipped = {path: str(err) for path, err in bad.items()}
    log.info(
        f"{len(settings.inputs)} file(s), {scan.events} events; models {', '.join(settings.models)}"
        + (f"; {len(skipped)} bad file(s) skipped" if skipped else "")
    )
    found = [t for t in CMS_TAGGERS if any(f"FatJet_{t}" in names for names in scan.branches.values())]
    return settings, scan.events, skipped, {"skipped_models": skipped_models, "cms_taggers": found}


def _inference_server(
    settings: JobSettings, stack: contextlib.ExitStack
) -> tuple[InferenceConfig, ServerAccess | None]:
    """The run's config, and when the run starts the embedded server (``settings.embedded_server``;
    started on ``stack``, where the workers reach it: hepinfer.analysis.job.access) the access it was
    started with, the config pointed at it; else ``settings.config`` and None."""
    if not settings.embedded_server:
        return settings.config, None
    from hepinfer.serving.server import serve

    access = server_access(settings)
    server = stack.enter_context(
        serve(settings.models, instances=server_instances(settings), **access.server_options())
    )
    token = f", token in ${access.token_env}" if access.token else ""
    log.info(f"embedded Triton server ready in {server.startup_seconds:.2f} s at {server.url}{token}")
    return access.config(settings.config, server.url), access


def _serving(url: str, models, config) -> dict[str, dict]:
    """Per model, what the server at ``url`` computes it with (ServedEngine.as_dict()); a model whose
    config cannot be read gets engine, device and precision ``unknown`` and the reason in ``error``."""
    from hepinfer.runtime.discovery import ServedEngine, served_engine

    serving, unreachable = {}, None
    for model in models:
        try:
            if unreachable is not None:
                raise unreachable
            serving[model] = served_engine(url, model, config, timeout_s=config.probe_timeout_s).as_dict()
        except HepinferError as err:
            unreachable = err if isinstance(err, ServerUnavailable) else None
            log.warning(f"model {model}: what the server at {url} runs it with could not be read: {err}")
            unknown = ServedEngine(model, "unknown", "unknown", "unknown", declared=False)
            serving[model] = {**unknown.as_dict(), "error": str(err)}
    return serving
