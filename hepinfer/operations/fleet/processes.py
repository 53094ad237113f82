"""The fleet's helper processes (HAProxy, Prometheus): found on the PATH and run under hepinfer's guard.

Like tritonserver (:mod:`hepinfer.serving.server`), each runs under ``serving/guard.py`` in its own
process group, so it never outlives the Python process that started it: the guard stops it when
that process dies without cleaning up, and the kernel kills it when the guard dies.  ``stop()``
sends SIGTERM to the group, then SIGKILL.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import weakref
from pathlib import Path

from hepinfer.errors import ConfigError, ServerError
from hepinfer.serving.server import GUARD

# how to get each binary, said by the error when it is missing
INSTALL = {
    "haproxy": "apt-get install haproxy (Debian 12: HAProxy 2.6)",
    "prometheus": "apt-get install prometheus (Debian 12: Prometheus 2.42)",
}
# a variable that names the binary to use instead of the one on the PATH
OVERRIDE = {"haproxy": "HEPINFER_HAPROXY", "prometheus": "HEPINFER_PROMETHEUS"}
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # haproxy lives in /usr/sbin, often not on a user's PATH
_LIVE: weakref.WeakSet[GuardedProcess] = weakref.WeakSet()


def missing_binaries() -> list[str]:
    """The fleet's external binaries (haproxy, prometheus) that cannot be found here."""
    missing = []
    for name in ("haproxy", "prometheus"):
        try:
            find_binary(name)
        except ServerError:
            missing.append(name)
    return missing


def find_binary(name: str) -> Path:
    """The ``haproxy`` or ``prometheus`` executable; ServerError saying how to install it when missing."""
    variable = OVERRIDE[name]
    override = os.environ.get(variable)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise ConfigError(f"{variable}={override}: not an executable file")
        return Path(override)
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    found = shutil.which(name, path=search)
    if found is None:
        where = f" and {', '.join(_SBIN)}" if _SBIN else ""
        raise ServerError(
            f"the fleet needs the {name} binary, which is not installed (searched PATH{where}): "
            f"install it with `{INSTALL[name]}`, or set {variable} to its path"
        )
    return Path(found)


class GuardedProcess:
    """One helper process: ``command`` run under the guard, output appended to ``log_path``."""

    def __init__(self, name: str, command: list[str], log_path: Path, cwd: Path, env: dict | None = None):
        self.name, self.command, self.log_path, self.cwd, self.env = name, command, Path(log_path), cwd, env
        self.process: subprocess.Popen | None = None

    def start(self) -> GuardedProcess:
        guard = [sys.executable, "-I", str(GUARD), str(os.getpid()), "--"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                guard + [str(c) for c in self.command],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        _LIVE.add(self)
        return self

    @property
    def pid(self) -> int | None:
        """The guard's pid, also the process group's id: ``os.killpg(pid, ...)`` reaches the binary."""
        return self.process.pid if self.process else None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout_s``."""
        proc, self.process = self.process, None
        _LIVE.discard(self)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # a hung binary, or anything it left in its group
        except ProcessLookupError:
            pass
        proc.wait()

    def __repr__(self) -> str:
        state = f"running pid={self.pid}" if self.is_running() else "stopped"
        return f"<{self.name} {state} log={self.log_path}>"


@atexit.register
def _stop_all() -> None:
    for proc in list(_LIVE):
        proc.stop(timeout_s=5.0)
