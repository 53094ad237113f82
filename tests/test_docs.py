"""The documentation site builds with Sphinx with warnings as errors, and its generated pages hold what
they are generated from: the command-line reference (sphinx-argparse), the API reference (autodoc) and
the notebooks (myst-nb, rendered without executing them)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

pytestmark = pytest.mark.slow  # a full Sphinx build: more than a few seconds


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "html"  # myst-nb writes its jupyter_execute/ beside it
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"sphinx failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return out


def plain(html: str) -> str:
    """The page's text without tags (code is split into highlighted spans)."""
    return re.sub(r"<[^>]+>", "", html)


def page(site: Path, name: str) -> str:
    path = site / name
    assert path.is_file(), f"{name} was not written"
    return path.read_text(encoding="utf-8")


def test_cli_reference_is_generated_from_the_parser(site):
    html = page(site, "reference/cli.html")
    for command in ("run", "serve", "demo", "bench", "setup", "generate", "train", "evaluate", "profile", "plan"):
        assert f'id="hepinfer-{command}"' in html, command
    for option in ("--check-local", "--skip-bad-files", "--no-pipeline", "--instances", "--engine", "--precision"):
        assert f"<kbd>{option}</kbd>" in html, option


def test_api_reference_is_generated_from_the_docstrings(site):
    api = page(site, "reference/api.html")
    for name in (
        "hepinfer.scorer.Scorer",  # the public API
        "hepinfer.config.InferenceConfig",
        "hepinfer.register_model",
        "hepinfer.models.declare.load_toml",  # the extension points
        "hepinfer.runtime.engines.load_engine",
        "hepinfer.features.per_particle.particles",
        "hepinfer.coffea.JetTagger",
        "hepinfer.ml_tools.triton_wrapper",
    ):
        assert f'id="{name}"' in api, name
    assert 'id="hepinfer.analysis.' not in api  # the wings are described by the guides
    wings = page(site, "reference/wings.html")
    for guide in ("main-job", "training", "planning", "fleet", "panel"):
        assert f'href="../guide/{guide}.html"' in wings, guide


def test_notebooks_are_rendered(site):
    titles = {
        "quickstart": "hepinfer quickstart",
        "scale-out": "Scaling out",
        "serving": "Serving",
        "benchmarks": "Benchmarks",
    }
    for name, title in titles.items():
        text = plain(page(site, f"notebooks/{name}.html"))
        assert title in text, name
        assert "import hepinfer" in text or "from hepinfer" in text, f"{name}: no code cells"


def test_user_guide_pages_are_written(site):
    for name in (
        "index",
        "getting-started",
        "architecture",
        "tests",
        "guide/scoring",
        "guide/performance",
        "guide/gpu",
        "guide/planning",
    ):
        page(site, f"{name}.html")
    assert "./run.sh main" in plain(page(site, "getting-started.html"))
