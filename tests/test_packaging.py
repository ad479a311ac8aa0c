"""The wheel is what users install: it carries the plugin entry point and every audio fixture."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                             str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{result.stderr[-3000:]}")
    return next(out.glob("*.whl"))


def test_wheel_ships_every_fixture_and_the_entry_point(wheel):
    """Each clip in SHA256SUMS is inside the package; pytest11 points at the plugin."""
    names = zipfile.ZipFile(wheel).namelist()
    sums = (ROOT / "fixtures_audio" / "SHA256SUMS").read_text().split("\n")
    for line in filter(None, sums):
        assert f"pytest_voicelatency/fixtures_audio/{line.split()[-1]}" in names
    assert "pytest_voicelatency/fixtures_audio/labels.json" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry).decode()
    assert "[pytest11]" in text and "voicelatency = pytest_voicelatency.plugin" in text


def test_load_clip_works_from_the_installed_wheel(wheel, tmp_path):
    """Unpacked away from the source tree, load_clip finds the bundled clips inside the package."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import pytest_voicelatency as p; from pytest_voicelatency import load_clip;"
            "from pytest_voicelatency.audio import list_clips;"
            "c = load_clip('cancel_order');"
            f"assert p.__file__.startswith({str(site)!r}), p.__file__;"
            "print(len(list_clips()), c.transcript, c.source.parent.name)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1:] == ["I", "want", "to", "cancel", "my", "order",
                                         "fixtures_audio"]


def test_wheel_ships_the_example_suite_and_the_readme_copies_it_out(wheel, tmp_path):
    """The example suite is a template to copy: every file of examples/ is in the wheel, and the
    README's command copies it out of an installed package into a suite pytest collects."""
    names = zipfile.ZipFile(wheel).namelist()
    for path in (ROOT / "examples").glob("*.py"):
        assert f"pytest_voicelatency/examples/{path.name}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    at = next(i for i, line in enumerate(lines)
              if line.startswith("python -c") and "examples" in line)
    command, run = lines[at], lines[at + 1]  # the copy, then the run of the copy
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    code = shlex.split(command)[2]
    copied = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, env=env, timeout=120, check=False)
    assert copied.returncode == 0, copied.stderr
    suite = re.fullmatch(r"pytest --voice-latency (\S+)/", run).group(1)
    assert sorted(p.name for p in (tmp_path / suite).glob("*.py")) == sorted(
        p.name for p in (ROOT / "examples").glob("*.py"))
    collected = subprocess.run([sys.executable, "-m", "pytest", "--voice-latency", suite,
                                "--collect-only", "-q", "-p", "no:cacheprovider"], cwd=tmp_path,
                               capture_output=True, text=True, env=env, timeout=300, check=False)
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    assert "9 tests collected" in collected.stdout


def framework_pins() -> dict[str, str]:
    """``.ci/constraints.txt``: the framework versions CI installs the extras with."""
    pins = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f".ci/constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[name.strip()] = version.strip()
    return pins


def test_ci_installs_the_framework_extras_with_the_pins_the_docs_name_as_supported():
    pins = framework_pins()
    assert set(pins) == {"pipecat-ai", "livekit-agents"}
    assert '-c .ci/constraints.txt' in (ROOT / ".ci" / "run").read_text()
    [supported] = [line for line in (ROOT / "docs" / "frameworks.md").read_text().split("\n\n")
                   if line.startswith("Supported (pinned, tested):")]
    for name, version in pins.items():
        assert f"**{name} {version}**" in supported, (name, version, supported)


@pytest.mark.parametrize("dist", ["pipecat-ai", "livekit-agents"])
def test_an_installed_framework_is_the_pinned_version(dist):
    """What the framework tests prove holds for the pinned version: run against another one,
    this test says so by name instead of letting the suite pass for a version nobody tested."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version(dist)
    except PackageNotFoundError:
        pytest.skip(f"{dist} is not installed (the framework extras are optional)")
    assert installed == framework_pins()[dist], (
        f"{dist} {installed} is installed, but the suite is pinned to "
        f"{framework_pins()[dist]} (.ci/constraints.txt); install with "
        f"`pip install -e \".[pipecat,livekit]\" -c .ci/constraints.txt`, or move the pin "
        f"after a green run on {installed}")
