"""Shared fixtures and helpers, and the quick tier.

The model artefacts and the server environment live in $HEPINFER_HOME (built by `./run.sh`,
or here on first use).  Integration tests share one real embedded Triton server per session, on
free loopback ports.

The tests are laid out like the package: ``core/`` (the package's top-level modules), ``analysis/``,
``ml/``, ``operations/``, ``panel/``, and here the checks of the whole repository (layers, docs,
notebooks, the quick tier).  Helpers that several folders use are fixtures here (a test module never
imports another one): ``free_port``, ``rewrite_file``, ``self_signed``, ``coffea_quiet``,
``open_events``, ``generated_files``, ``job_settings``, ``shipped_artefacts``; a folder's own
fixtures are in its conftest.py (``analysis/``: the test bed's hosts and the HTCondor pool;
``core/``: a tiny ONNX model and a server-only model).

The quick tier (``pytest -m quick``): every test that carries none of the markers in
``HEAVY_MARKERS`` and uses none of the fixtures in ``HEAVY_FIXTURES`` is marked ``quick`` at
collection; a test marked ``quick`` by hand that is heavy is a collection error.  While a quick test
runs, starting the embedded server, loading the event generator, building a network or importing
torch fails it (see ``_quick_tier_guard``): a test that needs one of them must carry the marker that
says so.  The guard sees this process only: a test that runs them in a subprocess (``hepinfer serve``,
``hepinfer generate``) carries its marker by hand.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import importlib.abc
import ipaddress
import os
import subprocess
import sys
import warnings

import pytest

import hepinfer
from hepinfer.models import SPECS

HEAVY_MARKERS = frozenset({"triton", "slow", "build", "htcondor", "hosts", "browser", "gpu"})
HEAVY_FIXTURES = frozenset({"server", "artefacts", "generated", "pfnano_events"})
TAGGERS = ("particlenet", "bdt")  # two models with shipped trained weights: PF candidates and jet variables


# ---------------------------------------------------------------------------------------------
# the quick tier


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "hosts: runs processes on the test bed's other hosts, network namespaces (tools/testbed-hosts; root)"
    )


def _heavy_reasons(item) -> list[str]:
    markers = sorted({m.name for m in item.iter_markers()} & HEAVY_MARKERS)
    fixtures = sorted(set(getattr(item, "fixturenames", ())) & HEAVY_FIXTURES)
    return [f"marker {m}" for m in markers] + [f"fixture {f}" for f in fixtures]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    wrong = []
    for item in items:
        heavy = _heavy_reasons(item)
        if item.get_closest_marker("quick") is not None:
            if heavy:
                wrong.append(f"{item.nodeid}: marked quick but uses {', '.join(heavy)}")
        elif not heavy:
            item.add_marker(pytest.mark.quick)
    if wrong:
        raise pytest.UsageError("quick tier:\n" + "\n".join(wrong))
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if gpu_items and not _cuda_available():
        skip = pytest.mark.skip(reason="no CUDA device: torch sees none on this machine")
        for item in gpu_items:
            item.add_marker(skip)


def _cuda_available() -> bool:
    """Whether torch sees a CUDA device, asked in a subprocess: importing torch here would hide a
    quick test's torch import from the quick-tier guard."""
    if not os.path.exists("/dev/nvidiactl"):
        return False
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


class QuickTierViolation(AssertionError):
    """A quick test did something that only tests with a heavy marker may do."""


class _NoTorch(importlib.abc.MetaPathFinder):
    def __init__(self, violated):
        self.violated = violated

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            self.violated("imported torch")
        return None


@pytest.fixture(autouse=True)
def _quick_tier_guard(request, monkeypatch):
    """For quick tests: the embedded server, the event generator (Pythia / FastJet), building a
    network and importing torch raise, and the test fails at teardown even if the code under test
    swallowed the error."""
    if request.node.get_closest_marker("quick") is None:
        yield
        return
    from hepinfer.serving.server import EmbeddedServer

    generate = importlib.import_module("hepinfer.ml.generation.generate")  # the module, not the function
    build = importlib.import_module("hepinfer.models.architectures")

    seen = []

    def violated(what):
        message = (
            f"quick test {request.node.nodeid} {what}: give it the fixture or marker it needs "
            f"({', '.join(sorted(HEAVY_FIXTURES))}; {', '.join(sorted(HEAVY_MARKERS))})"
        )
        seen.append(message)
        raise QuickTierViolation(message)

    def refuse(what):
        return lambda *args, **kwargs: violated(what)

    monkeypatch.setattr(EmbeddedServer, "start", refuse("started the embedded Triton server"))
    # generate() and generate_many() load Pythia and FastJet through _imports (bad settings are
    # refused before, without the generator)
    monkeypatch.setattr(generate, "_imports", refuse("ran the event generator"))
    for name in ("_torch", "_build_network", "export_onnx"):  # build() of a shipped model needs no torch
        monkeypatch.setattr(build, name, refuse(f"built a network with torch ({name})"))
    finder = _NoTorch(violated)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
    if seen:
        pytest.fail(seen[0], pytrace=False)


@pytest.fixture(autouse=True)
def _no_inference_settings_from_the_shell(monkeypatch):
    """The ``HEPINFER_*`` inference settings and bearer tokens of the shell that runs the tests do not
    reach them: a test that wants one sets it."""
    from dataclasses import fields

    from hepinfer.config import env_var

    tokens = ["HEPINFER_TOKEN", "BEARER_TOKEN", "BEARER_TOKEN_FILE"]
    for name in [env_var(f.name) for f in fields(hepinfer.InferenceConfig)] + tokens:
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------------------------------
# session fixtures: artefacts, server, generated events


