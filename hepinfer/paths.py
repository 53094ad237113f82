"""Where hepinfer keeps what it builds: ``$HEPINFER_HOME`` (default ``~/.cache/hepinfer``).

$HEPINFER_HOME/models/<model>/<version>/<artefact>   built model files + manifest.json
$HEPINFER_HOME/server-env/                           the server's own Python environment
$HEPINFER_HOME/runs/<id>/                            embedded-server repositories and logs
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
