"""The run's spans as an OTLP JSON file (``--voice-latency-spans-json``) that Tempo/Jaeger load.

The file is one ``ExportTraceServiceRequest`` in the OTLP/JSON encoding: the protobuf JSON
mapping with the two deviations OTLP requires — trace and span ids as lowercase hex (not base64)
and enums as integers. It is written here by hand, from the SDK's ``ReadableSpan``: the core
install (opentelemetry-sdk only) can write it, without protobuf, requests and the exporter
packages; the tests check it against the official OTLP protobuf encoder when that is installed.

Data path: a :class:`SpanBuffer` is a span processor on the provider the plugin attaches to. It
keeps finished spans as they are (an append, nothing more on the agent's thread). In each
process that runs tests, :meth:`SpanBuffer.drain` encodes them into a JSON string — under
pytest-xdist it rides on the test's teardown report to the controller — and the controller's
:meth:`SpanBuffer.receive` merges it, grouped by resource and scope, as compact JSON text per
span. :meth:`SpanBuffer.write` writes the file atomically. At most ``max_spans`` spans are kept
run-wide; later ones are counted and reported, not stored.

>>> from opentelemetry.sdk.trace import TracerProvider
>>> provider = TracerProvider()
>>> buffer = SpanBuffer()
>>> provider.add_span_processor(buffer)
>>> with provider.get_tracer("demo").start_as_current_span("audio.asr") as span:
...     span.set_attribute("audio.first_byte_ms", 120.5)
>>> request = json.loads(buffer.drain() or "{}")
>>> span = request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
>>> span["name"], len(span["traceId"]), span["attributes"]
('audio.asr', 32, [{'key': 'audio.first_byte_ms', 'value': {'doubleValue': 120.5}}])
"""

from __future__ import annotations

import base64
import json
import math
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext

from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.files import write_atomic

__all__ = ["SpanBuffer", "encode_spans", "span_count", "DEFAULT_MAX_SPANS"]

#: Spans kept run-wide by default (~0.5–1 KB of JSON text each, so tens of MB at most).
DEFAULT_MAX_SPANS = 50_000
_HAS_IS_REMOTE = 0x100  # SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


def _value(value: Any) -> dict[str, Any]:
    """An attribute value as an OTLP ``AnyValue`` in JSON."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64: a decimal string in the protobuf JSON mapping
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {"doubleValue": "NaN" if math.isnan(value) else
                ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _attributes(value)}}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    if value is None:
        return {}
    return {"stringValue": str(value)}


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": _value(v)} for k, v in (attributes or {}).items()]


def _flags(parent: SpanContext | None) -> int:
    return _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)


def _span(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None  # an SDK span always has one
    out: dict[str, Any] = {"traceId": f"{context.trace_id:032x}",
                           "spanId": f"{context.span_id:016x}"}
    if context.trace_state:
        out["traceState"] = ",".join(f"{k}={v}" for k, v in context.trace_state.items())
    if span.parent is not None:
        out["parentSpanId"] = f"{span.parent.span_id:016x}"
    out["flags"] = _flags(span.parent)
    out["name"] = span.name
    out["kind"] = span.kind.value + 1  # SDK INTERNAL=0 … ; OTLP SPAN_KIND_INTERNAL=1 …
    out["startTimeUnixNano"] = str(span.start_time or 0)
    out["endTimeUnixNano"] = str(span.end_time or 0)
    out["attributes"] = _attributes(span.attributes)
    if span.dropped_attributes:
        out["droppedAttributesCount"] = span.dropped_attributes
    if span.events:
        out["events"] = [{"timeUnixNano": str(e.timestamp), "name": e.name,
                          "attributes": _attributes(e.attributes),
                          **({"droppedAttributesCount": e.dropped_attributes}
                             if e.dropped_attributes else {})} for e in span.events]
    if span.dropped_events:
        out["droppedEventsCount"] = span.dropped_events
    if span.links:
        out["links"] = [{"traceId": f"{link.context.trace_id:032x}",
                         "spanId": f"{link.context.span_id:016x}",
                         "attributes": _attributes(link.attributes),
                         **({"droppedAttributesCount": link.dropped_attributes}
                            if link.dropped_attributes else {}),
                         "flags": _flags(link.context)} for link in span.links]
    if span.dropped_links:
        out["droppedLinksCount"] = span.dropped_links
    status: dict[str, Any] = {}
    if span.status.status_code.value:
        status["code"] = span.status.status_code.value  # UNSET 0, OK 1, ERROR 2 in both
    if span.status.description:
        status["message"] = span.status.description
    out["status"] = status
    return out


def _resource_key(span: ReadableSpan) -> str:
    resource: dict[str, Any] = {"resource": {"attributes": _attributes(span.resource.attributes)}}
    if span.resource.schema_url:
        resource["schemaUrl"] = span.resource.schema_url
    return json.dumps(resource, separators=(",", ":"))


def _scope_key(span: ReadableSpan) -> str:
    scope = span.instrumentation_scope
    out: dict[str, Any] = {"scope": {}}
    if scope is not None:
        out["scope"] = {"name": scope.name}
        if scope.version:
            out["scope"]["version"] = scope.version
        if scope.attributes:
            out["scope"]["attributes"] = _attributes(scope.attributes)
        if scope.schema_url:
            out["schemaUrl"] = scope.schema_url
    return json.dumps(out, separators=(",", ":"))


def encode_spans(spans: Iterable[ReadableSpan]) -> dict[str, Any]:
    """Finished SDK spans as one OTLP/JSON ``ExportTraceServiceRequest`` (a JSON-ready dict),
    grouped by resource then instrumentation scope, in first-seen order (as the OTLP exporter
    groups them)."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for span in spans:
        groups.setdefault(_resource_key(span), {}).setdefault(_scope_key(span), []).append(
            _span(span))
    return {"resourceSpans": [
        {**json.loads(resource), "scopeSpans": [{**json.loads(scope), "spans": spans_}
                                                for scope, spans_ in scopes.items()]}
        for resource, scopes in groups.items()]}


