"""The analysis tests' fixtures: hosts of the test bed (network namespaces, tools/testbed-hosts) and
the HTCondor pool (tools/htcondor-pool)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------------------------
# other hosts: the test bed of network namespaces (tools/testbed-hosts)

TESTBED = Path(__file__).resolve().parents[2] / "tools" / "testbed-hosts"


@dataclasses.dataclass
class OtherHosts:
    """Hosts of a test bed: ``hosts`` {namespace: address}; ``gateway``, this machine as they see it."""

    id: str
    gateway: str
    hosts: dict
    started: list = dataclasses.field(default_factory=list)  # (namespace, Popen) of what popen started

    def popen(self, namespace: str, argv, **kwargs) -> subprocess.Popen:
        """Start ``argv`` on the host ``namespace`` (same files, users and environment; its own network);
        it is killed with the host, or with the test bed."""
        proc = subprocess.Popen(["ip", "netns", "exec", namespace, *map(str, argv)], **kwargs)
        self.started.append((namespace, proc))
        return proc

    def pids(self, namespace: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=True).stdout
        return [int(p) for p in out.split()]

    def kill(self, namespace: str) -> list[int]:
        """SIGKILL every process on the host ``namespace`` (the host is lost); returns their pids."""
        killed = []
        for _ in range(50):  # again while a process forked in the meantime is left
            pids = self.pids(namespace)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed += pids
            time.sleep(0.1)
        self.reap(namespace)
        return killed

    def reap(self, namespace: str | None = None) -> None:
        """Wait for the processes popen started (on ``namespace``, or on every host), which were killed."""
        for ns, proc in list(self.started):
            if namespace in (None, ns):
                proc.wait(30)
                self.started.remove((ns, proc))


@pytest.fixture(scope="module")
def other_hosts():
    """Two hosts of a test bed made for the module (tools/testbed-hosts), removed after it with every
    process on them; skipped, saying why, without root or iproute2."""
    if os.geteuid() != 0:
        pytest.skip("the test bed's hosts are network namespaces: root needed")
    if shutil.which("ip") is None:
        pytest.skip("the test bed needs iproute2's ip command")
    up = subprocess.run([str(TESTBED), "up", "2", "--owner", str(os.getpid())], capture_output=True, text=True)
    if up.returncode != 0 and "Operation not permitted" in up.stderr:
        pytest.skip(f"network namespaces are not permitted here: {up.stderr.strip()[-200:]}")
    assert up.returncode == 0, up.stderr
    lines = [line.partition("=") for line in up.stdout.splitlines()]
    values = {k: v for k, _, v in lines if k != "HOST"}
    bed = OtherHosts(values["TESTBED"], values["GATEWAY"], dict(v.split() for k, _, v in lines if k == "HOST"))
    try:
        yield bed
    finally:
        down = subprocess.run([str(TESTBED), "down", bed.id], capture_output=True, text=True)
        bed.reap()
        assert down.returncode == 0, down.stderr
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"hepinfer-{bed.id}-" not in left


# ---------------------------------------------------------------------------------------------
# the HTCondor pool (tools/htcondor-pool)

HTCONDOR_POOL = Path(__file__).resolve().parents[2] / "tools" / "htcondor-pool"


def _pool(*args, timeout=600):
    return subprocess.run([str(HTCONDOR_POOL), *args], capture_output=True, text=True, timeout=timeout)


def _root_of(proc: Path) -> str | None:
    try:
        return os.readlink(proc / "root")
    except OSError:
        return None


@contextlib.contextmanager
def _htcondor_pool(*args):
    """The pool brought up by ``tools/htcondor-pool up ARGS`` with its bin folder first on PATH, and
    torn down after: no process of the pool and no mount under its root may remain."""
    if os.geteuid() != 0:
        pytest.skip("the HTCondor pool needs root (chroot, mount)")
    up = _pool("up", *args)
    assert up.returncode == 0, up.stderr
    bindir = re.search(r"export PATH=(\S+):\$PATH", up.stdout)[1]
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{bindir}:{old_path}"
    try:
        yield up.stdout
    finally:
        os.environ["PATH"] = old_path
        down = _pool("down")
        assert down.returncode == 0, down.stderr
        root = str(Path(bindir).parent / "rootfs") + "/"
        assert not [line for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1].startswith(root)]
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _root_of(p) == root.rstrip("/")]
        assert _pool("status").returncode == 3  # "down"


@pytest.fixture(scope="session")
def htcondor_pool_up():
    """``with htcondor_pool_up(*args) as stdout:`` the HTCondor pool of tools/htcondor-pool, up with
    ``args`` (``--hosts 2``: its execute nodes on other hosts) for the block; skipped without root."""
    return _htcondor_pool


@pytest.fixture()
def shared_dir():
    """A folder HTCondor jobs can use (they run as the pool's unprivileged user): inputs copied there
    must be world-readable, log folders world-writable."""
    path = Path(tempfile.mkdtemp(prefix="hepinfer-htcondor-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture()
def condor_inputs(generated, shared_dir):
    """(the generated files copied world-readable into ``shared_dir``, a world-writable log folder
    there): what an HTCondor job of the pool's user reads and writes."""
    files = []
    for name in ("ttbar", "qcd"):
        dst = shared_dir / generated[name].name
        shutil.copy(generated[name], dst)
        dst.chmod(0o644)
        files.append(str(dst))
    logs = shared_dir / "logs"
    logs.mkdir()
    logs.chmod(0o1777)
    return tuple(files), logs
