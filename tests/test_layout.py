"""The package's shape is a contract: layers import one way, lazy imports only at start-up.

The layer order lives in ``pyproject.toml`` (``[tool.importlinter]``); import-linter checks it
over the real import graph (``if TYPE_CHECKING`` imports included). The other rules here are
ones import-linter cannot express.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pytest_voicelatency"
#: Modules on the plugin's start-up path (or the CLI's): they may defer heavy imports into
#: the function that needs them, each with a comment on the line saying why (``# lazy: ...``).
START_UP_BOUNDARY = {"plugin.py", "fixtures.py", "__main__.py", "__init__.py",
                     "capture.py"}  # opened for every test, spans or not: numpy only on demand


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _function_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement inside a function body of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom):
                    found.append((sub.lineno, "." * sub.level + (sub.module or "")))
                elif isinstance(sub, ast.Import):
                    found.append((sub.lineno, sub.names[0].name))
    return sorted(set(found))


def test_the_layering_contract_holds():
    """No upward import and no cycle between the sub-packages (import-linter's layers contract)."""
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint_imports is None:
        pytest.fail("import-linter is not installed: pip install -e '.[test]'")
    result = subprocess.run([lint_imports, str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_package_module_is_in_a_layer():
    """A new module or sub-package must be placed in the contract, not silently left out of it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = config["tool"]["importlinter"]["contracts"][0]
    layered = {name.strip() for line in contract["layers"] for name in line.split("|")}
    present = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
               if (p.suffix == ".py" and p.name != "__init__.py")
               or (p.is_dir() and (p / "__init__.py").exists())}
    assert sorted(present - layered) == []


def test_function_local_imports_only_at_the_start_up_boundary():
    """Everywhere else imports sit at the top of the module, where the layering check sees them
    and a reader finds them; at the boundary each deferred import says why in a
    ``# lazy: ...`` comment on its line or just above it."""
    misplaced, uncommented = [], []
    for path in _modules():
        lines = path.read_text(encoding="utf-8").splitlines()
        for lineno, module in _function_imports(path):
            where = f"{path.relative_to(ROOT)}:{lineno} ({module})"
            if path.name not in START_UP_BOUNDARY:
                misplaced.append(where)
            elif not any("# lazy" in line for line in lines[max(0, lineno - 4):lineno]):
                uncommented.append(where)
    assert misplaced == [], "move these imports to the top of their module"
    assert uncommented == [], "say why with a '# lazy: ...' comment on or above the import"


def test_each_sub_package_says_its_job_and_what_it_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "May import" in doc, f"{init.relative_to(ROOT)}: docstring must name its imports"


def test_test_modules_do_not_import_each_other():
    """Shared helpers live in tests/helpers.py or fixtures in conftest.py, never in a test
    module."""
    offenders = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[-1].startswith("test_") for n in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
