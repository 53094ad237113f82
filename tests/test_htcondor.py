"""Dask workers as jobs of a real HTCondor pool (tools/htcondor-pool), scoring on the embedded server."""

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from hepinfer.app.clusters import HTCondorSettings
from hepinfer.app.job import run_job, same_result

pytestmark = [pytest.mark.htcondor, pytest.mark.triton, pytest.mark.slow]
SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "htcondor-pool"


def _pool(*args, timeout=600):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def htcondor_pool():
    """The pool, brought up by the project's script and torn down after the module: no process of the
    pool and no mount under its root may remain."""
    if os.geteuid() != 0:
        pytest.skip("the HTCondor pool needs root (chroot, mount)")
    up = _pool("up")
    assert up.returncode == 0, up.stderr
    bindir = re.search(r"export PATH=(\S+):\$PATH", up.stdout)[1]
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{bindir}:{old_path}"
    try:
        yield Path(bindir).parent
    finally:
        os.environ["PATH"] = old_path
        down = _pool("down")
        assert down.returncode == 0, down.stderr
        root = str(Path(bindir).parent / "rootfs") + "/"
        assert not [line for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1].startswith(root)]
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _root_of(p) == root.rstrip("/")]
        assert _pool("status").returncode == 3  # "down"


def _root_of(proc: Path) -> str | None:
    try:
        return os.readlink(proc / "root")
    except OSError:
        return None


@pytest.fixture()
def shared_dir():
    """Jobs run as the pool's unprivileged user: inputs must be world-readable, logs world-writable."""
    path = Path(tempfile.mkdtemp(prefix="hepinfer-htcondor-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_processor_on_htcondor_workers_matches_local(htcondor_pool, server, generated, job_settings, shared_dir):
    files = []
    for name in ("ttbar", "qcd"):
        dst = shared_dir / generated[name].name
        shutil.copy(generated[name], dst)
        dst.chmod(0o644)
        files.append(str(dst))
    logs = shared_dir / "logs"
    logs.mkdir()
    logs.chmod(0o1777)
    condor = HTCondorSettings(
        cores=1, memory="2GB", disk="1GB", death_timeout_s=30, scheduler_host="127.0.0.1", log_directory=str(logs)
    )
    settings = job_settings(
        inputs=tuple(files),
        mode="remote",
        url=server.url,
        executor="dask",
        cluster="htcondor",
        workers=2,
        chunksize=50,
        htcondor=condor,
    )
    remote = run_job(settings)
    local = run_job(replace(settings, mode="local", executor="iterative"))
    assert same_result(
        {"cutflow": remote.summary["cutflow"], "hists": remote.hists},
        {"cutflow": local.summary["cutflow"], "hists": local.hists},
    )
    assert remote.summary["events"] == 300 and remote.summary["cluster"] == "htcondor"
    assert remote.summary["mode_used"] == {"particlenet": "remote", "bdt": "remote"}
    # the workers really were HTCondor jobs: HTCondor wrote their logs, and they joined this scheduler
    worker_logs = sorted(logs.glob("worker-*.err"))
    assert len(worker_logs) >= 2
    assert all("Registered to" in p.read_text() for p in worker_logs[:2])
