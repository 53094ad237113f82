"""``hepinfer run``: the main job.  TopTagProcessor over NanoAOD / PFNano files with coffea's
processor.Runner, on the executor and cluster asked for, inference local or on Triton; a JSON
summary and mplhep plots.

Choices (the README repeats them):
* ``--mode remote`` or ``auto`` without a URL (neither ``--url`` nor ``HEPINFER_URL``) starts the
  embedded Triton server for the job and stops it at the end.
* The files are checked before any work: each must open, hold the tree, and have every branch the
  chosen models read (FatJet_*, FatJetPFCands_*, PFCands_*); the error names the file and branches.
* The embedded server gets one model instance per worker, up to the machine's cores (a single
  instance serialises the workers' requests; ``--server-instances`` overrides).
* Wall time and events/s cover ``Runner`` only (reading, features, inference, histograms); server and
  cluster start-up, and the workers' imports (hepinfer.cluster.warm_up), are reported apart, as
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
import glob
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .cluster import HTCondorSettings, dask_client, quiet_schema_warnings
from .config import InferenceConfig
from .errors import ConfigError, HepinferError, InputMismatch
from .features import REQUIRED_FIELDS
from .models import get_spec

EXECUTORS = ("iterative", "futures", "dask")
SCHEMAS = {"pfnano": "PFNanoAODSchema", "nanoaod": "NanoAODSchema"}
# coffea's NanoAOD schemas refuse files without the event ids; the rest link fat jets to candidates
STRUCTURE_BRANCHES = ("run", "luminosityBlock", "event", "nFatJet", "nFatJetPFCands", "FatJetPFCands_jetIdx",
                      "FatJetPFCands_pFCandsIdx", "nPFCands")
SELECTION_FIELDS = ("pt", "eta", "msoftdrop")  # TopTagProcessor's selection and mass histogram


@dataclass(frozen=True)
class JobSettings:
    """What ``hepinfer run`` does.  ``url=None`` with mode remote/auto: start the embedded server."""

    inputs: tuple[str, ...]
    models: tuple[str, ...] = ("particlenet", "bdt")
    mode: str = "remote"
    url: str | None = None
    executor: str = "dask"
    workers: int = 2
    cluster: str = "local"
    chunksize: int = 50_000
    schema: str = "pfnano"
    treename: str = "Events"
    threshold: float = 0.5
    check_local: bool = False
    server_instances: int = 0  # embedded server: instances per model; 0 = one per worker, up to the cores
    pipeline: bool = True  # overlap feature building with inference (TopTagProcessor's pipeline)
    skip_bad_files: bool = False  # read every file once first; skip (and list) those that fail
    base_config: InferenceConfig = field(default_factory=InferenceConfig)
    htcondor: HTCondorSettings = field(default_factory=HTCondorSettings)

    def __post_init__(self):
        object.__setattr__(self, "models", tuple(get_spec(m).name for m in self.models))
        if not self.models:
            raise ConfigError("--models: at least one model")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        if self.schema not in SCHEMAS:
            raise ConfigError(f"schema must be one of {tuple(SCHEMAS)}, got {self.schema!r}")
        if self.workers < 1 or self.chunksize < 1:
            raise ConfigError(f"workers and chunksize must be >= 1, got {self.workers} and {self.chunksize}")
        self.base_config.replace(mode=self.mode)  # validates the mode
        if not self.inputs:
            raise ConfigError("no input files")


def expand_inputs(patterns) -> tuple[str, ...]:
    """Files from paths and globs, in the order given; a pattern that matches nothing is an error."""
    files = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            hits = sorted(glob.glob(pattern))
            if not hits:
                raise ConfigError(f"--input {pattern}: no file matches")
            files += hits
        elif "://" in pattern:  # xrootd / http: uproot opens it
            files.append(pattern)
        else:
            if not os.path.isfile(pattern):
                raise ConfigError(f"--input {pattern}: no such file")
            files.append(os.path.abspath(pattern))
    return tuple(files)


def required_branches(models, schema: str = "pfnano") -> list[str]:
    """The branches hepinfer reads for ``models``.  PFNanoAODSchema links fat jets to their
    candidates through FatJet_nConstituents (without it ``FatJet.constituents`` fails)."""
    jet_fields, cons_fields = set(SELECTION_FIELDS), set()
    if schema == "pfnano":
        jet_fields.add("nConstituents")
    for m in models:
        j, c = REQUIRED_FIELDS[get_spec(m).name]
        jet_fields |= set(j)
        cons_fields |= set(c)
    return [*STRUCTURE_BRANCHES, *(f"FatJet_{f}" for f in sorted(jet_fields)), *(f"PFCands_{f}" for f in sorted(cons_fields))]


def check_inputs(files, models, treename: str = "Events", schema: str = "pfnano") -> int:
    """Open every file and check it has the tree and the branches ``models`` read, and that the
    branches' baskets lie inside the file (a truncated copy fails here); returns the total number
    of events.  The first bad file raises InputMismatch naming the file and what is wrong."""
    total, _, bad = inspect_inputs(files, models, treename, schema)
    if bad:
        raise next(iter(bad.values()))
    return total


def inspect_inputs(files, models, treename: str = "Events", schema: str = "pfnano", deep: bool = False):
    """``(events in the good files, good files, {bad file: InputMismatch})``.  ``deep`` also reads
    every needed branch of every file once, so corrupt (not only truncated) data is found before the
    run; ``--skip-bad-files`` uses it."""
    good, bad, total = [], {}, 0
    need = required_branches(models, schema)
    for path in files:
        try:
            total += _inspect_file(path, need, models, treename, schema, deep)
            good.append(path)
        except InputMismatch as err:
            bad[path] = err
    return total, good, bad


def _inspect_file(path, need, models, treename, schema, deep) -> int:
    import uproot

    try:
        with uproot.open(path) as f:
            if treename not in f:
                raise InputMismatch(f"{path}: no tree {treename!r} (has {sorted(k.split(';')[0] for k in f.keys())})")
            tree = f[treename]
            missing = [b for b in need if b not in tree]
            if missing:
                raise InputMismatch(
                    f"{path}: tree {treename!r} lacks the branches {missing}, needed by {', '.join(models)} "
                    f"with the {schema} schema (hepinfer reads NanoAOD/PFNano fat jets with their PF candidates: "
                    "FatJet_*, FatJetPFCands_*, PFCands_*)")
            size = os.path.getsize(path) if os.path.isfile(path) else None
            for name in need:
                branch = tree[name]
                n = branch.num_baskets
                seeks, nbytes = branch.member("fBasketSeek")[:n], branch.member("fBasketBytes")[:n]
                if size is not None and n and int(max(s + b for s, b in zip(seeks, nbytes))) > size:
                    raise InputMismatch(f"{path}: branch {name!r} has data beyond the end of the file "
                                        f"({size} bytes): the file is truncated")
            if deep:
                for start in range(0, tree.num_entries, 100_000):
                    for name in need:
                        try:
                            tree[name].array(entry_start=start, entry_stop=start + 100_000, library="np")
                        except Exception as err:  # noqa: BLE001 - decompression / deserialisation
                            raise InputMismatch(f"{path}: branch {name!r}, entries from {start}: cannot be read "
                                                f"({type(err).__name__}: {err})") from err
            return tree.num_entries
    except InputMismatch:
        raise
    except Exception as err:  # uproot / OS errors on unreadable or truncated files
        raise InputMismatch(f"{path}: cannot be read as a ROOT file: {type(err).__name__}: {err}") from err


def hist_to_dict(h) -> dict:
    """A hist.Hist as plain JSON: axes (categories or bin edges) and bin values."""
    import hist

    axes = []
    for ax in h.axes:
        entry = {"name": ax.name, "label": ax.label}
        if isinstance(ax, (hist.axis.StrCategory, hist.axis.IntCategory)):
            entry["categories"] = list(ax)
        else:
            entry["edges"] = [float(e) for e in ax.edges]
        axes.append(entry)
    return {"axes": axes, "values": h.values().tolist()}


def same_result(a: dict, b: dict) -> bool:
    """Identical cut flow and histograms (bin for bin, exactly)."""
    import numpy as np

    if {k: int(v) for k, v in a["cutflow"].items()} != {k: int(v) for k, v in b["cutflow"].items()}:
        return False
    return all(np.array_equal(a["hists"][k].values(), b["hists"][k].values()) for k in a["hists"])


def _mode_used(inference: dict) -> dict[str, str]:
    used = {}
    for model, counts in inference.items():
        remote, local = int(counts["remote_jets"]), int(counts["local_jets"])
        used[model] = "remote" if remote and not local else "local" if local and not remote else (
            f"mixed ({remote} remote, {local} local)" if remote else "no jets scored")
    return used


def _server_instances(settings: JobSettings) -> int:
    """One model instance per worker that can call at once, up to this machine's cores (more would
    only queue on the same cores).  Measured here (2 cores, 2 workers, ParticleNet + BDT): 1 instance
    79 events/s, 2 instances 107 events/s, local inference 108 events/s."""
    if settings.server_instances:
        return settings.server_instances
    callers = 1 if settings.executor == "iterative" else settings.workers
    return max(1, min(callers, os.cpu_count() or 1))


@contextlib.contextmanager
def _executor(settings: JobSettings, config: InferenceConfig):
    from coffea import processor

    # retries=0: coffea would re-run a failed chunk 3 more times (re-reading it); hepinfer's own
    # handling of server faults is at the inference call, where it costs no I/O.
    if settings.executor == "iterative":
        yield processor.IterativeExecutor(status=False, retries=0)
    elif settings.executor == "futures":
        yield processor.FuturesExecutor(workers=settings.workers, status=False, retries=0)
    else:
        with dask_client(settings.cluster, settings.workers, config=config, htcondor=settings.htcondor) as client:
            yield processor.DaskExecutor(client=client, status=False, retries=0)


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


def _process(settings: JobSettings, executor, config: InferenceConfig, progress=None):
    """Run the processor; with ``progress``, in rounds of two chunks per worker (one Runner call
    each, results accumulated), reporting a :class:`Progress` after each round."""
    from coffea import nanoevents, processor

    from .coffea import TopTagProcessor

    runner = processor.Runner(executor=executor, schema=getattr(nanoevents, SCHEMAS[settings.schema]),
                              chunksize=settings.chunksize)
    fileset = {"input": {"files": {f: settings.treename for f in settings.inputs}}}
    proc = TopTagProcessor(models=settings.models, config=config, threshold=settings.threshold,
                           pipeline=settings.pipeline)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        quiet_schema_warnings()
        try:
            if progress is None:
                out = runner(fileset, proc, treename=settings.treename)
            else:
                out = _in_rounds(runner, fileset, proc, settings, progress, t0)
        except Exception as err:
            raise _unwrapped(err) from None
    return out, time.perf_counter() - t0


def _in_rounds(runner, fileset, proc, settings: JobSettings, progress, t0: float):
    from coffea.processor import accumulate

    chunks = list(runner.preprocess(fileset, treename=settings.treename))
    if not chunks:  # files without events
        return runner(fileset, proc, treename=settings.treename)
    total = sum(c.entrystop - c.entrystart for c in chunks)
    step = 2 * (1 if settings.executor == "iterative" else settings.workers)
    out, done = None, 0
    for start in range(0, len(chunks), step):
        batch = chunks[start:start + step]
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
    import re

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
                "file first and process only the good ones")
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


@dataclass
class RunResult:
    """What a run gives back in Python: the summary (as written to JSON) and the hist.Hist objects."""

    summary: dict
    hists: dict

    def __str__(self) -> str:
        return format_summary(self.summary)

    def _repr_html_(self) -> str:
        s = self.summary
        head = (f"<p><b>{s['events']}</b> events in {s['wall_s']:.2f} s = <b>{s['events_per_s']:,.1f}</b> events/s "
                f"({s['workers']} worker(s), {s['executor']}{'/' + s['cluster'] if s['cluster'] else ''}); "
                f"mode requested <b>{s['mode_requested']}</b>; {s['fatjets_selected']} fat jets in the window</p>")
        rows = "".join(
            f"<tr><td>{m}</td><td>{s['fatjets_scored'][m]}</td><td>{s['tagged'][m]}</td>"
            f"<td class='hepinfer-mode-used'>{s['mode_used'][m]}</td><td>{s['inference'][m]['remote_jets']}</td>"
            f"<td>{s['inference'][m]['local_jets']}</td></tr>" for m in s["models"])
        table = ("<table class='hepinfer-result'><thead><tr><th>model</th><th>jets scored</th><th>tagged</th>"
                 "<th>mode used</th><th>remote jets</th><th>local jets (fallback or local)</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table>")
        return f"<div class='hepinfer-run'>{head}{table}</div>"


def run_job(settings: JobSettings, output: str | os.PathLike | None = None, plots: str | os.PathLike | None = None,
            log=print, progress=None) -> RunResult:
    """Run the job; returns a RunResult (and writes the summary to ``output`` and plots to ``plots``).
    ``progress``: called with a :class:`Progress` after each round of chunks (the notebook panel)."""
    from . import __version__
    from .models.build import build_all, weights_note

    t_setup = time.perf_counter()
    events_in, good, bad = inspect_inputs(settings.inputs, settings.models, settings.treename, settings.schema,
                                          deep=settings.skip_bad_files)
    if bad and not settings.skip_bad_files:
        raise next(iter(bad.values()))
    if bad:
        for path, err in bad.items():
            log(f"skipping {err}")
        if not good:
            raise InputMismatch(f"every input file is bad ({len(bad)} skipped); nothing to process")
        settings = replace(settings, inputs=tuple(good))
    skipped = {path: str(err) for path, err in bad.items()}
    log(f"{len(settings.inputs)} file(s), {events_in} events; models {', '.join(settings.models)}"
        + (f"; {len(skipped)} bad file(s) skipped" if skipped else ""))
    build_all(settings.models, log=lambda *_: None)
    url = settings.url or os.environ.get("HEPINFER_URL")
    with contextlib.ExitStack() as stack:
        server = None
        if settings.mode in ("remote", "auto") and not url:
            from .serving.server import serve

            server = stack.enter_context(serve(settings.models, instances=_server_instances(settings)))
            url = server.url
            log(f"embedded Triton server ready in {server.startup_seconds:.2f} s at {url}")
        config = settings.base_config.replace(mode=settings.mode, **({"url": url} if url else {}))
        executor = stack.enter_context(_executor(settings, config))
        setup_s = time.perf_counter() - t_setup
        where = settings.executor if settings.executor != "dask" else f"dask on a {settings.cluster} cluster"
        log(f"processing with {settings.workers} worker(s) ({where}), chunks of {settings.chunksize} events, "
            f"inference {settings.mode}{' at ' + url if settings.mode != 'local' else ''} ...")
        out, wall_s = _process(settings, executor, config, progress)
        check = None
        if settings.check_local:
            log("processing again with local inference (--check-local) ...")
            local_out, local_s = _process(settings, executor, config.replace(mode="local"))
            check = {"identical": same_result(out, local_out), "wall_s": round(local_s, 3),
                     "events_per_s": round(int(local_out["cutflow"]["events"]) / local_s, 2)}
    cutflow = {k: int(v) for k, v in out["cutflow"].items()}
    inference = {m: {k: int(v) for k, v in c.items()} for m, c in out["inference"].items()}
    used = _mode_used(inference)
    summary = {
        "hepinfer": __version__,
        "inputs": list(settings.inputs),
        "skipped_files": skipped,
        "models": {m: {"weights": weights_note(m)} for m in settings.models},
        "mode_requested": settings.mode,
        "mode_used": used,
        "url": url if settings.mode != "local" else None,
        "embedded_server": server is not None,
        "executor": settings.executor,
        "cluster": settings.cluster if settings.executor == "dask" else None,
        "workers": settings.workers,
        "chunksize": settings.chunksize,
        "events": cutflow["events"],
        "fatjets_selected": cutflow["selected_fatjets"],
        "fatjets_scored": {m: inference[m]["remote_jets"] + inference[m]["local_jets"] for m in settings.models},
        "tagged": {m: cutflow[f"tagged_{m}"] for m in settings.models},
        "inference": inference,
        "wall_s": round(wall_s, 3),
        "events_per_s": round(cutflow["events"] / wall_s, 2),
        "setup_s": round(setup_s, 3),
        "cutflow": cutflow,
        "settings": {"threshold": settings.threshold, "schema": settings.schema, "treename": settings.treename,
                     "htcondor": asdict(settings.htcondor) if settings.cluster == "htcondor" else None},
        "histograms": {name: hist_to_dict(h) for name, h in out["hists"].items()},
    }
    if check is not None:
        summary["local_check"] = check
    if cutflow["events"] != events_in:
        raise InputMismatch(f"processed {cutflow['events']} events but the files hold {events_in}")
    if plots:
        summary["plots"] = [str(p) for p in write_plots(out["hists"], plots, settings.models)]
    if output:
        write_summary(summary, output)
    return RunResult(summary, out["hists"])


def write_summary(summary: dict, path) -> Path:
    """Write JSON through a temporary file and a rename: the file exists only when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def write_plots(hists: dict, folder, models) -> list[Path]:
    """PNGs in the CMS style of mplhep: P(top) per model, and soft-drop mass of tagged / untagged
    jets per model.  Uses matplotlib's Figure directly (no pyplot: the notebook's backend is left alone)."""
    import mplhep as hep
    from matplotlib import style
    from matplotlib.figure import Figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with style.context(hep.style.CMS):
        fig = Figure(figsize=(8, 6))
        ax = fig.subplots()
        for m in models:
            hep.histplot(hists["score"][{"model": m}], ax=ax, label=m)
        ax.set_xlabel("P(top)")
        ax.set_ylabel("fat jets")
        ax.set_yscale("log")
        ax.legend(title="hepinfer")
        written.append(folder / "score.png")
        fig.savefig(written[-1], dpi=80, bbox_inches="tight")
        for m in models:
            fig = Figure(figsize=(8, 6))
            ax = fig.subplots()
            for tag in ("tagged", "untagged"):
                hep.histplot(hists["msoftdrop"][{"model": m, "tag": tag}], ax=ax, label=f"{tag}")
            ax.set_xlabel("soft-drop mass [GeV]")
            ax.set_ylabel("fat jets")
            ax.legend(title=m)
            written.append(folder / f"msoftdrop_{m}.png")
            fig.savefig(written[-1], dpi=80, bbox_inches="tight")
    return written


