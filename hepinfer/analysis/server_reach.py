"""Whether a process reaches a run's inference server: for every model, one of its servers answers
with the model ready (the session a scoring call opens first, with its wait).  Each Dask worker asks
when it joins (:class:`~hepinfer.analysis.worker_plugins.ServerCheck`); the iterative and futures
executors' processes are on this host and are asked from here (:func:`check_here`)."""

from __future__ import annotations

import socket

from hepinfer.config import InferenceConfig
from hepinfer.errors import HepinferError, ModelNotFound, ServerError


def reach_problem(config: InferenceConfig, specs) -> tuple[str, str] | None:
    """None when, for every model of ``specs``, one of its servers (``config.url``, or its own:
    :func:`hepinfer.runtime.servers.endpoints`) answers this process with the model ready; else (why
    in a few words, the error's full text) of the first server of the first model without one."""
    from hepinfer.runtime.servers import endpoints

    for spec in specs:
        problems = []
        for ep in endpoints(spec, config):
            problems.append(_server_problem(config, spec, ep))
            if problems[-1] is None:
                break
        else:
            return problems[0]
    return None


def _server_problem(config: InferenceConfig, spec, ep) -> tuple[str, str] | None:
    from hepinfer.runtime.sessions import open_session
    from hepinfer.runtime.triton import TritonRuntime

    url = ep.server
    runtime = TritonRuntime(spec, url=ep.url, config=config, model_name=ep.model_name, model_version=ep.model_version)
    # the session a scoring call opens first, with its wait (a deployment scaling from zero starts on it)
    wait_s = config.session_timeout_s if config.mode == "remote" else config.probe_timeout_s
    try:
        open_session(runtime, wait_s, config.backoff, wait=config.retries > 0)
    except ServerError as err:
        if "lacks a header" in str(err):
            return f"is refused by {url} (its token is missing or wrong)", str(err)
        return f"gets an error from {url}", str(err)
    except ModelNotFound as err:  # not loaded, or not ready: the detail says which
        return f"finds model {ep.model_name} not ready at {url}", str(err)
    except HepinferError as err:  # the server is running: the client's advice to start one is cut
        return f"cannot reach {url}", str(err).split(". Start one with")[0].split(". Check the URL")[0]
    finally:
        runtime.close()
    return None


def check_here(config: InferenceConfig, specs) -> dict[str, dict]:
    """The check of :func:`reach_problem` from this process (the iterative and futures executors'
    workers are on this host): {"<host name> (this host)": {"reason", "detail"}} when it fails, else {}."""
    problem = reach_problem(config, specs)
    here = f"{socket.gethostname()} (this host)"
    return {} if problem is None else {here: {"reason": problem[0], "detail": problem[1]}}
