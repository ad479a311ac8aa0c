"""The public API is small, documented once, cheap to import, and 0.1.0's names still work.

docs/api.md's table is the reference: one row per namespace, listing its public names. Every
namespace's ``__all__`` must equal its row, every name must resolve from there (or, for an
optional extra that is not installed, say which extra to install), each public name has one
import path only, and every ``from pytest_voicelatency... import ...`` written in the README and
the docs resolves without a deprecation warning.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import tomllib
import typing
import warnings
from pathlib import Path

import pytest

import pytest_voicelatency

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pytest_voicelatency"
API_DOC = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
DOCS = [ROOT / "README.md", ROOT / "fixtures_audio" / "README.md",
        *sorted((ROOT / "docs").glob("*.md"))]
LAZY_NAMESPACES = sorted(f"pytest_voicelatency.{p.parent.name}"
                         for p in PACKAGE.glob("*/__init__.py"))
#: public top-level modules: plain modules, imported whole when used (the strategies need
#: hypothesis and numpy; nothing on the plugin's start-up path imports either)
MODULE_NAMESPACES = ["pytest_voicelatency.vclock", "pytest_voicelatency.strategies",
                     "pytest_voicelatency.replay"]
SUB_PACKAGES = sorted(LAZY_NAMESPACES + MODULE_NAMESPACES)

#: Every name ``from pytest_voicelatency import ...`` offered in 0.1.0.
OLD_TOP_LEVEL = """
stage_span handoff_span turn_span StageTimer capture_spans Capture attach current_capture Sample
default_metric nearest_rank Estimate estimate Limit Verdict judge assert_quantile assert_p50
assert_p95 assert_p99 Clip load_clip list_clips AudioError EnergyVAD speech_regions VoiceAgent
AgentSession AudioFormat AgentAudio AgentClear AgentState AgentProtocolError Caller CallResult
AgentTimeoutError simulated_caller PlayoutConfig say answer barge_in pause background OracleAgent
OracleConfig tone_clip ReferenceServer ReferenceConfig spans_lie Clock RealClock
VoiceLatencyError VoiceLatencyUsageError VoiceLatencyWarning LatencyAssertionError
""".split()


def api_table() -> dict[str, list[str]]:
    """docs/api.md's first table: namespace -> the names in its row, in order."""
    rows = {}
    for line in API_DOC.splitlines():
        match = re.match(r"\| `(pytest_voicelatency[\w.]*)` \|(.*)\|\s*$", line)
        if match:
            names = dict.fromkeys(re.findall(r"`(\w+)`", match.group(2)))
            rows[match.group(1)] = [n for n in names if n != "__version__"]
    return rows


TABLE = api_table()
DOCUMENTED = sorted((ns, name) for ns, names in TABLE.items() for name in names)


def imports_in(text: str) -> list[tuple[str, str]]:
    """(module, name) of every ``from pytest_voicelatency... import ...`` in the code blocks
    (a block that is not Python, such as a signature, is read line by line)."""
    found = []
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        try:
            nodes = [n for n in ast.walk(ast.parse(block)) if isinstance(n, ast.ImportFrom)]
        except SyntaxError:
            nodes = [n for line in block.splitlines() if line.startswith("from ")
                     for n in ast.parse(line.split("#")[0].rstrip("\\ (") or "pass").body
                     if isinstance(n, ast.ImportFrom)]
        found += [(n.module, a.name) for n in nodes
                  if (n.module or "").startswith("pytest_voicelatency") for a in n.names]
    return found


#: what the optional extras install (an extra's absence may stop a name from resolving)
EXTRAS = " ".join(req for extra, reqs in tomllib.loads((ROOT / "pyproject.toml").read_text(
    encoding="utf-8"))["project"]["optional-dependencies"].items()
    if extra not in ("test", "lint") for req in reqs)


def resolve(module: str, name: str) -> object:
    """``from module import name``; skipped when an optional extra it needs is not installed."""
    try:
        return getattr(importlib.import_module(module), name)
    except Exception as error:  # an extra's import error, or the usage error that wraps it
        missing = [e for e in (error, error.__cause__) if isinstance(e, ModuleNotFoundError)]
        if not missing or (missing[0].name or "?").replace(".", "-") not in EXTRAS:
            raise
        pytest.skip(f"{module}.{name} needs an optional extra ({missing[0].name}): {error}")


def test_the_top_level_api_is_small():
    """About twenty names a test author needs; everything else lives in a namespace."""
    public = set(pytest_voicelatency.__all__) - {"__version__"}
    assert len(public) <= 25, sorted(public)
    assert {"stage_span", "voice_spans", "voice_caller", "assert_p95", "SessionTasks",
            "VoiceAgent", "load_clip", "VoiceLatencyError"} <= public


