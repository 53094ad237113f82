"""``hepinfer run``: the main job.  TopTagProcessor over NanoAOD / PFNano files with coffea's
processor.Runner, on the executor and cluster asked for, inference local or on Triton; a JSON
summary and mplhep plots.

Choices (the docs' *Main job* page repeats them):

* ``--mode remote`` or ``auto`` without a URL (neither ``--url`` nor ``HEPINFER_URL``) starts the
  embedded Triton server for the job and stops it at the end.
* The files are checked before any work: each must open, hold the tree, and have every branch the
  chosen models read (FatJet_*, FatJetPFCands_*, PFCands_*); the error names the file and branches.
* The embedded server gets one model instance per worker, up to the machine's cores (a single
  instance serialises the workers' requests; ``--server-instances`` overrides).
* Wall time and events/s cover ``Runner`` only (reading, features, inference, histograms); server and
  cluster start-up, and the workers' imports (hepinfer.app.clusters.warm_up), are reported apart, as
  ``setup_s``.
* The mode actually used is counted per scored jet on the workers (TopTagProcessor's ``inference``
  output), so an ``auto`` run that fell back part-way says so ("mixed").
* The summary is written only when the run is complete, through a temporary file and a rename:
  a failed run leaves no summary that looks complete.
* ``check_local`` runs the same job again with local inference on the same executor and reports
  whether the histograms and cut flow are identical (the local/remote toggle must change nothing).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import replace

from ...errors import InputMismatch
from ...logs import get_logger
from .. import plotting
from .execute import Progress, executor_for, process, server_instances
from .inputs import check_inputs, inspect_inputs, required_branches
from .settings import EXECUTORS, SCHEMAS, JobSettings, expand_inputs
from .summary import RunResult, format_summary, hist_to_dict, make_summary, same_result, write_summary

log = get_logger(__name__)

__all__ = [
    "EXECUTORS",
    "SCHEMAS",
    "JobSettings",
    "Progress",
    "RunResult",
    "check_inputs",
    "expand_inputs",
    "format_summary",
    "hist_to_dict",
    "inspect_inputs",
    "required_branches",
    "run_job",
    "same_result",
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
    from ...models.build import build_all

    t_setup = time.perf_counter()
    settings, events_in, skipped = _usable_inputs(settings)
    build_all(settings.models, level=logging.DEBUG)
    with contextlib.ExitStack() as stack:
        url, embedded = _inference_server(settings, stack)
        config = settings.base_config.replace(mode=settings.mode, **({"url": url} if url else {}))
        executor = stack.enter_context(executor_for(settings, config))
        setup_s = time.perf_counter() - t_setup
        where = settings.executor if settings.executor != "dask" else f"dask on a {settings.cluster} cluster"
        log.info(
            f"processing with {settings.workers} worker(s) ({where}), chunks of {settings.chunksize} events, "
            f"inference {settings.mode}{' at ' + url if settings.mode != 'local' else ''} ..."
        )
        out, wall_s = process(settings, executor, config, progress)
        check = None
        if settings.check_local:
            log.info("processing again with local inference (--check-local) ...")
            local_out, local_s = process(settings, executor, config.replace(mode="local"))
            check = {
                "identical": same_result(out, local_out),
                "wall_s": round(local_s, 3),
                "events_per_s": round(int(local_out["cutflow"]["events"]) / local_s, 2),
            }
    summary = make_summary(
        settings, out, url=url, embedded=embedded, wall_s=wall_s, setup_s=setup_s, skipped=skipped, check=check
    )
    if summary["events"] != events_in:
        raise InputMismatch(f"processed {summary['events']} events but the files hold {events_in}")
    if plots:
        summary["plots"] = [str(p) for p in plotting.analysis_plots(out["hists"], plots, settings.models)]
    if output:
        write_summary(summary, output)
    return RunResult(summary, out["hists"])


def _usable_inputs(settings: JobSettings) -> tuple[JobSettings, int, dict[str, str]]:
    """The settings with only the good files (bad ones raise, or are skipped with
    ``skip_bad_files``), the number of events in them, and {skipped file: reason}."""
    events_in, good, bad = inspect_inputs(
        settings.inputs, settings.models, settings.treename, settings.schema, deep=settings.skip_bad_files
    )
    if bad and not settings.skip_bad_files:
        raise next(iter(bad.values()))
    for err in bad.values():
        log.info(f"skipping {err}")
    if bad and not good:
        raise InputMismatch(f"every input file is bad ({len(bad)} skipped); nothing to process")
    if bad:
        settings = replace(settings, inputs=tuple(good))
    skipped = {path: str(err) for path, err in bad.items()}
    log.info(
        f"{len(settings.inputs)} file(s), {events_in} events; models {', '.join(settings.models)}"
        + (f"; {len(skipped)} bad file(s) skipped" if skipped else "")
    )
    return settings, events_in, skipped


def _inference_server(settings: JobSettings, stack: contextlib.ExitStack) -> tuple[str | None, bool]:
    """The server URL of the run, and whether it is the embedded server started (on ``stack``) for it:
    mode remote / auto without a URL (neither ``url`` nor ``HEPINFER_URL``) starts one."""
    url = settings.url or os.environ.get("HEPINFER_URL")
    if settings.mode == "local" or url:
        return url, False
    from ...serving.server import serve

    server = stack.enter_context(serve(settings.models, instances=server_instances(settings)))
    log.info(f"embedded Triton server ready in {server.startup_seconds:.2f} s at {server.url}")
    return server.url, True
