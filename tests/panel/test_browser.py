"""The quickstart in a real browser: Voilà serves it on 127.0.0.1, Debian's chromium (driven by
playwright) renders the panel; the test starts the embedded server, clicks Remote, runs, and reads
the mode used and the result back from the page.  It leaves a screenshot in output/screenshots/."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("HEPINFER_SCREENSHOTS", ROOT / "output" / "screenshots"))


@pytest.fixture()
def voila(tmp_path, free_port, artefacts):
    if not os.path.exists(CHROMIUM):
        pytest.skip("no chromium: `apt-get install chromium` (./run.sh test installs it when run as root)")
    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", tmp_path)
    port = free_port
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            "quickstart.ipynb",
            "--no-browser",
            f"--port={port}",
            "--Voila.ip=127.0.0.1",
            "--VoilaConfiguration.file_allowlist=[]",
            "--ServerApp.log_level=WARN",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "api/status", timeout=2).close()  # noqa: S310 - loopback
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "voila.log").read_text()
            time.sleep(0.5)
    try:
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def test_panel_in_a_real_browser(voila):
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS, viewport={"width": 1200, "height": 4000}
        )  # Voilà scrolls inside the page: a tall window shows all
        try:
            page = browser.new_page()
            page.set_default_timeout(300_000)
            page.goto(voila)  # Voilà runs the whole notebook first (generation, two runs): minutes
            page.get_by_role("button", name="Start server").click()
            page.wait_for_selector(".hepinfer-status[data-live='true']")
            page.get_by_role("button", name="Remote").click()
            results = page.locator(".hepinfer-panel-results")
            assert results.locator(".hepinfer-mode-used").all_inner_texts() == [
                "local",
                "local",
            ]  # the notebook's last run
            page.get_by_role("button", name="Run").click()  # not exact: the icon's glyph is part of the name
            expect(results.locator(".hepinfer-mode-used")).to_have_text(["remote", "remote"], timeout=180_000)
            modes = results.locator(".hepinfer-mode-used").all_inner_texts()
            result = results.inner_text()
            progress = page.locator(".hepinfer-progress").inner_text()
            page.screenshot(path=str(SCREENSHOTS / "quickstart-panel.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "quickstart-failed.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert modes == ["remote", "remote"], result
    assert "events in" in result and "particlenet" in result and "bdt" in result
    assert "200/200 events" in progress
    assert (SCREENSHOTS / "quickstart-panel.png").stat().st_size > 10_000
