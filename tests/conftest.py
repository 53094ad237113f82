"""Shared fixtures.

The model artefacts and the server environment live in $HEPINFER_HOME (built by `./run.sh`,
or here on first use).  Integration tests share one real embedded Triton server per session, on
free loopback ports.
"""

from __future__ import annotations

import pytest

import hepinfer
from hepinfer.models import SPECS


@pytest.fixture(scope="session")
def artefacts():
    from hepinfer.models.build import build_all

    return build_all(list(SPECS), log=lambda *_: None)


@pytest.fixture(scope="session")
def server(artefacts):
    with hepinfer.serve() as srv:
        yield srv