@pytest.fixture(scope="session")
def artefacts():
    from hepinfer.models.architectures import build_all

    return build_all(list(SPECS))


@pytest.fixture(scope="session")
def shipped_artefacts():
    """The trained artefacts that ship with the package (ParticleNet, the BDT), installed into the
    cache when missing: no torch, so quick tests may score with them locally."""
    from hepinfer.models.architectures import build
    from hepinfer.models.catalogue import shipped

    return {name: build(spec) for name, spec in SPECS.items() if shipped(spec) is not None}


@pytest.fixture(scope="session")
def server(artefacts):
    with hepinfer.serve() as srv:
        yield srv


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """A small fresh sample from the real generator (seeds never used for the shipped training):
    {"ttbar": path, "qcd": path}."""
    from hepinfer.ml.generation.generate import generate

    out = tmp_path_factory.mktemp("generated")
    return {
        "ttbar": generate("ttbar", 150, 11, out / "ttbar_11.root", progress=False),
        "qcd": generate("qcd", 150, 12, out / "qcd_12.root", progress=False),
    }


@pytest.fixture(scope="session")
def generated_files(generated):
    """The generated files as the strings a job takes: (ttbar, qcd)."""
    return tuple(str(generated[p]) for p in ("ttbar", "qcd"))


@contextlib.contextmanager
def _coffea_quiet():
    # coffea's PFNanoAODSchema warns (RuntimeWarning) about PFNano tables the generator does not
    # write; with filterwarnings = error that would fail the test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.fixture(scope="session")
def coffea_quiet():
    """A context manager that silences coffea's warnings about the PFNano tables we do not write."""
    return _coffea_quiet


def _open_events(path, schema="PFNanoAODSchema", mode="eager", steps=None):
    from coffea import nanoevents

    source = {str(path): {"object_path": "Events", "steps": steps} if steps else "Events"}
    with _coffea_quiet():
        return nanoevents.NanoEventsFactory.from_root(
            source, schemaclass=getattr(nanoevents, schema), mode=mode
        ).events()


@pytest.fixture(scope="session")
def open_events():
    """``open_events(path, schema="PFNanoAODSchema", mode="eager", steps=None)``: coffea NanoEvents of
    a generated file (``schema`` names a coffea.nanoevents schema; ``mode`` eager, virtual or dask;
    ``steps`` entry ranges, the dask partitions)."""
    return _open_events


@pytest.fixture(scope="session")
def pfnano_events(generated):
    """coffea NanoEvents (eager, PFNanoAODSchema) of the generated ttbar file."""
    return _open_events(generated["ttbar"])


@pytest.fixture(scope="session")
def job_settings(generated_files):
    """``job_settings(**fields)``: JobSettings for the generated (ttbar, qcd) files and the two
    trained taggers; the keywords set the other fields or replace those."""
    from hepinfer.analysis.job import JobSettings

    def make(**fields):
        return JobSettings(**{"inputs": generated_files, "models": TAGGERS, **fields})

    return make


# ---------------------------------------------------------------------------------------------
# small helpers


@pytest.fixture()
def free_port():
    """A TCP port free on 127.0.0.1 (nothing listens there)."""
    from hepinfer.serving.ports import free_ports

    (port,) = free_ports("127.0.0.1", 1)
    return port


def _rewrite(src, dst, drop=(), cast=None):
    """A copy of a NanoAOD file without the branches ``drop`` names (or starts with, for "Jet_*"),
    with ``cast(name, array)`` applied to the rest; collections are written back as nX + X_*."""
    import awkward as ak
    import uproot

    from hepinfer.ml.generation.nanoaod import write_events

    with uproot.open(src) as f:
        tree = f["Events"]
        names = [k for k in tree.keys() if not any(k == d or (d.endswith("*") and k.startswith(d[:-1])) for d in drop)]
        arrays = tree.arrays(names)
    counters = {k for k in names if k.startswith("n") and any(j.startswith(k[1:] + "_") for j in names)}
    out, groups = {}, {}
    for k in names:
        prefix, _, field = k.partition("_")
        col = cast(k, arrays[k]) if cast else arrays[k]
        if k in counters:
            continue
        if "n" + prefix in counters:
            groups.setdefault(prefix, {})[field] = col
        else:
            out[k] = col
    out.update({prefix: ak.zip(cols) for prefix, cols in groups.items()})
    write_events(dst, out)
    return dst


@pytest.fixture(scope="session")
def rewrite_file():
    """``rewrite_file(src, dst, drop=(), cast=None)``: a copy of a NanoAOD file without the branches
    ``drop`` names (a trailing "*" matches a prefix), with ``cast(name, array)`` applied to the rest."""
    return _rewrite


def _self_signed(directory, addresses=()):
    """A self-signed certificate for localhost / 127.0.0.1 and ``addresses`` (IP addresses; also its own
    CA) and its key, written to ``directory``: (server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost")]
                + [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", *addresses)]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture(scope="session")
def self_signed():
    """``self_signed(directory, addresses=())``: a self-signed certificate for localhost, 127.0.0.1 and
    the IP ``addresses`` (its own CA) and its key, written to ``directory``; returns (cert path, key path)."""
    return _self_signed
