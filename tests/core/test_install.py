"""How hepinfer installs: ranges in pyproject.toml, the releases of constraints.txt inside them, one
xgboost wheel per extra, a lean base, run.sh's main job installing its own extras only, and an
install into an analyst's existing coffea environment (another coffea release than ours, the
`xgboost` wheel) that keeps every release there and scores identically locally and remotely."""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hepinfer.serving import environment

ROOT = Path(__file__).resolve().parents[2]
EXISTING_ENV = Path(__file__).resolve().parent / "data" / "existing_env"  # a user's script
REAL = ROOT.parent / "shared" / "realfiles"  # as tests/analysis/test_real_files.py finds them
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
XGBOOST_WHEELS = {"xgboost", "xgboost-cpu"}  # both install the `xgboost` module

# the analyst's environment: a coffea release other than the tested one, and the `xgboost` wheel
# (coffea 2026.7.0 imports yaml without declaring it: a working environment holds PyYAML)
THEIR_ENVIRONMENT = ("coffea==2026.7.0", "pyyaml", "xgboost==3.1.3")


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, release = line.partition("==")
            pins[canonicalize_name(name)] = release
    return pins


def _expand(extra: str) -> list[Requirement]:
    """The requirements of ``extra`` with the hepinfer[...] it names expanded, and the base."""
    seen, out, todo = set(), [Requirement(r) for r in PROJECT["dependencies"]], [extra]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in EXTRAS[name]:
            req = Requirement(text)
            if req.name == "hepinfer":
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def _names(requirements) -> set[str]:
    return {canonicalize_name(r.name) for r in requirements}


# -- pyproject.toml, constraints.txt, environment.yml ------------------------------------------------
def test_every_requirement_is_a_range_with_a_lower_bound():
    for text in PROJECT["dependencies"] + [r for reqs in EXTRAS.values() for r in reqs]:
        req = Requirement(text)
        if req.name == "hepinfer":
            continue
        operators = {spec.operator for spec in req.specifier}
        assert "==" not in operators and "===" not in operators, f"{text}: a pin (constraints.txt holds pins)"
        assert ">=" in operators, f"{text}: no lower bound"


def test_the_base_is_the_scoring_client():
    base = [Requirement(r) for r in PROJECT["dependencies"]]
    assert _names(base) == {"numpy", "tritonclient", "tomli-w"}  # tomli-w: model declarations, no dependencies
    assert next(r for r in base if r.name == "tritonclient").extras == {"grpc"}  # HTTP is the `http` extra
    for name, extra in {"prometheus-client": "serve", "pyyaml": "fleet"}.items():
        assert name in _names(_expand(extra))


def test_only_the_local_extras_choose_an_xgboost_wheel():
    """pip cannot express "either wheel": `local` takes xgboost, `local-cpu` xgboost-cpu, no other extra
    names one by itself (dev takes local-cpu), and no extra can end up with both."""
    assert _names(Requirement(r) for r in EXTRAS["local"]) & XGBOOST_WHEELS == {"xgboost"}
    assert _names(Requirement(r) for r in EXTRAS["local-cpu"]) & XGBOOST_WHEELS == {"xgboost-cpu"}
    for extra, reqs in EXTRAS.items():
        wheels = _names(_expand(extra)) & XGBOOST_WHEELS
        assert len(wheels) <= 1, f"{extra} installs both {sorted(wheels)}"
        if extra not in ("local", "local-cpu"):
            assert not _names(Requirement(r) for r in reqs) & XGBOOST_WHEELS, f"{extra} names an xgboost wheel"
    assert _names(_expand("dev")) & XGBOOST_WHEELS == {"xgboost-cpu"}


def test_the_constraints_pin_releases_inside_the_ranges():
    pins = _constraints()
    every = [Requirement(r) for r in PROJECT["dependencies"]] + [r for extra in EXTRAS for r in _expand(extra)]
    for req in every:
        release = pins.get(canonicalize_name(req.name))
        assert release is not None, f"{req.name} has no release in constraints.txt"
        assert req.specifier.contains(release, prereleases=True), f"constraints.txt: {req.name}=={release} not in {req}"