@pytest.mark.parametrize("namespace", ["pytest_voicelatency", *SUB_PACKAGES])
def test_each_namespace_exports_exactly_its_row_of_the_api_table(namespace):
    """``__all__`` is the documented list, ``dir()`` shows just that, and the lazy map agrees."""
    module = importlib.import_module(namespace)
    names = set(module.__all__) - {"__version__"}
    assert sorted(names) == sorted(TABLE.get(namespace, [])), \
        f"{namespace}.__all__ and its row in docs/api.md differ"
    lazy = getattr(module, "_EXPORTS", None)
    if lazy is not None:
        assert set(lazy) == names
        assert sorted(dir(module)) == sorted(module.__all__)


def test_each_public_name_has_one_import_path():
    """No name is exported by two namespaces (the top level included)."""
    seen: dict[str, str] = {}
    for namespace, names in TABLE.items():
        for name in names:
            assert name not in seen, f"{name} is documented in {seen[name]} and {namespace}"
            seen[name] = namespace


@pytest.mark.parametrize(("namespace", "name"), DOCUMENTED)
def test_every_documented_name_resolves_from_its_path(namespace, name):
    """What api.md lists imports from the path it gives, and says what it is."""
    value = resolve(namespace, name)
    if typing.get_origin(value) is typing.Literal:  # a type alias such as WallClock
        return
    if not name.isupper() and name != "__version__":  # constants carry no docstring of their own
        assert (getattr(value, "__doc__", None) or "").strip(), f"{name} has no docstring"


@pytest.mark.parametrize(("namespace", "name"), [
    (ns, n) for ns, n in DOCUMENTED
    if ns not in ("pytest_voicelatency.transports", "pytest_voicelatency.frameworks",
                  "pytest_voicelatency.export")])  # optional extras: their own docs run them
def test_every_documented_name_is_imported_from_its_path_in_a_runnable_example(namespace, name):
    """STYLE: api.md shows each name in use, imported from the one path it documents."""
    if name == "__version__":
        assert "pytest_voicelatency.__version__" in API_DOC
        return
    assert (namespace, name) in imports_in(API_DOC), \
        f"no example in docs/api.md does `from {namespace} import {name}`"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_import_written_in_the_docs_resolves_without_a_deprecation(doc):
    """README, fixtures_audio/README and docs/*.md import only names that exist, by a current
    path (a 0.1.0 path would warn)."""
    found = imports_in(doc.read_text(encoding="utf-8"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        for module, name in found:
            try:
                resolve(module, name)
            except pytest.skip.Exception:  # an optional extra: check the doc's other imports
                continue
    # ours only: importing an extra (Pipecat) warns about *its* dependencies the first time a
    # worker imports it, which says nothing about the paths the doc wrote
    ours = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)
            and "pytest_voicelatency" in str(w.message)]
    assert not ours, ours


@pytest.mark.parametrize("name", sorted(set(OLD_TOP_LEVEL) - set(pytest_voicelatency.__all__)))
def test_a_0_1_0_name_still_resolves_with_a_warning_naming_its_new_path(name):
    """Deprecated, not gone: the same object, a DeprecationWarning at the user's line."""
    message = rf"pytest_voicelatency\.{name} is deprecated: use `from pytest_voicelatency[\w.]* "
    with pytest.warns(DeprecationWarning, match=message) as caught:
        value = getattr(pytest_voicelatency, name)
    assert caught[0].filename == __file__
    new_path = re.search(r"from (\S+) import (\w+)", str(caught[0].message))
    assert value is getattr(importlib.import_module(new_path.group(1)), new_path.group(2))
    assert (new_path.group(1), new_path.group(2)) in DOCUMENTED
    assert name not in dir(pytest_voicelatency) and name not in pytest_voicelatency.__all__


def test_the_old_fixtures_path_of_the_twin_still_works_with_a_warning():
    """0.1.0's docs wrote ``from pytest_voicelatency.fixtures import simulated_caller``."""
    with pytest.warns(DeprecationWarning, match="import voice_caller"):
        from pytest_voicelatency.fixtures import simulated_caller
    assert simulated_caller is pytest_voicelatency.voice_caller


def test_an_unknown_name_is_an_attribute_error_naming_the_module():
    with pytest.raises(AttributeError, match="'pytest_voicelatency.audio' has no attribute"):
        importlib.import_module("pytest_voicelatency.audio").tones  # noqa: B018


def test_importing_every_namespace_loads_neither_numpy_nor_opentelemetry():
    """The plugin imports fixtures.py at start-up; namespaces resolve their names lazily."""
    code = ("import sys\n"
            + "".join(f"import {ns}\n" for ns in ["pytest_voicelatency", *LAZY_NAMESPACES,
                                                  "pytest_voicelatency.fixtures",
                                                  "pytest_voicelatency.plugin"])
            + "print(sorted(m for m in ('numpy', 'opentelemetry') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
