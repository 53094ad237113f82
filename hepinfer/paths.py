"""Where hepinfer keeps what it builds: ``$HEPINFER_HOME`` (default ``~/.cache/hepinfer``).

$HEPINFER_HOME/models/<model>/<version>/<artefact>   built model files + manifest.json
$HEPINFER_HOME/server-env/                           the server's own Python environment
$HEPINFER_HOME/runs/<id>/                            embedded-server repositories and logs (newest 50 kept)
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("HEPINFER_HOME") or Path.home() / ".cache" / "hepinfer").expanduser()


def models_dir() -> Path:
    return home() / "models"


def artefact_dir(model: str, version: int = 1) -> Path:
    return models_dir() / model / str(version)


def server_env_dir() -> Path:
    return Path(os.environ.get("HEPINFER_SERVER_ENV") or home() / "server-env")


def runs_dir() -> Path:
    return home() / "runs"


KEEP_RUNS = 50  # embedded-server run folders kept (the newest); older ones are removed at a start
PID_FILE = "pid"  # in a run folder: the process that uses it (a folder whose process lives is kept)


def _in_use(folder: Path) -> bool:
    try:
        pid = int((folder / PID_FILE).read_text())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_run_dir(prefix: str) -> Path:
    """A fresh ``$HEPINFER_HOME/runs/<prefix><time>-<random>`` folder.  The newest
    :data:`KEEP_RUNS` folders of the same prefix are kept, older ones removed (their logs too) unless
    the process named in their :data:`PID_FILE` still runs (a server serving from it), so the runs
    folder does not grow without bound."""
    import shutil
    import tempfile
    import time

    root = runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    found = sorted(root.glob(f"{prefix}*"), key=lambda p: p.stat().st_mtime)
    for folder in found[: max(0, len(found) - KEEP_RUNS + 1)]:
        if not _in_use(folder):
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime(f"{prefix}%Y%m%d-%H%M%S-"), dir=root))