def test_the_server_environment_runs_the_tested_engine_releases():
    """Local and remote scores are identical when both sides run the same engine releases: the server's
    environment pins those of constraints.txt, and both local extras admit them."""
    pins, server = _constraints(), {}
    for text in environment.SERVER_REQUIREMENTS:
        req = Requirement(text)
        if req.name != "numpy":
            server[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    assert server == {"onnxruntime": pins["onnxruntime"], "xgboost-cpu": pins["xgboost-cpu"]}
    assert pins["xgboost"] == pins["xgboost-cpu"]
    for extra in ("local", "local-cpu"):
        for req in map(Requirement, EXTRAS[extra]):
            wanted = pins[canonicalize_name(req.name)]
            assert req.specifier.contains(wanted), f"{extra}: {req} excludes the tested {wanted}"


def test_environment_yml_agrees_with_pyproject():
    wanted = set(PROJECT["dependencies"]) | set(EXTRAS["local"])
    text = (ROOT / "environment.yml").read_text()
    listed = {line.strip()[2:].strip() for line in text.splitlines() if line.strip().startswith("- ")}
    listed = {item.replace("python=3.11", "") for item in listed}
    for req in wanted:
        assert req in listed, f"{req} from pyproject.toml is missing in environment.yml"


def test_run_sh_main_installs_what_the_main_job_needs_and_no_more():
    text = (ROOT / "run.sh").read_text()
    extras = re.search(r"^MAIN_EXTRAS=(\S+)$", text, re.M).group(1).split(",")
    names = set().union(*(_names(_expand(extra)) for extra in extras))
    needs = {"coffea", "dask", "distributed", "hist", "mplhep", "pythia8mc", "fastjet", "onnxruntime", "xgboost-cpu"}
    assert needs <= names, sorted(needs - names)
    assert not names & {"torch", "pyyaml", "jupyterlab", "pytest", "sphinx", "dask-jobqueue"}
    main = text[text.index("  main)") : text.index("  test)")]
    assert "fleet_tools" not in main and "constraints.txt" in text  # no haproxy / prometheus for the main job


# -- into an analyst's existing coffea environment ---------------------------------------------------------
def _pip(python: Path, *args, timeout=900) -> str:
    done = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def _releases(python: Path) -> dict[str, str]:
    listed = json.loads(_pip(python, "list", "--format=json"))
    return {canonicalize_name(p["name"]): p["version"] for p in listed}


def _source(into: Path) -> Path:
    """What a wheel of hepinfer is built from, copied (pip builds in the source folder)."""
    into.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, into / name)
    shutil.copytree(
        ROOT / "hepinfer", into / "hepinfer", ignore=shutil.ignore_patterns("__pycache__", "checkpoint.pt*")
    )
    return into


@pytest.mark.network
@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason=f"the real CMS files are not in {REAL}")
def test_into_an_existing_coffea_environment(tmp_path, server):
    """A new environment holding another coffea release and the `xgboost` wheel; `pip install
    'hepinfer[coffea,local]'` changes none of its releases; a coffea processor there scores a real
    NanoAOD file's fat jets with the trained model shipped in the package (HEPINFER_HOME empty)
    locally and on the server, identically."""
    import awkward as ak
    import uproot

    pins, (coffea_pin, *_) = _constraints(), THEIR_ENVIRONMENT
    theirs = coffea_pin.partition("==")[2]
    assert theirs != pins["coffea"]
    assert Requirement(next(r for r in EXTRAS["coffea"] if r.startswith("coffea"))).specifier.contains(theirs)

    env = tmp_path / "analysis-env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=300)
    python = env / "bin" / "python"
    _pip(python, "install", "-q", *THEIR_ENVIRONMENT)
    before = _releases(python)
    _pip(python, "install", "-q", f"{_source(tmp_path / 'src')}[coffea,local]")
    after = _releases(python)
    changed = {name: (release, after.get(name)) for name, release in before.items() if after.get(name) != release}
    assert not changed, f"installing hepinfer changed the environment's releases: {changed}"
    assert "xgboost-cpu" not in after and after["hepinfer"]

    home = tmp_path / "hepinfer-home"  # empty: local scoring reads the model shipped in the package
    home.mkdir()
    process_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    process_env |= {"HEPINFER_HOME": str(home), "PYTHONNOUSERSITE": "1"}
    path = REAL / "nano_tt_v12.root"
    done = subprocess.run(
        [
            str(python),
            str(Path(__file__).resolve().parent / "data" / "existing_env" / "score_jets.py"),
            str(path),
            server.url,
        ],
        env=process_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    with uproot.open(path) as f:
        jets = int(ak.sum(f["Events"]["nFatJet"].array()))
    assert result["jets"] == jets > 0 and result["identical"], result
    assert result["releases"]["coffea"] == theirs and result["releases"]["xgboost"] == before["xgboost"]
    assert not any(home.iterdir())  # nothing built or copied: the package's own files were read
