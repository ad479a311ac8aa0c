"""Replay files: the documented example (docs/frameworks.md, "Replay files") runs as written,
a replay whose samples differ fails naming both, and a saver may replace the saved timeline
(e.g. with a scripted backend's rows merged in) without changing what a replay compares."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_voicelatency.agents.reference import ReferenceServer
from pytest_voicelatency.call.caller import Caller
from pytest_voicelatency.call.metrics import timeline
from pytest_voicelatency.call.script import answer, barge_in, say
from pytest_voicelatency.replay import (
    ReplayMismatch,
    load_replay,
    run_replay,
    samples_of,
    save_replay,
)
from pytest_voicelatency.vclock import VirtualClock

try:
    import pipecat
except ImportError:  # the [pipecat] extra is not installed
    pipecat = None

ROOT = Path(__file__).resolve().parent.parent
needs_pipecat = pytest.mark.skipif(pipecat is None, reason="pipecat-ai is not installed: pip "
                                   "install 'pytest-voicelatency[pipecat]'")


@needs_pipecat
def test_the_documented_replay_example_runs_as_written(tmp_path):
    doc = (ROOT / "docs" / "frameworks.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S)
                if "save_replay(" in b and "run_replay(" in b and "pipecat_services" in b]
    example = tmp_path / "replay_example.py"
    example.write_text(block, encoding="utf-8")
    result = subprocess.run([sys.executable, str(example)], capture_output=True, text=True,
                            timeout=300, check=False, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "tests")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"replayed racy.json with identical samples: \{'caller.response'",
                     result.stdout), result.stdout


@needs_pipecat
def test_a_replay_whose_saved_samples_differ_fails_showing_both(tmp_path):
    script = [say("confirm_order"), barge_in("wait_stop", after_ms=300, stop_timeout_ms=1000),
              answer(until="done")]
    path = save_replay(tmp_path / "r.json", script=script,
                       factory="pipecat_services:make_agent")
    data = json.loads(path.read_text())
    data["samples"] = {"caller.response": [1.0]}
    path.write_text(json.dumps(data))
    with pytest.raises(ReplayMismatch, match=r"saved \{'caller.response': \[1.0\]\}"):
        run_replay(path)


def test_saved_timeline_rows_replace_the_calls_timeline_and_the_replay_still_compares_samples(
        tmp_path):
    script = [say("confirm_order"), answer()]
    result = Caller(clock=VirtualClock(wall_clock="virtual")).run(ReferenceServer(), script)
    factory = "pytest_voicelatency.agents.reference:ReferenceServer"
    plain = save_replay(tmp_path / "plain.json", script=script, factory=factory, result=result)
    assert load_replay(plain)["timeline"] == timeline(result.log, rows=40).splitlines()
    rows = ["   3010.000 ms  request #0 'table for 2 at 19:00' sent (400 ms)",
            *timeline(result.log, rows=40).splitlines()]
    merged = save_replay(tmp_path / "merged.json", script=script, factory=factory,
                         result=result, timeline_rows=rows)
    data = load_replay(merged)
    assert data["timeline"] == rows and data["version"] == 1
    assert data["samples"] == load_replay(plain)["samples"] == samples_of(result)
    again, _spans = run_replay(merged)
    assert samples_of(again) == samples_of(result)


# ---------------------------------------------------------------------- bad replay files


def _good(tmp_path: Path) -> dict:
    script = [say("hello"), answer()]
    path = save_replay(tmp_path / "good.json", script=script,
                       factory="pytest_voicelatency.agents.reference:ReferenceServer")
    return json.loads(path.read_text())


def _edit(data: dict, key: str, value: object) -> dict:
    out = json.loads(json.dumps(data))
    if value is KeyError:
        out.pop(key)
    else:
        out[key] = value
    return out


@pytest.mark.parametrize(("edit", "says"), [
    (lambda d: json.dumps(d)[:150], "is not valid JSON (*): truncated or edited by hand?*"),
    (lambda d: json.dumps(_edit(d, "script", KeyError)), "*no 'script' (a list of steps)*"),
    (lambda d: json.dumps(_edit(d, "agent", {"knobs": {}})), "*no 'agent.factory'*"),
    (lambda d: json.dumps(_edit(d, "clock", {"kind": "real"})), "*not a virtual clock*"),
    (lambda d: json.dumps(_edit(d, "script", [{"step": "say", "clip": "hello"},
                                              {"step": "shout"}])),
     "*script step 2 ({'step': 'shout'}) is not one of say, answer, barge_in, pause*"),
    (lambda d: json.dumps(_edit(d, "script", [{"step": "say", "clp": "hello"}])),
     "*script step 1 (*): *unexpected keyword argument 'clp'*"),
    (lambda d: "\udcff" + json.dumps(d), "cannot be read (*codec can't decode*)"),
    (lambda d: "[" * 100_000, "is not valid JSON (*): truncated or edited by hand?*"),
    (lambda d: json.dumps(_edit(d, "playout", {"bogus": 1})),
     "*'playout': *unexpected keyword argument 'bogus'"),
    (lambda d: json.dumps(_edit(d, "clock", {"kind": "virtual", "wall_clock": "bogus"})),
     "*'clock': VirtualClock wall_clock must be 'guard', 'virtual' or 'ignore', got 'bogus'"),
], ids=["truncated", "no-script", "no-factory", "real-clock", "unknown-step", "bad-field",
        "not-utf8", "nested-too-deep", "unknown-playout-key", "bad-wall-clock"])
def test_a_bad_replay_file_is_a_usage_error_naming_the_file_and_the_fault(tmp_path, edit, says):
    from fnmatch import fnmatch

    from pytest_voicelatency.errors import VoiceLatencyUsageError

    path = tmp_path / "bad.json"
    path.write_text(edit(_good(tmp_path)), errors="surrogateescape")
    with pytest.raises(VoiceLatencyUsageError) as raised:
        load_replay(path)
    assert str(path) in str(raised.value)
    assert fnmatch(str(raised.value), f"*{says}"), str(raised.value)


@pytest.mark.parametrize(("factory", "says"), [
    ("pipecat_service:make_agent", "no module named 'pipecat_service' here*PYTHONPATH*"),
    ("pytest_voicelatency.agents.reference:Nope", "module * has no 'Nope'"),
])
def test_a_replay_whose_factory_cannot_be_found_names_agent_factory(tmp_path, factory, says):
    from fnmatch import fnmatch

    from pytest_voicelatency.errors import VoiceLatencyUsageError

    data = _good(tmp_path)
    data["agent"]["factory"] = factory
    path = tmp_path / "moved.json"
    path.write_text(json.dumps(data))
    with pytest.raises(VoiceLatencyUsageError) as raised:
        run_replay(path)
    assert fnmatch(str(raised.value), f"the replay's agent.factory {factory!r}: {says}"), \
        str(raised.value)


def test_knobs_the_factory_does_not_take_name_agent_knobs(tmp_path):
    from pytest_voicelatency.errors import VoiceLatencyUsageError

    data = _good(tmp_path)
    data["agent"]["knobs"] = {"gap_ms": 40}
    path = tmp_path / "knobs.json"
    path.write_text(json.dumps(data))
    with pytest.raises(VoiceLatencyUsageError, match=r"agent.factory '.*ReferenceServer' with "
                       r"agent.knobs \{'gap_ms': 40\}: .*unexpected keyword argument 'gap_ms'"):
        run_replay(path)


def test_a_replay_without_a_clock_runs_on_the_default_virtual_clock(tmp_path):
    data = _good(tmp_path)
    del data["clock"]
    path = tmp_path / "no_clock.json"
    path.write_text(json.dumps(data))
    assert run_replay(path)[0].metrics.responses[0].outcome == "ok"
