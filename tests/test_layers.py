"""The package's layout rules, checked on the source: imports go one way (cli -> app -> core: the
import-linter contracts of pyproject.toml, run with ``lint-imports``), no module is longer than
MAX_LINES, and ruff (lint and format) finds nothing in the repository."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hepinfer"
MAX_LINES = 400
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# what each layer may not import (the contracts' rule, for the imports import-linter cannot see)
FORBIDDEN = {"core": ("hepinfer.app", "hepinfer.cli"), "app": ("hepinfer.cli",), "cli": ()}
IMPORT_FUNCTIONS = {"import_module", "__import__"}


def lint_imports(cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``lint-imports`` in ``cwd``: the contracts of its pyproject.toml, on the package found there."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_imports_go_one_way():
    done = lint_imports()
    if done.returncode != 0:
        pytest.fail(f"lint-imports (exit {done.returncode}):\n{done.stdout}{done.stderr}", pytrace=False)
    assert "Contracts: 2 kept, 0 broken." in done.stdout, done.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        # a lazy, relative import in a core module
        ("retry.py", "def _later():\n    from .app import job\n", "hepinfer.retry -> hepinfer.analysis.job"),
        # a type-checking import in the application
        (
            "app/demo.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hepinfer.cli.serve\n",
            "hepinfer.ml.demo -> hepinfer.cli.serve",
        ),
        # the package's __init__ (the layers' container) is core
        ("__init__.py", "def _later():\n    from .cli import common\n", "hepinfer -> hepinfer.cli.common"),
        # a core module missing from the contract's list of layers
        ("spare.py", "", "hepinfer.spare"),
    ],
    ids=["core-imports-app", "app-imports-cli", "init-imports-cli", "unlisted-module"],
)
def test_the_contracts_break_on_a_forbidden_import(tmp_path, module, line, broken):
    """lint-imports on a copy of the package with one import against the layers (or one module the
    layers do not name) fails and names it."""
    shutil.copytree(
        PACKAGE,
        tmp_path / "hepinfer",
        ignore=lambda folder, names: [n for n in names if not n.endswith(".py") and not Path(folder, n).is_dir()],
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / "hepinfer" / module
    target.write_text((target.read_text() if target.exists() else "") + "\n" + line)
    done = lint_imports(cwd=tmp_path)
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout + done.stderr
    assert broken in done.stdout, done.stdout


def layer(module: str) -> str:
    for name in ("cli", "app"):
        if module == f"hepinfer.{name}" or module.startswith(f"hepinfer.{name}."):
            return name
    return "core"


def dynamic_imports(source: str) -> list[tuple[int, str]]:
    """(line, name) of each importlib.import_module / __import__ call with a literal name (and a
    literal package, for a relative name): import-linter reads import statements only."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
            continue
        fn = node.func
        if (fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", None)) not in IMPORT_FUNCTIONS:
            continue
        package = next((k.value for k in node.keywords if k.arg == "package"), None)
        package = package.value if isinstance(package, ast.Constant) else None
        try:
            found.append((node.lineno, importlib.util.resolve_name(node.args[0].value, package)))
        except (ImportError, ValueError, AttributeError):  # not a string, or relative to an unknown package
            continue
    return sorted(found)


def dynamic_violations(source: str, module: str) -> list[str]:
    forbidden = FORBIDDEN[layer(module)]
    return [
        f"{module}:{line}: {module} ({layer(module)}) imports {name}"
        for line, name in dynamic_imports(source)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_the_dynamic_import_check_finds_forbidden_imports():
    source = "\n".join(
        [
            "import importlib",  # 1
            "importlib.import_module('hepinfer.panel')",  # 2
            "importlib.import_module('.cli', package='hepinfer')",  # 3
            "__import__('hepinfer.cli')",  # 4
            "importlib.import_module('hepinfer.application')",  # 5: a different name, allowed
            "importlib.import_module('.cli')",  # 6: relative to an unknown package
            "importlib.import_module(name)",  # 7: not a literal
        ]
    )
    found = dynamic_violations(source, "hepinfer.serving.fake")
    assert [v.split(":")[1] for v in found] == ["2", "3", "4"], found
    assert found[1] == "hepinfer.serving.fake:3: hepinfer.serving.fake (core) imports hepinfer.cli"
    assert [v.split(":")[1] for v in dynamic_violations(source, "hepinfer.app.fake")] == ["3", "4"]


def test_dynamic_imports_go_one_way():
    found = []
    for path in package_modules():
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found += dynamic_violations(path.read_text(), module)
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
