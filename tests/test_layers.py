"""The package's layout rules, checked on the source: the import-linter contracts of pyproject.toml
(the layers and wings, and no import circles; run with ``lint-imports``), no module longer than
MAX_LINES, and ruff (lint and format) finds nothing in the repository."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hepinfer"
MAX_LINES = 400
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
IMPORT_FUNCTIONS = {"import_module", "__import__"}
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
# the layers, top first: each a list of groups of top-level names, groups split by "|" (independent)
LAYERS = [
    [group.split(":") for group in layer.split("|")]
    for layer in next(c for c in CONTRACTS if c["type"] == "layers")["layers"]
]
LAYERS = [[[name.strip() for name in group] for group in layer] for layer in LAYERS]


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


def test_the_contracts_hold():
    done = lint_imports()
    if done.returncode != 0:
        pytest.fail(f"lint-imports (exit {done.returncode}):\n{done.stdout}{done.stderr}", pytrace=False)
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in done.stdout, done.stdout


BREAKS = {
    # a lazy import of a wing in a core module
    "core-imports-a-wing": (
        {"retry.py": "def _later():\n    from hepinfer.analysis import job\n"},
        "hepinfer.retry -> hepinfer.analysis.job",
    ),
    # a type-checking import of the command line in a wing
    "wing-imports-cli": (
        {"ml/demo.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hepinfer.cli.serve\n"},
        "hepinfer.ml.demo -> hepinfer.cli.serve",
    ),
    # the analysis and ML wings never meet
    "analysis-imports-ml": (
        {"analysis/selection.py": "def _later():\n    from hepinfer.ml import samples\n"},
        "hepinfer.analysis.selection -> hepinfer.ml.samples",
    ),
    # figures take numbers: they import no wing
    "figures-import-operations": (
        {"figures/charts.py": "def _later():\n    from hepinfer.operations.fleet import status\n"},
        "hepinfer.figures.charts -> hepinfer.operations.fleet.status",
    ),
    # the package's __init__ (the layers' container) is core
    "init-imports-cli": (
        {"__init__.py": "def _later():\n    from hepinfer.cli import arguments\n"},
        "hepinfer -> hepinfer.cli.arguments",
    ),
    # a top-level module missing from the contract's list of layers
    "unlisted-module": ({"spare.py": ""}, "hepinfer.spare"),
    # two modules of one package that import each other
    "import-circle": (
        {
            "runtime/spare_a.py": "from hepinfer.runtime import spare_b\n",
            "runtime/spare_b.py": "from hepinfer.runtime import spare_a\n",
        },
        "No cycles are allowed in hepinfer.runtime",
    ),
}


@pytest.mark.parametrize("change, broken", BREAKS.values(), ids=BREAKS.keys())
def test_the_contracts_break(tmp_path, change, broken):
    """lint-imports on a copy of the package with one import against the contracts (or one module the
    layers do not name) fails and names it."""
    shutil.copytree(
        PACKAGE,
        tmp_path / "hepinfer",
        ignore=lambda folder, names: [n for n in names if not n.endswith(".py") and not Path(folder, n).is_dir()],
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for module, line in change.items():
        target = tmp_path / "hepinfer" / module
        target.write_text((target.read_text() if target.exists() else "") + "\n" + line)
    done = lint_imports(cwd=tmp_path)
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout + done.stderr
    assert broken in done.stdout, done.stdout


def import_circles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The circles of an import graph ({module: the modules it imports}): its strongly connected
    components of more than one module (Tarjan).  acyclic_siblings sees siblings only; this sees a
    package and its own modules too (an __init__ that imports a child importing the package back)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(imports.get(module, ())):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return circles


def test_no_module_imports_itself_back():
    import grimp

    graph = grimp.build_graph("hepinfer", cache_dir=None)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    assert import_circles(imports) == []
    # the check finds a package and its child importing each other, and a longer circle
    found = import_circles({"p": {"p.a"}, "p.a": {"p"}, "x": {"y"}, "y": {"z"}, "z": {"x"}, "q": {"p"}})
    assert found == [["p", "p.a"], ["x", "y", "z"]]


def top_name(module: str) -> str:
    """The top-level name of a module of the package (``hepinfer.analysis.job`` -> ``analysis``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def forbidden_for(module: str) -> tuple[str, ...]:
    """What a module may not import, by the layers contract: every name of a layer above its own, and
    the other groups of its layer when they are independent (``|``)."""
    name = top_name(module)
    for i, layer in enumerate(LAYERS):
        for group in layer:
            if name in group:
                above = [n for upper in LAYERS[:i] for g in upper for n in g]
                others = [n for g in layer if g is not group for n in g]
                return tuple(f"hepinfer.{n}" for n in above + others)
    return ()


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
    forbidden = forbidden_for(module)
    return [
        f"{module}:{line}: {module} imports {name}"
        for line, name in dynamic_imports(source)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_the_dynamic_import_check_finds_forbidden_imports():
    source = "\n".join(
        [
            "import importlib",  # 1
            "importlib.import_module('hepinfer.panel')",  # 2
            "importlib.import_module('.cli', package='hepinfer')",  # 3
            "__import__('hepinfer.ml.training')",  # 4
            "importlib.import_module('hepinfer.panelling')",  # 5: a different name, allowed
            "importlib.import_module('.cli')",  # 6: relative to an unknown package
            "importlib.import_module(name)",  # 7: not a literal
        ]
    )
    found = dynamic_violations(source, "hepinfer.serving.fake")
    assert [v.split(":")[1] for v in found] == ["2", "3", "4"], found
    assert found[1] == "hepinfer.serving.fake:3: hepinfer.serving.fake imports hepinfer.cli"
    # the analysis wing may not import ML (independent) or the front ends, but the core is below it
    assert [v.split(":")[1] for v in dynamic_violations(source, "hepinfer.analysis.fake")] == ["2", "3", "4"]
    assert [v.split(":")[1] for v in dynamic_violations(source, "hepinfer.operations.fake")] == ["2", "3"]


def test_dynamic_imports_go_one_way():
    found = []
    for path in package_modules():
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found += dynamic_violations(path.read_text(), module)
    assert not found, "imports against the layers contract:\n" + "\n".join(found)


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
