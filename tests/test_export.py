"""Export: spans and per-stage histograms over real OTLP/HTTP into a real receiver (oteltest's
``otelsink``, bound to 127.0.0.1 on a free port), spans as an OTLP JSON file checked against the
official OTLP protobuf encoder, the xdist data path, and an endpoint that is down."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from otlp_receiver import EXTRA, Received

from pytest_voicelatency import stage_span
from pytest_voicelatency.export.metrics import BOUNDARIES, INSTRUMENT, collect_metrics, outcome
from pytest_voicelatency.export.otlp_json import SpanBuffer, encode_spans, span_count

ROOT = Path(__file__).resolve().parent.parent
HEX32, HEX16 = re.compile(r"^[0-9a-f]{32}$"), re.compile(r"^[0-9a-f]{16}$")


def _otlp() -> Any:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason=f"needs {EXTRA}")
    from pytest_voicelatency.export import otlp

    return otlp


def _provider() -> TracerProvider:
    return TracerProvider(resource=Resource.create({"service.name": "voice-agent-under-test"}))


def _emit_turn(provider: TracerProvider, session: str = "sess_export") -> None:
    """An agent's ASR stage and the simulated caller's black-box span, as the real code emits."""
    tracer = provider.get_tracer("voice.test")
    with stage_span("asr", session, 1, tracer=tracer) as first_partial:
        first_partial()
    with tracer.start_as_current_span("caller.response") as span:
        span.set_attributes({"audio.stage": "caller.response", "audio.session_id": session,
                             "audio.turn_id": "1", "audio.response_ms": 412.0})


# -- OTLP/HTTP into a real receiver ---------------------------------------------------------

def test_spans_land_in_a_real_otlp_receiver(receiver: Received) -> None:
    otlp = _otlp()
    provider = _provider()
    exporting = otlp.start(receiver.url, provider, timeout_s=5)
    _emit_turn(provider)
    assert exporting.finish([], timeout_s=5) == []

    spans = {s.name: s for s in receiver.spans()}
    assert set(spans) == {"audio.asr", "caller.response"}
    attrs = {kv.key: kv.value for kv in spans["audio.asr"].attributes}
    assert attrs["audio.stage"].string_value == "asr"
    assert attrs["audio.session_id"].string_value == "sess_export"
    assert {"audio.turn_id", "audio.first_byte_ms", "audio.total_ms"} <= set(attrs)
    assert attrs["audio.first_byte_ms"].double_value >= 0
    caller = {kv.key: kv.value for kv in spans["caller.response"].attributes}
    assert caller["audio.response_ms"].double_value == 412.0
    resource = {kv.key: kv.value.string_value
                for kv in receiver.traces[0].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "voice-agent-under-test"


def test_the_default_provider_is_the_one_the_plugin_captures_from(receiver: Received) -> None:
    otlp = _otlp()
    exporting = otlp.start(receiver.url, timeout_s=5)  # the global SDK provider, via attach()
    with stage_span("tts", "sess_global", 3) as first_chunk:
        first_chunk()
    assert exporting.finish(timeout_s=5) == []
    assert [s.name for s in receiver.spans()
            if any(kv.value.string_value == "sess_global" for kv in s.attributes)] == ["audio.tts"]


def test_metrics_land_with_the_bucket_boundaries_and_no_session_id(receiver: Received) -> None:
    otlp = _otlp()
    exporting = otlp.start(receiver.url, _provider(), timeout_s=5)
    samples = [("asr", "first_byte_ms", v, "ok") for v in (12.0, 90.0, 140.0, 160.0)]
    samples += [("barge_in", "silence_ms", 180.0, "ok"),
                ("barge_in", "silence_ms", 900.0, "missed"),
                ("llm", "first_byte_ms", -1.0, "ok")]  # produced nothing: no latency to bucket
    assert exporting.finish(samples, timeout_s=5) == []

    points = receiver.points()
    assert {m.name for m, _ in points} == {INSTRUMENT}
    assert {m.unit for m, _ in points} == {"ms"}
    by_series = {}
    for _, point in points:
        attrs = {kv.key: kv.value.string_value for kv in point.attributes}
        assert set(attrs) == {"stage", "metric", "outcome"}  # never the session id
        assert list(point.explicit_bounds) == list(BOUNDARIES)
        by_series[attrs["stage"], attrs["metric"], attrs["outcome"]] = point
    assert set(by_series) == {("asr", "first_byte_ms", "ok"), ("barge_in", "silence_ms", "ok"),
                              ("barge_in", "silence_ms", "missed")}
    asr = by_series["asr", "first_byte_ms", "ok"]
    assert asr.count == 4 and asr.sum == pytest.approx(402.0)
    # (..10], (10, 25], ..., (75, 100], (100, 150], (150, 200] ...: 12 → 2nd, 90 → 5th, 140 → 6th
    assert list(asr.bucket_counts[:8]) == [0, 1, 0, 0, 1, 1, 1, 0]


@pytest.mark.parametrize("down", ["refused", "silent"])
def test_an_endpoint_that_is_down_costs_a_warning_within_the_timeout(down: str) -> None:
    otlp = _otlp()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        if down == "silent":
            sock.listen(8)  # accepts connections (backlog), never answers: a hung collector
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        if down == "refused":
            sock.close()
        timeout_s = 1.0
        provider = _provider()
        exporting = otlp.start(url, provider, timeout_s=timeout_s)
        _emit_turn(provider)
        began = time.monotonic()
        warnings = exporting.finish([("asr", "first_byte_ms", 100.0, "ok")], timeout_s=timeout_s)
        elapsed = time.monotonic() - began
    assert elapsed < 2 * timeout_s, f"finish took {elapsed:.2f} s with a {timeout_s} s timeout"
    assert warnings and all(url in w and "\n" not in w for w in warnings), warnings


def test_a_second_finish_does_nothing_and_a_finished_export_goes_inert(receiver: Received) -> None:
    otlp = _otlp()
    provider = _provider()
    exporting = otlp.start(receiver.url, provider, timeout_s=5)
    assert exporting.finish(timeout_s=5) == [] and exporting.finish(timeout_s=5) == []
    _emit_turn(provider)  # after the run: not sent, no error from a shut-down processor
    assert exporting.spans_seen == 0 and receiver.spans() == []


def test_bad_endpoint_and_timeout_are_usage_errors() -> None:
    otlp = _otlp()
    from pytest_voicelatency.errors import VoiceLatencyUsageError

    with pytest.raises(VoiceLatencyUsageError, match="not a URL"):
        otlp.start("localhost:4318", _provider())
    with pytest.raises(VoiceLatencyUsageError, match="timeout"):
        otlp.start("http://127.0.0.1:4318", _provider(), timeout_s=0)
    assert otlp.signal_url("http://c:4318/", "traces") == "http://c:4318/v1/traces"
    assert otlp.signal_url("http://c:4318/v1/traces", "metrics") == "http://c:4318/v1/metrics"


def test_without_the_extra_the_package_loads_and_otlp_names_the_install() -> None:
    """Hide the exporter packages: the package, the plugin and the JSON path still work."""
    code = (
        "import sys\n"
        "for name in ('opentelemetry.exporter.otlp.proto.http',\n"
        "             'opentelemetry.exporter.otlp.proto.http.trace_exporter',\n"
        "             'opentelemetry.exporter.otlp.proto.http.metric_exporter'):\n"
        "    sys.modules[name] = None\n"
        "import pytest_voicelatency, pytest_voicelatency.plugin, pytest_voicelatency.export as e\n"
        "assert e.SpanBuffer and e.collect_metrics\n"
        "try:\n"
        "    e.start\n"
        "except pytest_voicelatency.VoiceLatencyUsageError as exc:\n"
        "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "pip install 'pytest-voicelatency[otlp]'" in done.stdout


# -- the OTLP JSON file ---------------------------------------------------------------------

def _rich_spans() -> list[Any]:
    """Spans using every field the encoder writes: parent, events, links, status, arrays."""
    provider, memory = _provider(), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("voice.test", "1.2")
    with tracer.start_as_current_span("voice.turn", kind=SpanKind.SERVER) as turn:
        turn.set_attributes({"audio.session_id": "s1", "audio.turn_id": 7, "flag": True,
                             "words": ["wait", "stop"], "ratio": 0.5})
        with stage_span("barge_in", "s1", 7, tracer=tracer) as barge_in:
            barge_in.mark("silence_ms")
        with tracer.start_as_current_span("llm", links=[Link(turn.get_span_context(),
                                                             {"why": "follows"})]) as llm:
            llm.add_event("first_token", {"audio.first_byte_ms": 88.0})
            llm.set_status(Status(StatusCode.ERROR, "cancelled"))
    return list(memory.get_finished_spans())


def test_otlp_json_has_hex_ids_integer_enums_and_every_span() -> None:
    spans = _rich_spans()
    request = json.loads(json.dumps(encode_spans(spans)))
    assert span_count(request) == len(spans) == 3
    written = [s for rs in request["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    for span, out in zip(spans, written):
        assert HEX32.match(out["traceId"]) and HEX16.match(out["spanId"])
        assert int(out["traceId"], 16) == span.context.trace_id
        assert int(out["spanId"], 16) == span.context.span_id
        assert isinstance(out["kind"], int)
    assert {s["name"]: s.get("parentSpanId") for s in written}["llm"] == written[-1]["spanId"]


def test_otlp_json_decodes_to_what_the_official_otlp_encoder_sends() -> None:
    """Parsed with the protobuf JSON mapping into opentelemetry-proto's own message type (ids
    converted back from OTLP's hex to protobuf's base64), it equals the OTLP exporter's request."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.common", reason=f"needs {EXTRA}")
    from google.protobuf import json_format
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans = _rich_spans()

    def hex_to_base64(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (base64.b64encode(bytes.fromhex(v)).decode() if k in
                        ("traceId", "spanId", "parentSpanId") else hex_to_base64(v))
                    for k, v in node.items()}
        return [hex_to_base64(v) for v in node] if isinstance(node, list) else node

    ours = json_format.Parse(json.dumps(hex_to_base64(encode_spans(spans))),
                             ExportTraceServiceRequest())
    assert ours == official(spans)