def format_summary(summary: dict) -> str:
    lines = [
        f"events {summary['events']} in {summary['wall_s']:.2f} s = {summary['events_per_s']:,.1f} events/s "
        f"({summary['workers']} worker(s), {summary['executor']}{'/' + summary['cluster'] if summary['cluster'] else ''}; "
        f"setup {summary['setup_s']:.1f} s)",
        f"fat jets in the tagging window: {summary['fatjets_selected']}",
        "| model | weights | jets scored | tagged | mode used |",
        "|---|---|---:|---:|---|",
    ]
    for m, info in summary["models"].items():
        lines.append(f"| {m} | {info['weights'].split()[0]} | {summary['fatjets_scored'][m]} | {summary['tagged'][m]} | "
                     f"{summary['mode_used'][m]} |")
    if summary["mode_requested"] != "local":
        inf = summary["inference"]
        total = {k: sum(int(inf[m].get(k, 0)) for m in inf) for k in ("calls", "retried_calls", "retries", "fallback_calls")}
        lines.append(f"scoring calls: {total['calls']}; retried: {total['retried_calls']} ({total['retries']} retries); "
                     f"fell back to local: {total['fallback_calls']}")
    for path, reason in summary.get("skipped_files", {}).items():
        lines.append(f"SKIPPED {reason}")
    if "local_check" in summary:
        c = summary["local_check"]
        lines.append(f"local inference, same job: {c['events_per_s']:,.1f} events/s; histograms and cut flow "
                     f"{'IDENTICAL' if c['identical'] else 'DIFFERENT'} to the {summary['mode_requested']} run")
    return "\n".join(lines)
