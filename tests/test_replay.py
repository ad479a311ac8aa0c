"""Replay files: the documented example (docs/frameworks.md, "Replay files") runs as written,
and a replay whose samples differ fails naming both."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pipecat", reason="pipecat-ai is not installed")

from pytest_voicelatency.call.script import answer, barge_in, say  # noqa: E402
from pytest_voicelatency.replay import ReplayMismatch, run_replay, save_replay  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_the_documented_replay_example_runs_as_written(tmp_path):
    doc = (ROOT / "docs" / "frameworks.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S)
                if "save_replay(" in b and "run_replay(" in b]
    example = tmp_path / "replay_example.py"
    example.write_text(block, encoding="utf-8")
    result = subprocess.run([sys.executable, str(example)], capture_output=True, text=True,
                            timeout=300, check=False, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "tests")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"replayed racy.json with identical samples: \{'caller.response'",
                     result.stdout), result.stdout


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
