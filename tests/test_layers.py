"""The package's layout rules, checked on the source: imports go one way (cli -> app -> core), no
module is longer than MAX_LINES, and ruff (lint and format) finds nothing in the repository."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hepinfer"
MAX_LINES = 400
# what each layer may not import: the core neither the application nor the command line, the
# application not the command line
FORBIDDEN = {"core": ("hepinfer.app", "hepinfer.cli"), "app": ("hepinfer.cli",), "cli": ()}
IMPORT_FUNCTIONS = {"import_module", "__import__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    for name in ("cli", "app"):
        if module == f"hepinfer.{name}" or module.startswith(f"hepinfer.{name}."):
            return name
    return "core"


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    parts = module.split(".") if is_package else module.split(".")[:-1]  # the package it sits in
    if level - 1 > len(parts) - 1:
        raise ValueError(f"{module}: relative import beyond the top-level package")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, list[str]]]:
    """Every import of ``source`` (at any depth: in functions, classes, ``if TYPE_CHECKING``), as
    (line, absolute names it may import); ``from a import b`` may import a and a.b.  Calls of
    importlib.import_module / __import__ with a literal name count too."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.append((node.lineno, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, is_package, node.level, node.module) if node.level else node.module
            found.append((node.lineno, [target] + [f"{target}.{a.name}" for a in node.names if a.name != "*"]))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
            if name in IMPORT_FUNCTIONS and isinstance(node.args[0].value, str):
                target = node.args[0].value
                if target.startswith("."):  # import_module(".x", package): only a literal package is known
                    package = next((k.value for k in node.keywords if k.arg == "package"), None)
                    if not (isinstance(package, ast.Constant) and isinstance(package.value, str)):
                        continue
                    level = len(target) - len(target.lstrip("."))
                    target = _absolute(package.value, True, level, target.lstrip(".") or None)
                found.append((node.lineno, [target]))
    return sorted(found)


def violations(source: str, module: str, is_package: bool = False, where: str | None = None) -> list[str]:
    """``where:line: module (layer) imports name`` for each import that goes against the layers."""
    forbidden = FORBIDDEN[layer(module)]
    out = []
    for line, names in imports(source, module, is_package):
        bad = [n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden)]
        if bad:
            out.append(f"{where or module}:{line}: {module} ({layer(module)}) imports {bad[0]}")
    return out


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_checker_sees_every_layer():
    modules = [module_name(p) for p in package_modules()]
    layers = {layer(m) for m in modules}
    assert layers == {"core", "app", "cli"}, layers
    assert "hepinfer.scorer" in modules and "hepinfer.app.job" in modules and "hepinfer.cli" in modules
    assert len(modules) > 50


def test_the_checker_finds_forbidden_imports():
    """The checker fails on imports that go the wrong way, at any depth and in any spelling."""
    source = "\n".join(
        [
            "import os",  # 1
            "from .. import app",  # 2: hepinfer.app
            "from ..models import SPECS",  # 3: allowed
            "def f():",  # 4
            "    from ..app.job import run_job",  # 5
            "    import hepinfer.cli.serve",  # 6
            "class C:",  # 7
            "    import importlib",  # 8
            "    x = importlib.import_module('hepinfer.app.panel')",  # 9
            "from hepinfer import cli",  # 10
            "import hepinfer.application",  # 11: a different name, allowed
            "from . import apple",  # 12: hepinfer.serving.apple, allowed
        ]
    )
    found = violations(source, "hepinfer.serving.fake")
    assert [v.split(":")[1] for v in found] == ["2", "5", "6", "9", "10"], found
    assert found[0] == "hepinfer.serving.fake:2: hepinfer.serving.fake (core) imports hepinfer.app"
    assert "imports hepinfer.cli.serve" in found[2]
    # the same text in the application: only the command line is out of bounds
    found = violations(source, "hepinfer.app.fake")
    assert [v.split(":")[1] for v in found] == ["6", "10"], found
    # relative imports resolve from the package (an __init__ is its own package) ...
    assert violations("from . import job", "hepinfer.app", is_package=True) == []
    assert violations("from .cli import main", "hepinfer", is_package=True) == [
        "hepinfer:1: hepinfer (core) imports hepinfer.cli"
    ]
    assert violations("from ...cli import x", "hepinfer.app.job.run") == [
        "hepinfer.app.job.run:1: hepinfer.app.job.run (app) imports hepinfer.cli"
    ]
    assert violations("from .. import app", "hepinfer.serving", is_package=True) == [
        "hepinfer.serving:1: hepinfer.serving (core) imports hepinfer.app"
    ]
    with pytest.raises(ValueError, match="beyond"):
        violations("from ... import x", "hepinfer.scorer")


def test_imports_go_one_way():
    found = []
    for path in package_modules():
        found += violations(
            path.read_text(), module_name(path), path.name == "__init__.py", str(path.relative_to(ROOT))
        )
    assert not found, "imports against the layers (cli -> app -> core):\n" + "\n".join(found)


def test_no_module_is_longer_than_the_limit():
    long = {
        str(p.relative_to(ROOT)): n for p in package_modules() if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them): {long}"


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command):
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        pytest.fail(f"ruff {' '.join(command)} (exit {done.returncode}):\n{done.stdout}{done.stderr}", pytrace=False)
