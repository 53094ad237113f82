"""The quick tier cannot silently be wrong: an inner pytest run, with this directory's conftest, on
probe tests shows that heavy tests are left out of ``-m quick``, that a quick test which starts the
server, runs the generator, builds a network or imports torch fails (even when it catches the error),
and that a heavy test marked quick by hand is refused."""

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PROBES = """
import pytest


def test_plain():
    assert True


@pytest.mark.slow
def test_marked_slow():
    raise AssertionError("deselected by -m quick: never runs")


def test_uses_generated(generated):
    raise AssertionError("deselected by -m quick: never runs")


def test_starts_the_server():
    import hepinfer

    hepinfer.serve(["bdt"]).stop()


def test_swallows_the_server_error():
    import hepinfer

    try:
        hepinfer.serve(["bdt"]).stop()
    except Exception:
        pass


def test_runs_the_generator(tmp_path):
    from hepinfer.ml.generation.generate import generate

    generate("qcd", 1, 1, tmp_path / "x.root", progress=False)


def test_builds_a_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path))
    from hepinfer.models import get_spec
    from hepinfer.models.architectures import build

    build(get_spec("resnet50"), force=True)


def test_imports_torch():
    pytest.importorskip("torch")  # must fail, not skip
"""


def _inner_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess:
    shutil.copy(HERE / "conftest.py", directory / "conftest.py")
    command = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(directory)]
    return subprocess.run(
        [*command, "-p", "no:cacheprovider", "-q", *args, str(directory)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_heavy_work_in_a_quick_test_fails_it(tmp_path):
    (tmp_path / "test_probes.py").write_text(PROBES)
    report = tmp_path / "report.xml"
    done = _inner_pytest(tmp_path, "-m", "quick", f"--junitxml={report}")
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        problems = [c for c in case if c.tag in ("failure", "error", "skipped")]
        text = " ".join((c.get("message") or "") + (c.text or "") for c in problems)
        outcomes.setdefault(case.get("name"), []).append(((problems[0].tag if problems else "passed"), text))
    log = done.stdout + done.stderr
    assert set(outcomes) == {
        "test_plain",
        "test_starts_the_server",
        "test_swallows_the_server_error",
        "test_runs_the_generator",
        "test_builds_a_network",
        "test_imports_torch",
    }, log
    assert outcomes["test_plain"] == [("passed", "")], log
    expected = {
        "test_starts_the_server": "started the embedded Triton server",
        "test_swallows_the_server_error": "started the embedded Triton server",  # at teardown
        "test_runs_the_generator": "ran the event generator",
        "test_builds_a_network": "built a network with torch",
        "test_imports_torch": "imported torch",
    }
    for name, what in expected.items():
        tags = [tag for tag, _ in outcomes[name]]
        assert set(tags) <= {"failure", "error"} and tags, (name, outcomes[name], log)
        assert any(what in text for _, text in outcomes[name]), (name, outcomes[name], log)
    assert done.returncode == 1, log


def test_a_heavy_test_marked_quick_is_refused(tmp_path):
    (tmp_path / "test_probe.py").write_text(
        "import pytest\n\n\n@pytest.mark.quick\ndef test_needs_the_server(server):\n    pass\n"
    )
    done = _inner_pytest(tmp_path, "--collect-only")
    log = done.stdout + done.stderr
    assert done.returncode == 4, log  # a usage error: nothing runs
    assert "test_needs_the_server: marked quick but uses fixture artefacts, fixture server" in log, log
