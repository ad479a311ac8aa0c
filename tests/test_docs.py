"""The documentation's examples run: README code blocks and every module's doctests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_voicelatency

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
MODULES = sorted(m.name for m in pkgutil.walk_packages(pytest_voicelatency.__path__,
                                                       "pytest_voicelatency.")
                 if m.name != "pytest_voicelatency.__main__")


def test_readme_starts_with_the_two_commands():
    """First the main job (install + examples with the table), then install + tests."""
    commands = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1)
    lines = [line for line in commands.splitlines() if line and not line.startswith("#")]
    assert "pip install ." in lines[0] and "pytest --voice-latency examples/" in lines[0]
    assert 'pip install -e ".[test]"' in lines[1] and "pytest" in lines[1]
    assert "pytest" in (ROOT / ".ci" / "run").read_text() and "[test]" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow  # real time: a whole pytest run of real-time calls
@pytest.mark.parametrize("index", [i for i, b in enumerate(BLOCKS) if "def test_" in b])
def test_readme_test_modules_pass_as_written(pytester, index):
    """README blocks that are test modules pass under pytest --voice-latency."""
    pytester.makepyfile(**{f"test_readme_{index}": BLOCKS[index]})
    result = pytester.runpytest_subprocess("--voice-latency", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=BLOCKS[index].count("\ndef test_"))
    result.stdout.fnmatch_lines(["*voice latency (ms)*"])


def run_script(path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script in a fresh interpreter; fail the test with its stderr if it fails."""
    path.write_text(code, encoding="utf-8")
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("index", [i for i, b in enumerate(BLOCKS) if "def test_" not in b])
def test_readme_scripts_run_as_written(tmp_path, index):
    """README blocks that are scripts run cleanly in a fresh interpreter."""
    run_script(tmp_path / f"readme_{index}.py", BLOCKS[index])


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests_pass(name):
    """Every public module's docstring examples run and give what they show."""
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


@pytest.mark.parametrize("name", sorted(pytest_voicelatency.__all__))
def test_every_public_name_resolves_and_is_documented(name):
    """Everything in __all__ imports lazily and has a docstring."""
    value = getattr(pytest_voicelatency, name)
    if name != "__version__":
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"


AGENTS_DOC = (ROOT / "docs" / "agents.md").read_text(encoding="utf-8")
AGENT_BLOCKS = re.findall(r"```python\n(.*?)```", AGENTS_DOC, flags=re.S)
BEEP_AGENT = next(b for b in AGENT_BLOCKS if "class BeepAgent" in b)


@pytest.mark.slow  # real time: a whole pytest run of real-time calls
def test_the_agents_doc_example_agent_passes_its_example_test(pytester):
    """docs/agents.md: the BeepAgent and the test written for it pass as written."""
    test = next(b for b in AGENT_BLOCKS if "def test_" in b)
    pytester.makepyfile(test_beep=BEEP_AGENT + "\n\n" + test)
    result = pytester.runpytest_subprocess("--voice-latency", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["caller.response*latency_ms*10 *"])


def test_the_agents_doc_context_manager_example_runs(tmp_path):
    """docs/agents.md: the simulated_caller() twin runs one call outside pytest."""
    script = next(b for b in AGENT_BLOCKS if "with simulated_caller()" in b)
    result = run_script(tmp_path / "beep.py", BEEP_AGENT + "\n\n" + script)
    assert 250 < float(result.stdout.strip().splitlines()[-1]) < 2000  # ~300 ms reply delay


API_DOC = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
API_BLOCKS = re.findall(r"```python\n(.*?)```", API_DOC, flags=re.S)


@pytest.mark.parametrize("index", range(len(API_BLOCKS)))
def test_the_api_reference_examples_run_as_written(tmp_path, index):
    """docs/api.md: every example is a complete script that runs cleanly."""
    run_script(tmp_path / f"api_{index}.py", API_BLOCKS[index])


@pytest.mark.parametrize("name", sorted(set(pytest_voicelatency.__all__) - {"__version__"}))
def test_every_public_name_has_a_runnable_example_in_the_api_reference(name):
    """STYLE: each public name is shown in use in an example the suite runs."""
    assert any(re.search(rf"\b{re.escape(name)}\b", block) for block in API_BLOCKS), name