def span_count(request: Mapping[str, Any]) -> int:
    """How many spans an OTLP/JSON trace request holds."""
    return sum(len(scope.get("spans", ())) for resource in request.get("resourceSpans", ())
               for scope in resource.get("scopeSpans", ()))


def _with(obj: str, field: str, items: Iterable[str]) -> str:
    """The JSON object text ``obj`` with one more field, a list of JSON texts: no re-parsing."""
    head = obj[:-1] + ("," if obj != "{}" else "")
    return f'{head}"{field}":[{",".join(items)}]}}'


class SpanBuffer(SpanProcessor):
    """Keeps the run's finished spans for the OTLP JSON file; bounded by ``max_spans``.

    A span processor: add it to the SDK tracer provider (the plugin's ``attach`` returns it).
    Thread-safe; ``on_end`` is one append. :meth:`drain` in the process that runs the tests,
    :meth:`receive` on the controller, :meth:`write` at the end of the run.
    """

    def __init__(self, max_spans: int = DEFAULT_MAX_SPANS) -> None:
        if max_spans < 0:
            raise ValueError(f"max_spans must be >= 0, got {max_spans}")
        self.max_spans = max_spans
        #: spans finished in this process, not yet drained
        self._pending: list[ReadableSpan] = []
        #: merged spans: resource JSON -> scope JSON -> each span as compact JSON text
        self._groups: dict[str, dict[str, list[str]]] = {}
        self._handed_off = 0  # spans drained from this process (a worker's share of the cap)
        self.kept = 0  # spans merged here (the controller's file)
        self.dropped = 0  # spans not kept because a cap was reached, in this or any process
        self.closed = False
        self._lock = threading.Lock()

    # -- SpanProcessor -------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self.closed:
            return
        with self._lock:
            if self._handed_off + len(self._pending) < self.max_spans:
                self._pending.append(span)
            else:
                self.dropped += 1

    def shutdown(self) -> None:
        self.closed = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- the data path -------------------------------------------------------------------
    def drain(self) -> str | None:
        """The spans finished here since the last drain, as a JSON string for the controller
        (an OTLP/JSON request plus ``"dropped"``, the spans this process could not keep), or
        None when there is nothing to send."""
        with self._lock:
            spans, self._pending = self._pending, []
            self._handed_off += len(spans)
            dropped, self.dropped = self.dropped, 0
        if not spans and not dropped:
            return None
        return json.dumps({**encode_spans(spans), "dropped": dropped}, separators=(",", ":"))

    def receive(self, payload: str) -> None:
        """Merge a :meth:`drain` payload (from this process or a pytest-xdist worker)."""
        request = json.loads(payload)
        with self._lock:
            self.dropped += int(request.get("dropped", 0))
            for resource_spans in request.get("resourceSpans", ()):
                scopes = resource_spans.get("scopeSpans", ())
                resource = {k: v for k, v in resource_spans.items() if k != "scopeSpans"}
                rkey = json.dumps(resource, separators=(",", ":"), sort_keys=True)
                for scope_spans in scopes:
                    spans = scope_spans.get("spans", ())
                    room = max(0, self.max_spans - self.kept)
                    self.dropped += max(0, len(spans) - room)
                    if not room or not spans:
                        continue
                    scope = {k: v for k, v in scope_spans.items() if k != "spans"}
                    skey = json.dumps(scope, separators=(",", ":"), sort_keys=True)
                    kept = [json.dumps(s, separators=(",", ":")) for s in spans[:room]]
                    self._groups.setdefault(rkey, {}).setdefault(skey, []).extend(kept)
                    self.kept += len(kept)

    def to_json(self) -> str:
        """Every span merged so far (after merging this process's pending ones) as the file's
        text: one OTLP/JSON ``ExportTraceServiceRequest``."""
        local = self.drain()
        if local is not None:
            self.receive(local)
        with self._lock:
            parts = [_with(rkey, "scopeSpans", [_with(skey, "spans", spans)
                                                for skey, spans in scopes.items()])
                     for rkey, scopes in self._groups.items()]
        return _with("{}", "resourceSpans", parts) + "\n"

    def write(self, path: str | os.PathLike[str]) -> list[str]:
        """Write the file atomically (a temporary file in the same folder, then ``os.replace``).

        Returns warnings, one line each: spans left out because of the cap, or why the file
        could not be written (the run's other results do not depend on it).
        """
        target = Path(path)
        warnings: list[str] = []
        self.closed = True  # the run is over: a processor cannot be removed, so it goes inert
        try:
            write_atomic(target, self.to_json())
        except (OSError, ValueError, VoiceLatencyError) as exc:
            return [f"voice latency: could not write the spans JSON {target}: {exc}"]
        if self.dropped:
            warnings.append(
                f"voice latency: the spans JSON {target} holds the first {self.kept} spans; "
                f"{self.dropped} more were left out (cap: {self.max_spans} spans per run)")
        return warnings
