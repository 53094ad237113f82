"""Running the processor: the executor (iterative, futures, Dask), rounds of chunks with progress,
and coffea's wrapped chunk errors turned back into hepinfer's own."""

from __future__ import annotations

import contextlib
import os
import re
import time
import warnings
from dataclasses import dataclass

from hepinfer.analysis.clusters import dask_client
from hepinfer.analysis.job.settings import SCHEMAS, JobSettings
from hepinfer.analysis.schema_warnings import quiet_schema_warnings
from hepinfer.config import InferenceConfig
from hepinfer.errors import HepinferError, InputMismatch


def server_instances(settings: JobSettings) -> int:
    """One model instance per worker that can call at once, up to this machine's cores (more would
    only queue on the same cores; one instance would serialise the workers' requests: see the
    performance guide)."""
    if settings.server_instances:
        return settings.server_instances
    callers = 1 if settings.executor == "iterative" else settings.workers
    return max(1, min(callers, os.cpu_count() or 1))


@contextlib.contextmanager
def executor_for(settings: JobSettings, config: InferenceConfig, token: str | None = None):
    """The executor of the run, and {worker host: {"reason", "detail"}} of the workers that cannot use
    the server of ``config`` (remote and auto mode; hepinfer.analysis.server_reach): a Dask cluster's
    workers each check it when they join (and get ``token`` in their environment), the iterative
    and futures executors' processes are on this host and it is checked from here."""
    from coffea import processor

    from hepinfer.analysis.server_reach import check_here

    specs = [m.spec for m in settings.resolved]
    check = config.mode != "local"
    # retries=0: coffea would re-run a failed chunk 3 more times (re-reading it); hepinfer's own
    # handling of server faults is at the inference call, where it costs no I/O.
    if settings.executor == "iterative":
        yield processor.IterativeExecutor(status=False, retries=0), check_here(config, specs) if check else {}
    elif settings.executor == "futures":
        executor = processor.FuturesExecutor(workers=settings.workers, status=False, retries=0)
        yield executor, check_here(config, specs) if check else {}
    else:
        from hepinfer.analysis.worker_plugins import server_checked

        with dask_client(settings.cluster, settings.workers, htcondor=settings.htcondor) as client:
            executor = processor.DaskExecutor(client=client, status=False, retries=0)
            if not check:
                yield executor, {}
                return
            with server_checked(client, config, specs, token) as unreachable:
                yield executor, unreachable


@dataclass(frozen=True)
class Progress:
    """Where a run stands, given to ``run_job(progress=...)`` after each round of chunks."""

    chunks_done: int
    chunks_total: int
    events_done: int
    events_total: int
    elapsed_s: float
    round_s: float  # wall time of the last round
    round_events: int

    @property
    def events_per_s(self) -> float:
        return self.events_done / self.elapsed_s if self.elapsed_s > 0 else 0.0


def process(settings: JobSettings, executor, config: InferenceConfig, progress=None, record_scores: bool = False):
    """Run the processor; with ``progress``, in rounds of two chunks per worker (one Runner call
    each, results accumulated), reporting a :class:`Progress` after each round.  ``record_scores``:
    the output also holds every selected jet's score (``scores``, see :class:`ScoreRecorder`)."""
    from coffea import nanoevents, processor

    if record_scores:
        from hepinfer.analysis.job.recorder import ScoreRecorder as TopTagProcessor
    else:
        from hepinfer.analysis.processor import TopTagProcessor

    runner = processor.Runner(
        executor=executor, schema=getattr(nanoevents, SCHEMAS[settings.schema]), chunksize=settings.chunksize
    )
    fileset = {"input": {"files": {f: settings.treename for f in settings.inputs}}}
    proc = TopTagProcessor(
        models=settings.resolved,
        config=config,
        threshold=settings.threshold,
        pt_min=settings.pt_min,
        pt_max=settings.pt_max,
        eta_max=settings.eta_max,
        pipeline=settings.pipeline,
        working_point=settings.working_point,
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        quiet_schema_warnings()
        for message in _REAL_NANOAOD_NOTES:
            warnings.filterwarnings("ignore", message=message, category=RuntimeWarning)
        try:
            if progress is None:
                out = runner(fileset, proc, treename=settings.treename)
            else:
                out = _in_rounds(runner, fileset, proc, settings, progress, t0)
        except Exception as err:  # noqa: BLE001 - unwrapped into hepinfer's own error, or re-raised as it is
            raise _unwrapped(err) from None
    return out, time.perf_counter() - t0


# what coffea's NanoAOD schemas say of files written by CMS software (subjets or FSR photons the
# file does not store, photon masses they set to 0): notes on the file, not on the job
_REAL_NANOAOD_NOTES = (r"Missing cross-reference target", r"Branch \w+ already exists but its values will be replaced")


def _in_rounds(runner, fileset, proc, settings: JobSettings, progress, t0: float):
    from coffea.processor import accumulate

    chunks = list(runner.preprocess(fileset, treename=settings.treename))
    if not chunks:  # files without events
        return runner(fileset, proc, treename=settings.treename)
    total = sum(c.entrystop - c.entrystart for c in chunks)
    step = 2 * (1 if settings.executor == "iterative" else settings.workers)
    out, done = None, 0
    for start in range(0, len(chunks), step):
        batch = chunks[start : start + step]
        t_round = time.perf_counter()
        part = runner(batch, proc, treename=settings.treename)
        out = part if out is None else accumulate([out, part])
        n = sum(c.entrystop - c.entrystart for c in batch)
        done += n
        now = time.perf_counter()
        progress(Progress(start + len(batch), len(chunks), done, total, now - t0, now - t_round, n))
    return out


def _unwrapped(err: Exception) -> Exception:
    """coffea wraps a chunk's error in ``Exception("Failed processing file: WorkItem(...) The error
    was: ...")``; give back hepinfer's own error (ServerUnavailable with its URL, ...) with a note
    naming the file and entries, and anything else unchanged."""
    seen, cause = set(), err
    while cause is not None and id(cause) not in seen and not isinstance(cause, HepinferError):
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    where = re.search(r"filename='([^']*)'.*?entrystart=(\d+), entrystop=(\d+)", str(err))
    if not isinstance(cause, HepinferError):
        if where and _is_read_error(err):  # a file that opened but whose data cannot be read
            return InputMismatch(
                f"{where[1]}, entries {where[2]}-{where[3]}: the data cannot be read ({_root_cause(err)}); "
                "the file is probably corrupt. Rerun with --skip-bad-files (skip_bad_files=True) to read every "
                "file first and process only the good ones"
            )
        return err
    if where:
        cause.add_note(f"while processing {where[1]}, entries {where[2]}-{where[3]}")
    return cause


_READ_ERRORS = ("zlib", "lz4", "zstd", "decompress", "deserializ", "basket", "checksum")


def _root_cause(err: BaseException) -> str:
    seen = set()
    while (err.__cause__ or err.__context__) is not None and id(err) not in seen:
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"


def _is_read_error(err: BaseException) -> bool:
    text = (str(err) + " " + _root_cause(err)).lower()
    return any(w in text for w in _READ_ERRORS)
