"""Model names: the one rule a model's name follows (a folder of a model repository, a model on a
server), shared by declarations, server settings and the repository writer."""

from __future__ import annotations

import re

from hepinfer.errors import ConfigError

# Model and artefact names: a letter or digit, then letters, digits, '_', '-', '.'; never '..'.
SAFE_NAME = re.compile(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_model_name(name) -> str:
    """``name`` if it is safe as a folder name inside a model repository; ConfigError otherwise."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ConfigError(
            f"model name {name!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit (no '/', no '..')"
        )
    return name