def test_spans_travel_from_workers_to_one_atomic_file(tmp_path: Path) -> None:
    """The xdist path: each worker drains per test, the controller receives and writes."""
    controller = SpanBuffer()
    for worker in range(2):
        provider, buffer = _provider(), SpanBuffer()
        provider.add_span_processor(buffer)
        for test in range(3):
            _emit_turn(provider, session=f"w{worker}t{test}")
            payload = buffer.drain()
            assert payload is not None
            controller.receive(json.loads(json.dumps(payload)))  # survives a JSON round trip
        assert buffer.drain() is None
    target = tmp_path / "out" / "spans.json"
    assert controller.write(target) == []
    request = json.loads(target.read_text(encoding="utf-8"))
    assert span_count(request) == 2 * 3 * 2
    assert len(request["resourceSpans"]) == 1  # same resource and scope: merged, not repeated
    assert [p.name for p in target.parent.iterdir()] == ["spans.json"]  # no temporary left


def test_the_span_cap_keeps_memory_bounded_and_says_so(tmp_path: Path) -> None:
    provider, worker, controller = _provider(), SpanBuffer(max_spans=3), SpanBuffer(max_spans=5)
    provider.add_span_processor(worker)
    for turn in range(3):  # 2 spans a turn: the worker keeps 3 of 6
        _emit_turn(provider, session=f"s{turn}")
    controller.receive(worker.drain() or "")
    controller.receive(worker.drain() or '{"dropped": 0}')
    local = SpanBuffer(max_spans=5)
    provider.add_span_processor(local)
    for turn in range(3):
        _emit_turn(provider, session=f"c{turn}")
    controller.receive(local.drain() or "")  # 6 more offered, room for 2
    warnings = controller.write(tmp_path / "spans.json")
    assert span_count(json.loads((tmp_path / "spans.json").read_text())) == 5
    assert warnings == [f"voice latency: the spans JSON {tmp_path / 'spans.json'} holds the "
                        f"first 5 spans; 7 more were left out (cap: 5 spans per run)"]


def test_an_unwritable_spans_file_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    warnings = SpanBuffer().write(tmp_path / "file" / "spans.json")
    assert len(warnings) == 1 and "could not write the spans JSON" in warnings[0]


# -- metrics without a receiver -------------------------------------------------------------

def test_outcome_names_and_non_latencies_are_left_out() -> None:
    assert [outcome(), outcome(unreliable=True), outcome(censored=True, unreliable=True),
            outcome(missed=True, censored=True)] == ["ok", "unreliable", "censored", "missed"]
    nothing = collect_metrics([("llm", "first_byte_ms", -1.0, "ok"),
                               ("llm", "first_byte_ms", float("nan"), "ok")])
    assert nothing.resource_metrics == []


# -- the docs -------------------------------------------------------------------------------

def _doc_blocks() -> list[str]:
    text = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_docs_python_snippets_run(receiver: Received, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ``python`` block of docs/export.md runs against a live receiver at ENDPOINT."""
    blocks = _doc_blocks()
    assert blocks, "docs/export.md has no python snippets"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "docs/export.md", "exec"), {"ENDPOINT": receiver.url})  # noqa: S102
    assert receiver.spans() and receiver.points()
