"""environment.yml's pip part installs, and binder's postBuild / start work as scripts here."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)


def _pip_part() -> list[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    return [line.strip()[2:] for line in lines[start + 1 :] if line.startswith("      - ")]


@pytest.mark.slow
def test_environment_yml_pip_part_installs(tmp_path):
    reqs = _pip_part()
    assert any(r.startswith("-e .") for r in reqs) and any(r.startswith("tritonclient") for r in reqs)
    (tmp_path / "requirements.txt").write_text("\n".join(reqs) + "\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(tmp_path / "requirements.txt"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.triton
@pytest.mark.slow
def test_binder_postbuild_then_start(tmp_path, free_port, artefacts):
    env = {
        **os.environ,
        "HEPINFER_BINDER_DIR": str(tmp_path),
        "HEPINFER_BINDER_GRPC_PORT": str(free_port),
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
    }
    env.pop("HEPINFER_URL", None)
    built = subprocess.run([str(ROOT / "binder" / "postBuild")], env=env, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    assert (tmp_path / "repository" / "particlenet" / "config.pbtxt").is_file()
    assert "demo_ttbar_7001_200_cms.root" in built.stdout
    check = (
        "import os, hepinfer; from hepinfer.models.toy import toy_inputs; "
        "s = hepinfer.Session(); assert s.config.url == os.environ['HEPINFER_URL']; "
        "scorer = hepinfer.Scorer('bdt', config=s.config.replace(mode='remote')); "
        "print(scorer(toy_inputs('bdt', 4, seed=1))['output__0'].shape)"
    )
    try:
        started = subprocess.run(
            [str(ROOT / "binder" / "start"), sys.executable, "-c", check],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert started.returncode == 0, started.stderr[-2000:] + (tmp_path / "server.log").read_text()[-2000:]
        assert "(4, 2)" in started.stdout
    finally:
        pid_file = tmp_path / "server.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            for _ in range(200):  # `hepinfer serve` stops tritonserver on SIGTERM
                if not _alive(pid):
                    break
                time.sleep(0.1)
            assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent, here the finished start script) is gone too
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()
