"""The documentation's examples run: README code blocks and every module's doctests."""

from __future__ import annotations

import doctest
import importlib
import json
import pkgutil
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import pytest_voicelatency
from pytest_voicelatency.agents import ReferenceConfig

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
#: what the optional extras install
EXTRAS = " ".join(req for extra, reqs in tomllib.loads((ROOT / "pyproject.toml").read_text(
    encoding="utf-8"))["project"]["optional-dependencies"].items()
    if extra not in ("test", "lint") for req in reqs)
MODULES = sorted(m.name for m in pkgutil.walk_packages(pytest_voicelatency.__path__,
                                                       "pytest_voicelatency.")
                 if m.name != "pytest_voicelatency.__main__")


def test_readme_starts_with_the_two_commands():
    """First the main job (install + examples with the table), then install + tests."""
    commands = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1)
    lines = [line for line in commands.splitlines() if line and not line.startswith("#")]
    assert "pip install ." in lines[0] and "pytest --voice-latency examples/" in lines[0]
    assert 'pip install -e ".[test]"' in lines[1] and "pytest" in lines[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pytest" in ci and re.search(r"\[test\b", ci)  # CI installs the test extra too


def test_readme_shows_the_package_as_it_is_laid_out():
    """README's folder listing names every sub-package, and only those; its Documentation list
    links every page in docs/."""
    listing = re.search(r"```text\n(pytest_voicelatency/\n.*?)```", README, flags=re.S).group(1)
    listed = set(re.findall(r"── (\w+)/", listing))
    present = {p.parent.name for p in (ROOT / "pytest_voicelatency").glob("*/__init__.py")}
    assert listed == present
    for name in listed:
        assert f"- `{name}/`" in README, f"say in one sentence what {name}/ is for"
    for page in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in README, f"README's Documentation list misses {page.name}"


@pytest.mark.slow  # real time: a whole pytest run of real-time calls
@pytest.mark.parametrize("index", [i for i, b in enumerate(BLOCKS) if "def test_" in b])
def test_readme_test_modules_pass_as_written(pytester, index):
    """README blocks that are test modules pass under pytest --voice-latency."""
    pytester.makepyfile(**{f"test_readme_{index}": BLOCKS[index]})
    result = pytester.runpytest_subprocess("--voice-latency", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=BLOCKS[index].count("\ndef test_"))
    result.stdout.fnmatch_lines(["*voice latency (ms)*"])


def run_script(path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script in a fresh interpreter; fail the test with its stderr if it fails
    (a deprecated pytest_voicelatency path is a failure too)."""
    path.write_text(code, encoding="utf-8")
    result = subprocess.run([sys.executable, "-W", "error:pytest_voicelatency:DeprecationWarning",
                             str(path)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("index", [i for i, b in enumerate(BLOCKS) if "def test_" not in b])
def test_readme_scripts_run_as_written(tmp_path, index):
    """README blocks that are scripts run cleanly in a fresh interpreter."""
    run_script(tmp_path / f"readme_{index}.py", BLOCKS[index])


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests_pass(name):
    """Every public module's docstring examples run and give what they show (a module that needs
    an optional extra which is not installed is skipped)."""
    try:
        module = importlib.import_module(name)
    except Exception as error:  # the extra's ModuleNotFoundError, or a usage error wrapping it
        missing = next((e for e in (error, error.__cause__)
                        if isinstance(e, ModuleNotFoundError)), None)
        if missing is None or (missing.name or "?").replace(".", "-") not in EXTRAS:
            raise
        pytest.skip(f"{name} needs an optional extra ({missing.name})")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


AGENTS_DOC = (ROOT / "docs" / "agents.md").read_text(encoding="utf-8")
AGENT_BLOCKS = re.findall(r"```python\n(.*?)```", AGENTS_DOC, flags=re.S)
BEEP_AGENT = next(b for b in AGENT_BLOCKS if "class BeepAgent" in b)


@pytest.mark.slow  # real time: a whole pytest run of real-time calls
def test_the_agents_doc_example_agent_passes_its_example_test(pytester):
    """docs/agents.md: the BeepAgent and the test written for it pass as written."""
    test = next(b for b in AGENT_BLOCKS if "def test_beep_agent" in b)
    pytester.makepyfile(test_beep=BEEP_AGENT + "\n\n" + test)
    result = pytester.runpytest_subprocess("--voice-latency", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["caller.response*latency_ms*10 *"])


def quoted(text: str, pattern: str) -> float:
    """The figure a doc quotes where ``pattern`` (a regex with one number group) matches."""
    match = re.search(pattern, text, flags=re.S)
    assert match, f"the docs no longer say {pattern!r}"
    return float(match.group(1))


@pytest.mark.slow  # real time: two calls
def test_the_agents_doc_twin_example_runs_and_measures_what_the_doc_says(tmp_path):
    """docs/agents.md: the voice_caller() twin runs BeepAgent outside pytest; its reply is heard
    ~345-355 ms after the user stops, and a barge-in it cannot honour hears the rest of its
    tone (~300 ms), as the text says."""
    script = next(b for b in AGENT_BLOCKS if "with voice_caller() as caller:" in b)
    result = run_script(tmp_path / "beep.py", BEEP_AGENT + "\n\n" + script)
    response, barge_in = map(float, result.stdout.split()[-2:])
    low = quoted(AGENTS_DOC, r"It answers in ~(\d+)–\d+ ms")
    high = quoted(AGENTS_DOC, r"It answers in ~\d+–(\d+) ms")
    assert low - 5 <= response <= high + 15, response   # + room for a late event loop
    tail = quoted(AGENTS_DOC, r"rest of the tone still playing at the listener — ~(\d+) ms")
    assert abs(barge_in - tail) <= 10, barge_in


def test_the_agents_doc_labelled_clip_example_runs(tmp_path):
    """docs/agents.md, "Your own clips": the labelling example runs."""
    script = next(b for b in AGENT_BLOCKS if "replace(recording" in b)
    assert run_script(tmp_path / "label.py", script).stdout.split() == ["200.0", "1000.0"]


def test_the_labels_json_entries_shown_in_the_docs_have_the_manifests_shape():
    """fixtures_audio/README.md quotes a real entry; docs/agents.md's own-clip entry uses only
    the manifest's fields."""
    manifest = json.loads((ROOT / "fixtures_audio" / "labels.json").read_text(encoding="utf-8"))
    entries = {c["name"]: c for c in manifest["clips"]}
    readme = (ROOT / "fixtures_audio" / "README.md").read_text(encoding="utf-8")
    [shown] = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", readme, flags=re.S)]
    assert shown == entries[shown["name"]]
    [mine] = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", AGENTS_DOC, flags=re.S)]
    assert set(mine) <= set(shown) and {"onset_ms", "offset_ms", "file"} <= set(mine)


README_CALLER = next(b for b in BLOCKS if "def agent():" in b)
README_HYPOTHESIS = next(b for b in BLOCKS if "@given" in b)


def medians(tmp_path: Path, definitions: str, calls: str, *stages: str) -> list[float]:
    """Run a README block's definitions, then ``calls`` (with ``caller``) under one capture;
    the median of each stage's samples."""
    program = definitions + textwrap.dedent("""

        import numpy as np
        from pytest_voicelatency import voice_caller, voice_spans

        with voice_spans() as spans, voice_caller() as caller:
            {calls}
        for stage in {stages!r}:
            print(float(np.median(spans.select(stage).values)))
        """).format(calls=calls, stages=stages)
    out = run_script(tmp_path / "figures.py", program).stdout.split()
    return [float(x) for x in out[-len(stages):]]


@pytest.mark.slow  # real time: four concurrent calls
def test_the_readme_caller_example_measures_the_figures_it_quotes(tmp_path):
    """README: the oracle is "heard ~390 ms after the user stops ... silent ~61 ms after a
    barge-in" — its delays, the 40 ms jitter buffer, and a clear that skips the buffer."""
    response, barge_in = medians(tmp_path, README_CALLER, "caller.run_calls(agent, [CALL] * 4)",
                                 "caller.response", "caller.barge_in")
    assert abs(response - quoted(README_CALLER, r"heard ~(\d+) ms after the user stops")) <= 10
    assert abs(barge_in - quoted(README_CALLER, r"silent ~(\d+) ms after a barge-in")) <= 10


def test_the_readme_property_test_example_quotes_the_reference_agents_bound():
    """README's hypothesis example: "the agent's bound: 220 ms" is what the reference agent
    promises on the default line (ReferenceConfig.stop_bound_ms), and the example's limit sits
    above it. (The example itself runs as written in test_readme_test_modules_pass_as_written.)"""
    bound = ReferenceConfig().stop_bound_ms()
    assert abs(bound - quoted(README_HYPOTHESIS, r"the agent's bound: (\d+) ms")) <= 0.5
    assert bound < quoted(README_HYPOTHESIS, r"stop\.heard_ms < (\d+)")


API_DOC = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
API_BLOCKS = re.findall(r"```python\n(.*?)```", API_DOC, flags=re.S)


@pytest.mark.parametrize("index", range(len(API_BLOCKS)))
def test_the_api_reference_examples_run_as_written(tmp_path, index):
    """docs/api.md: every example is a complete script that runs cleanly."""
    run_script(tmp_path / f"api_{index}.py", API_BLOCKS[index])
