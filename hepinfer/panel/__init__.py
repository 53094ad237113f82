"""The notebook control panel: ``hepinfer.panel.panel(session, inputs=[...])``.

It edits one thing, the :class:`hepinfer.Session` that scoring reads: the Local / Remote / Auto
toggle and the server URL call ``session.set(...)``, and code that changes the session is shown in
the panel.  Anything given the session (``TopTagProcessor(config=session)``, ``JetTagger``) uses the
new settings from its next call on, in this kernel and (through pickling, which carries the config
of that moment) on Dask workers for every run submitted afterwards.  Switching modes changes no
number while the server runs the models in full precision (the embedded server's default engine is
the same as local inference's).  The status line says what the server computes each model with
(engine, device, precision, read from its model config), and, when the URL is a fleet's, its
replicas and recent decisions (:mod:`.panel_fleet`); a server started with
``engine="torch", precision="bf16"`` (``serve_options``) gives other scores, and a run with
"compare with local" (``check_local``) shows by how much: the largest score difference and the
fraction of tags flipped, per model.  The fat-jet selection (pT min / max, ``|eta|`` max) left empty
comes from the chosen models' validity domains (:mod:`.selection`).  ``serve_options={"repository":
DIR}`` makes "Start server" serve that Triton repository as it is, every model of it
(:mod:`hepinfer.serving.foreign`), instead of the chosen models.

Nothing here blocks the kernel: server start / stop and runs happen in background threads, and the
server status is refreshed by a daemon thread every ``refresh_s`` seconds (``refresh_s=0``: only
on demand, ``panel.refresh()``).  ``panel.run()`` runs from code and returns the RunResult;
``panel.wait()`` joins a run started by the button.
"""

from __future__ import annotations

import html
import threading
import time

from hepinfer.analysis.job.settings import EXECUTORS, model_choices
from hepinfer.analysis.selection import SELECTION_FIELDS, bound_from_text
from hepinfer.config import MODES
from hepinfer.errors import HepinferError
from hepinfer.figures import throughput_png
from hepinfer.panel.fleet_view import find_fleet, fleet_html
from hepinfer.session import Session

MODE_BUTTONS = tuple((mode.capitalize(), mode) for mode in MODES)


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as err:  # the optional extra
        raise HepinferError("the panel needs ipywidgets: pip install 'hepinfer[notebook]'") from err
    return ipywidgets


def probe_runtime(config, models, timeout_s: float):
    """A TritonRuntime for the server of ``config`` that asks at most ``timeout_s``, made for the first
    of ``models`` (names, resolved here; ``bdt`` when none): its connection asks about every model."""
    from hepinfer.models.resolved import resolve
    from hepinfer.runtime.triton import TritonRuntime

    return TritonRuntime(resolve(next(iter(models), "bdt")), config=config.replace(timeout_s=timeout_s))


