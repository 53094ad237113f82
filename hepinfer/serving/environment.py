"""The embedded server's own Python environment.

Choice: the Triton server runs in a **separate virtual environment** (``$HEPINFER_HOME/server-env``),
not in the analysis environment.  Reasons, measured here:

* the python backend of tritonserver 2.51 (nvidia-pytriton 0.7.0) needs numpy<2: with numpy 2 the
  client receives empty outputs without any error;
* the analysis environment stays on numpy 2, which coffea, awkward and tritonclient>=2.56 support.

The server environment holds numpy<2, the same onnxruntime and xgboost releases as the analysis
side (so local and remote scores agree), and nvidia-pytriton installed ``--no-deps`` (only its
tritonserver binary, python backend and stubs are used; its Python API is not).  It is created with
the base interpreter of the running Python (the stub must match its minor version and needs its
shared libpython).  The python stub embeds that libpython in *isolated* mode (PYTHONPATH and
friends are ignored) and finds its ``sys.executable`` by looking ``python3`` up on ``PATH``; so the
server process gets the server environment's ``bin`` first on ``PATH``, the stub's interpreter
finds that venv's ``pyvenv.cfg`` and runs as a true venv interpreter (its site-packages only, none
of the base interpreter's).  The interpreter's ``LIBDIR`` goes first on
``LD_LIBRARY_PATH`` (otherwise, under pyenv, Debian's libpython is loaded against pyenv's stdlib),
followed by the wheel's ``nvidia_pytriton.libs`` (the stub's RPATH is relative to its place in
the wheel, and hepinfer copies it beside the backend library).

The torch engine (``hepinfer serve --engine torch``) needs torch in this environment, added the first
time it is asked for (``ensure_server_env(torch=True)``, ``hepinfer setup --torch``): ``torch==``
:data:`TORCH_VERSION` from the package index (the CPU build here).  For a GPU, ``hepinfer setup
--gpu`` builds the environment on an interpreter that already has a CUDA build of torch (the
site's, named by ``HEPINFER_SERVER_PYTHON``, default the running one) with
``--system-site-packages``, so that torch is used as it is (nothing CUDA is downloaded); the setup
fails, naming the interpreter, when that torch sees no GPU.  Its tensors pass by DLPack, so the
numpy<2 pin of the environment does not touch it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from hepinfer import paths
from hepinfer.errors import ServerError
from hepinfer.logs import get_logger

log = get_logger(__name__)

# Keep these in step with the `local` extra of pyproject.toml (a test compares them).
ONNXRUNTIME_VERSION = "1.32.0"
XGBOOST_VERSION = "3.2.0"
PYTRITON_VERSION = "0.7.0"
SERVER_REQUIREMENTS = ("numpy<2", f"onnxruntime=={ONNXRUNTIME_VERSION}", f"xgboost-cpu=={XGBOOST_VERSION}")
TORCH_VERSION = "2.13.0"
MARKER = "hepinfer-server-env.json"
TORCH_MODES = ("none", "pip", "interpreter")  # no torch; torch==TORCH_VERSION installed; the interpreter's


@dataclass(frozen=True)
class ServerEnvironment:
    root: Path
    python_version: str  # "3.11"
    site_packages: Path
    libdir: Path  # directory of the interpreter's shared libpython
    torch: str = "none"  # one of TORCH_MODES
    torch_version: str = ""
    cuda_devices: int = 0  # GPUs torch saw when the environment was made

    @property
    def triton_root(self) -> Path:
        return self.site_packages / "pytriton" / "tritonserver"

    @property
    def tritonserver(self) -> Path:
        return self.triton_root / "bin" / "tritonserver"

    @property
    def backend_dir(self) -> Path:
        """Backend directory with the python backend and the matching stub in one folder."""
        return self.root / "hepinfer-backends"

    def process_env(self, base: dict | None = None) -> dict:
        env = dict(os.environ if base is None else base)
        for var in ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
            env.pop(var, None)
        env.pop("PYTHONPATH", None)
        env["PYTHONNOUSERSITE"] = "1"
        env["PATH"] = os.pathsep.join([str(self.root / "bin"), env.get("PATH", os.defpath)])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [str(self.libdir), str(self.site_packages / "nvidia_pytriton.libs")]
            + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
        )
        return env


def _base_python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


def _libdir_of(python: str) -> Path:
    code = (
        "import sysconfig, json; print(json.dumps([sysconfig.get_config_var('LIBDIR'),"
        " sysconfig.get_config_var('INSTSONAME'), sysconfig.get_config_var('Py_ENABLE_SHARED')]))"
    )
    libdir, soname, shared = json.loads(subprocess.check_output([python, "-c", code], text=True))
    if not shared or not (Path(libdir) / soname).exists():
        raise ServerError(
            f"the interpreter {python} has no shared libpython ({soname} not in {libdir}); Triton's python "
            "backend embeds libpython: use a Python built with --enable-shared (pyenv: "
            "PYTHON_CONFIGURE_OPTS=--enable-shared) or point HEPINFER_SERVER_PYTHON at one"
        )
    return Path(libdir)


def _wanted() -> dict:
    return {"requirements": list(SERVER_REQUIREMENTS), "pytriton": PYTRITON_VERSION}


def _from_marker(root: Path) -> ServerEnvironment | None:
    marker = root / MARKER
    if not marker.exists():
        return None
    data = json.loads(marker.read_text())
    if {k: data.get(k) for k in _wanted()} != _wanted():
        return None
    env = ServerEnvironment(
        root,
        data["python_version"],
        Path(data["site_packages"]),
        Path(data["libdir"]),
        data.get("torch", "none"),
        data.get("torch_version", ""),
        int(data.get("cuda_devices", 0)),
    )
    return env if env.tritonserver.exists() and (env.backend_dir / "python").is_dir() else None


def _probe_torch(py: Path) -> tuple[str, int]:
    """(torch version, CUDA devices it sees) in the interpreter ``py``; ("", 0) without torch."""
    code = (
        "import json\ntry:\n import torch\n print(json.dumps([torch.__version__,"
        " torch.cuda.device_count() if torch.cuda.is_available() else 0]))\n"
        "except ImportError:\n print(json.dumps(['', 0]))"
    )
    version, gpus = json.loads(subprocess.check_output([str(py), "-c", code], text=True).strip().splitlines()[-1])
    return version, int(gpus)


def _add_torch(env: ServerEnvironment) -> ServerEnvironment:
    """Install torch==TORCH_VERSION into the environment and record it in the marker."""
    py = env.root / "bin" / "python"
    log.info(f"adding torch=={TORCH_VERSION} to the Triton server environment {env.root} (the torch engine) ...")
    try:
        subprocess.run(
            [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"torch=={TORCH_VERSION}"],
            check=True,
        )
    except subprocess.CalledProcessError as err:
        raise ServerError(f"installing torch=={TORCH_VERSION} into the server environment {env.root}: {err}") from err
    version, gpus = _probe_torch(py)
    return _record(replace(env, torch="pip", torch_version=version, cuda_devices=gpus))


def _record(env: ServerEnvironment) -> ServerEnvironment:
    marker = env.root / MARKER
    data = json.loads(marker.read_text())
    data.update(torch=env.torch, torch_version=env.torch_version, cuda_devices=env.cuda_devices)
    marker.write_text(json.dumps(data, indent=2) + "\n")
    return env


def ensure_server_env(root: str | Path | None = None, *, torch: bool = False, gpu: bool = False) -> ServerEnvironment:
    """Return the server environment, creating or updating it when needed (once).

    ``torch``: the environment must have torch (the torch engine); ``gpu``: a CUDA build of torch
    that sees a GPU, taken from the interpreter (see the module doc)."""
    root = Path(root) if root else paths.server_env_dir()
    env = _from_marker(root)
    if env is not None and gpu and not env.cuda_devices:
        env = None  # rebuilt on the interpreter's CUDA torch
    if env is not None:
        return _add_torch(env) if torch and env.torch == "none" else env
    python = os.environ.get("HEPINFER_SERVER_PYTHON") or _base_python()
    libdir = _libdir_of(python)
    if gpu:
        version, gpus = _probe_torch(Path(python))
        if not gpus:
            raise ServerError(
                f"hepinfer setup --gpu: the interpreter {python} has "
                + (f"torch {version}, which sees no CUDA device" if version else "no torch")
                + "; point HEPINFER_SERVER_PYTHON at a Python whose torch is a CUDA build on a machine with a GPU"
            )
    log.info(f"creating the Triton server environment in {root} (numpy<2, onnxruntime, xgboost, tritonserver) ...")
    if root.exists():
        shutil.rmtree(root)
    subprocess.run([python, "-m", "venv", *(["--system-site-packages"] if gpu else []), str(root)], check=True)
    py = root / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    try:
        subprocess.run(pip + list(SERVER_REQUIREMENTS), check=True)
        subprocess.run(pip + ["--no-deps", f"nvidia-pytriton=={PYTRITON_VERSION}"], check=True)
    except subprocess.CalledProcessError as err:
        raise ServerError(f"installing the server environment in {root} failed: {err}") from err
    info = json.loads(
        subprocess.check_output(
            [
                str(py),
                "-c",
                "import json, sys, sysconfig, numpy; "
                "print(json.dumps({'python_version': '%d.%d' % sys.version_info[:2],"
                " 'site_packages': sysconfig.get_paths()['purelib'], 'numpy': numpy.__version__}))",
            ],
            text=True,
        )
    )
    if not info["numpy"].startswith("1."):
        raise ServerError(f"server environment {root} got numpy {info['numpy']}; Triton's python backend needs numpy<2")
    env = ServerEnvironment(root, info["python_version"], Path(info["site_packages"]), libdir)
    backend = env.backend_dir / "python"
    backend.mkdir(parents=True, exist_ok=True)
    src = env.triton_root / "backends" / "python"
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(src / name, backend / name)
    stub = env.triton_root / "python_backend_stubs" / env.python_version / "triton_python_backend_stub"
    if not stub.exists():
        raise ServerError(
            f"nvidia-pytriton {PYTRITON_VERSION} has no python backend stub for Python {env.python_version}"
        )
    shutil.copy2(stub, backend / stub.name)
    (root / MARKER).write_text(
        json.dumps(
            {
                **_wanted(),
                "python_version": env.python_version,
                "site_packages": str(env.site_packages),
                "libdir": str(libdir),
                "numpy": info["numpy"],
            },
            indent=2,
        )
        + "\n"
    )
    if gpu:
        version, gpus = _probe_torch(py)
        env = _record(replace(env, torch="interpreter", torch_version=version, cuda_devices=gpus))
    elif torch:
        env = _add_torch(env)
    log.info(f"server environment ready: {env.tritonserver}")
    return env
