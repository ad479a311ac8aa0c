"""End to end through pytest: ``--voice-latency-otlp`` and ``--voice-latency-spans-json`` in an
inner run, with and without pytest-xdist, into a real receiver (oteltest's ``otelsink`` on
127.0.0.1) and a file."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from otlp_receiver import EXTRA, Received

INNER_TEST = """
import pytest
from pytest_voicelatency import stage_span


@pytest.mark.voice_latency
@pytest.mark.parametrize("call", range(4))
def test_turns(voice_spans, call):
    for turn in range(5):
        with stage_span("asr", f"sess_{call}", turn) as first_partial:
            first_partial()
        with stage_span("tts", f"sess_{call}", turn) as first_chunk:
            first_chunk()
"""


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_exports_its_spans_and_histograms(pytester: pytest.Pytester, receiver: Received,
                                                workers: int) -> None:
    pytester.makepyfile(test_inner=INNER_TEST)
    out = pytester.path / "run-spans.json"
    args = ["--voice-latency", f"--voice-latency-otlp={receiver.url}",
            f"--voice-latency-spans-json={out}", "-p", "no:cacheprovider"]
    result = pytester.runpytest_subprocess(*args, *(["-n", str(workers)] if workers else []),
                                           timeout=300)
    result.assert_outcomes(passed=4)
    assert "could not export" not in result.stdout.str()
    assert sorted(receiver.span_names()) == sorted(["audio.asr", "audio.tts"] * 20)
    assert ("asr", "first_byte_ms", "ok") in receiver.series()
    request = json.loads(out.read_text(encoding="utf-8"))
    spans = [s for rs in request["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(spans) == 40 and {s["name"] for s in spans} == {"audio.asr", "audio.tts"}
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".run-spans")] == []


@pytest.mark.slow
def test_a_down_endpoint_warns_and_keeps_the_exit_code(pytester: pytest.Pytester,
                                                       tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason=f"needs {EXTRA}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    pytester.makepyfile(test_inner=INNER_TEST)
    out = tmp_path / "spans.json"
    result = pytester.runpytest_subprocess("--voice-latency", f"--voice-latency-otlp={url}",
                                           f"--voice-latency-spans-json={out}", timeout=300)
    result.assert_outcomes(passed=4)
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*could not export spans to {url}/v1/traces*"])
    assert out.exists()


def test_otlp_without_a_url_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest_subprocess("--voice-latency-otlp=localhost:4318", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*not a URL*"])