def server_status(config, models, timeout_s: float = 1.0, runtime=None) -> dict:
    """Live, ready, which of ``models`` are ready, the round trip of a liveness call (ms), and what
    the server computes each ready model with (``serving``: {model: ServedEngine.as_dict()}), for
    the server of ``config`` (an InferenceConfig: URL, TLS and headers as scoring uses them).
    ``runtime``: a TritonRuntime for that config to reuse (the panel keeps one, so a refresh every
    few seconds does not open a new connection); without one, a temporary one is made and closed."""
    status = {
        "url": config.url,
        "live": False,
        "ready": False,
        "models": {},
        "rtt_ms": None,
        "error": None,
        "serving": {},
    }
    own = runtime is None
    if own:
        runtime = probe_runtime(config, models, timeout_s)
    kw = {"headers": runtime.request_headers()}
    if runtime.url.protocol == "grpc":
        kw["client_timeout"] = timeout_s
    try:
        client = runtime.client
        t0 = time.perf_counter()
        status["live"] = bool(client.is_server_live(**kw))
        status["rtt_ms"] = (time.perf_counter() - t0) * 1e3
        status["ready"] = bool(client.is_server_ready(**kw))
        for m in models:
            try:
                status["models"][m] = bool(client.is_model_ready(m, **kw))
            except Exception:  # noqa: BLE001 - an unknown model is not ready
                status["models"][m] = False
        status["serving"] = _serving(runtime, [m for m, ok in status["models"].items() if ok], timeout_s)
    except Exception as err:  # noqa: BLE001 - any failure to reach the server means "not live"
        status["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
    finally:
        if own:
            runtime.close()
    return status


def _serving(runtime, models, timeout_s: float) -> dict:
    from hepinfer.runtime.discovery import served_engine

    out = {}
    for m in models:
        try:
            out[m] = served_engine(runtime, m, timeout_s=timeout_s).as_dict()
        except HepinferError:  # the status still shows the model as ready, without its engine
            continue
    return out


def _model_html(model: str, ready: bool, serving: dict | None) -> str:
    text = f"{html.escape(model)} {'✓' if ready else '✗'}"
    if serving:
        what = f"{serving['engine']} {serving['device']} {serving['precision']}"
        what += " compiled" if serving["compiled"] else ""
        reduced = str(serving["reduced"]).lower()
        text += f" <span class='hepinfer-serving' data-reduced='{reduced}'>({html.escape(what)})</span>"
    return text


def comparison_html(check: dict | None) -> str:
    """The last run's comparison with local inference (``local_check`` of its summary), per model."""
    if not check:
        return ""
    rows = "; ".join(
        f"{html.escape(m)}: largest |score difference| {c['max_abs_diff']:.3g}, "
        f"{100 * c['flip_fraction']:.2f}% of {c['jets']} tags flipped at {c.get('cut', check['cut']):.4g}"
        + (" (reduced precision)" if c["reduced"] else "" if c["agrees"] else " DIFFERS")
        for m, c in check["models"].items()
    )
    return f"<br><span class='hepinfer-comparison'>vs local inference: {rows}</span>"


def status_html(status: dict, check: dict | None = None) -> str:
    """The status line; ``check``: the last run's ``local_check``, shown under it."""
    dot = "#2a2" if status["live"] and status["ready"] else "#c33"
    if not status["live"]:
        return (
            f"<span class='hepinfer-status' data-live='false'><b style='color:{dot}'>●</b> no server at "
            f"{html.escape(status['url'])}</span>"
        )
    serving = status.get("serving", {})
    models = ", ".join(_model_html(m, ok, serving.get(m)) for m, ok in status["models"].items())
    return (
        f"<span class='hepinfer-status' data-live='true'><b style='color:{dot}'>●</b> "
        f"{html.escape(status['url'])}: live, {'ready' if status['ready'] else 'NOT ready'}; "
        f"models {models}; round trip {status['rtt_ms']:.1f} ms</span>{comparison_html(check)}"
    )


class Panel:
    """The control panel (an ipywidgets VBox in ``.widget``; the Panel displays as it)."""

    def __init__(
        self,
        session: Session | None = None,
        inputs=(),
        models=("particlenet", "bdt"),
        executor: str = "dask",
        workers: int = 2,
        chunksize: int = 100,
        refresh_s: float = 2.0,
        serve_options: dict | None = None,
        check_local: bool = False,
    ):
        w = _ipywidgets()
        self.session = session if session is not None else Session()
        config = self.session.config
        self.server = None
        self.serve_options = dict(serve_options or {})  # for hepinfer.serve(): engine, device, precision, ...
        self.result = None
        self.error: BaseException | None = None
        self.history: list = []
        self._run_thread: threading.Thread | None = None
        self._busy = threading.Lock()
        self._last_status: dict | None = None
        self._probe = None  # (config, TritonRuntime) reused by every status refresh of that config
        self._probe_lock = threading.Lock()  # refreshes come from the status thread and from callers

        self.mode = w.ToggleButtons(options=MODE_BUTTONS, value=config.mode, description="inference")
        self.url = w.Text(value=config.url, description="server URL", continuous_update=False)
        self.models = w.SelectMultiple(options=model_choices(), value=tuple(models), description="models", rows=4)
        self.start_button = w.Button(description="Start server", icon="play")
        self.stop_button = w.Button(description="Stop server", icon="stop", disabled=True)
        self.status = w.HTML(value="<span class='hepinfer-status'>status: not checked yet</span>")
        self.fleet = w.HTML()  # the fleet's replicas and decisions when the URL is a running fleet's
        self.inputs = w.Textarea(
            value="\n".join(map(str, inputs)), description="files", layout=w.Layout(width="90%", height="4em")
        )
        self.executor = w.Dropdown(options=EXECUTORS, value=executor, description="executor")
        self.workers = w.BoundedIntText(value=workers, min=1, max=256, description="workers")
        self.chunksize = w.BoundedIntText(value=chunksize, min=1, max=10_000_000, description="chunk size")
        self.check_local = w.Checkbox(value=check_local, description="compare with local")
        self.pt_min, self.pt_max, self.eta_max = (
            w.Text(placeholder="models' domains", description=label, layout=w.Layout(width="16em"))
            for label in SELECTION_FIELDS.values()
        )
        self.run_button = w.Button(description="Run", button_style="primary", icon="rocket")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="chunks")
        self.progress_text = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(max_width="620px"))
        self.message = w.HTML()
        self.results = w.HTML()
        self.results.add_class("hepinfer-panel-results")
        self.widget = w.VBox(
            [
                w.HTML("<b>hepinfer</b>"),
                self.mode,
                self.url,
                w.HBox([self.start_button, self.stop_button]),
                self.status,
                self.fleet,
                self.models,
                self.inputs,
                w.HBox([self.executor, self.workers, self.chunksize]),
                w.HBox([self.pt_min, self.pt_max, self.eta_max]),
                w.HBox([self.run_button, self.check_local]),
                w.HBox([self.progress, self.progress_text]),
                self.plot,
                self.message,
                self.results,
            ]
        )

        self.mode.observe(lambda change: self._set(mode=change["new"]), "value")
        self.url.observe(lambda change: self._set(url=change["new"]), "value")
        self.session.observe(self._show_config)
        self.start_button.on_click(lambda _b: self.start_server(wait=False))
        self.stop_button.on_click(lambda _b: self.stop_server())
        self.run_button.on_click(lambda _b: self.run(wait=False))
        self._stop_refresh = threading.Event()
        if refresh_s > 0:
            threading.Thread(target=self._refresh_loop, args=(refresh_s,), daemon=True, name="hepinfer-status").start()

    # -- settings ----------------------------------------------------------------------------------
    def _set(self, **changes) -> None:
        try:
            self.session.set(**changes)
            self.message.value = ""
        except HepinferError as err:  # e.g. a malformed URL: shown, the session keeps its settings
            self.message.value = f"<span style='color:#c33' class='hepinfer-error'>{html.escape(str(err))}</span>"

    def _show_config(self, config) -> None:
        if self.mode.value != config.mode:
            self.mode.value = config.mode
        if self.url.value != config.url:
            self.url.value = config.url

    # -- server ------------------------------------------------------------------------------------
    def start_server(self, wait: bool = True):
        """Start the embedded server with the chosen models and point the session at it."""

        def start():
            from hepinfer.serving.server import serve

            self.start_button.disabled = True
            self.message.value = "starting the embedded Triton server ..."
            try:
                # a repository of the serve options is served whole; else the models chosen here
                chosen = None if self.serve_options.get("repository") else self.models.value
                self.server = serve(chosen, **self.serve_options)
                self.session.set(url=self.server.url)
                served = ", ".join(self.server.served_models)
                self.message.value = f"server ready in {self.server.startup_seconds:.2f} s ({html.escape(served)})"
                self.stop_button.disabled = False
            except Exception as err:  # noqa: BLE001 - shown in the panel
                self.error = err
                self.start_button.disabled = False
                self.message.value = f"<span style='color:#c33' class='hepinfer-error'>{html.escape(str(err))}</span>"
            self.refresh()

        thread = threading.Thread(target=start, daemon=True, name="hepinfer-start")
        thread.start()
        if wait:
            thread.join()
        return self.server

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.stop_button.disabled = True
        self.start_button.disabled = False
        self.refresh()

    def refresh(self) -> dict:
        config = self.session.config
        timeout_s = min(1.0, config.probe_timeout_s)
        with self._probe_lock:
            if self._probe is None or self._probe[0] != config:
                self._close_probe()
                self._probe = (config, probe_runtime(config, self.models.value, timeout_s))
            status = server_status(config, self.models.value, timeout_s=timeout_s, runtime=self._probe[1])
        self._last_status = status
        self.status.value = status_html(status, self._last_check())
        self.fleet.value = fleet_html(find_fleet(config.url))
        return status

    def _last_check(self) -> dict | None:
        result = self.result
        return result.summary.get("local_check") if result is not None else None

    def _close_probe(self) -> None:
        if self._probe is not None:
            self._probe[1].close()
            self._probe = None

    def _refresh_loop(self, every_s: float) -> None:
        while not self._stop_refresh.wait(every_s):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001, S112 - a refresh must never kill the thread
                continue

    # -- runs --------------------------------------------------------------------------------------
    def job_settings(self):
        from hepinfer.analysis.job import JobSettings, expand_inputs

        config = self.session.config
        files = [line.strip() for line in self.inputs.value.splitlines() if line.strip()]
        return JobSettings(
            inputs=expand_inputs(files),
            models=self.models.value,
            config=config,
            embedded_server=False,  # the session's server (config.url)
            executor=self.executor.value,
            workers=self.workers.value,
            chunksize=self.chunksize.value,
            check_local=self.check_local.value,
            **{k: bound_from_text(getattr(self, k).value, getattr(self, k).description) for k in SELECTION_FIELDS},
        )

    def _on_progress(self, p) -> None:
        self.history.append(p)
        self.progress.max = p.chunks_total
        self.progress.value = p.chunks_done
        self.progress_text.value = (
            f"<span class='hepinfer-progress'>{p.chunks_done}/{p.chunks_total} chunks, "
            f"{p.events_done}/{p.events_total} events, {p.events_per_s:,.1f} events/s</span>"
        )
        self.plot.value = throughput_png(self.history)

    def run(self, wait: bool = True):
        """Run the job on the files with the session's settings; returns the RunResult (wait=True)."""
        from hepinfer.analysis.job import run_job

        def work():
            with self._busy:
                self.run_button.disabled = True
                self.history, self.result, self.error = [], None, None
                self.results.value = ""
                self.message.value = f"running with {self.session.config.mode} inference ..."
                try:
                    self.result = run_job(self.job_settings(), progress=self._on_progress)
                    self.results.value = self.result._repr_html_()
                    self.message.value = ""
                    if self._last_status is not None and self._last_check():  # the status shows the comparison
                        self.status.value = status_html(self._last_status, self._last_check())
                except Exception as err:  # noqa: BLE001 - shown in the panel, kept in .error
                    self.error = err
                    self.message.value = (
                        f"<span style='color:#c33' class='hepinfer-error'>"
                        f"{html.escape(type(err).__name__)}: {html.escape(str(err))}</span>"
                    )
                finally:
                    self.run_button.disabled = False

        self._run_thread = threading.Thread(target=work, daemon=True, name="hepinfer-run")
        self._run_thread.start()
        if wait:
            return self.wait()
        return None

    def wait(self, timeout_s: float | None = None):
        """Wait for the run in progress; returns its RunResult (or raises its error)."""
        if self._run_thread is not None:
            self._run_thread.join(timeout_s)
        if self.error is not None:
            raise self.error
        return self.result

    def close(self) -> None:
        self._stop_refresh.set()
        self.stop_server()
        with self._probe_lock:
            self._close_probe()
        self.widget.close()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def panel(session: Session | None = None, **kwargs) -> Panel:
    """The control panel for ``session`` (see :class:`Panel` for the keyword arguments)."""
    return Panel(session, **kwargs)
