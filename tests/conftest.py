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

    return build_all(list(SPECS))


@pytest.fixture(scope="session")
def server(artefacts):
    with hepinfer.serve() as srv:
        yield srv


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """A small fresh sample from the real generator (seeds never used for the shipped training):
    {"ttbar": path, "qcd": path}."""
    from hepinfer.app.data.generate import generate

    out = tmp_path_factory.mktemp("generated")
    return {
        "ttbar": generate("ttbar", 150, 11, out / "ttbar_11.root", progress=False),
        "qcd": generate("qcd", 150, 12, out / "qcd_12.root", progress=False),
    }


@pytest.fixture(scope="session")
def pfnano_events(generated):
    """coffea NanoEvents (eager, PFNanoAODSchema) of the generated ttbar file."""
    import warnings

    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # coffea warns about PFNano tables we do not write
        return NanoEventsFactory.from_root(
            {str(generated["ttbar"]): "Events"}, schemaclass=PFNanoAODSchema, mode="eager"
        ).events()
