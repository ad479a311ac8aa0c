"""The OpenTelemetry boundary: a finished span becomes a small, plain :class:`SpanRecord`.

This is the only module that reads OpenTelemetry span objects. It decides which spans are voice
spans, which stage they belong to, and which of their attributes are metrics:

* stage: the ``audio.stage`` attribute; else the name convention ``audio.<stage>``,
  ``voice.handoff.<a>_to_<b>`` (stage ``handoff.<a>_to_<b>``) or ``voice.turn`` (stage ``turn``);
  other spans are not voice spans and are ignored;
* metrics: every numeric ``audio.<x>`` attribute becomes metric ``<x>`` (milliseconds), plus
  ``duration_ms`` from the span's own start and end. Booleans are labels, not metrics;
  ``first_byte_ms == -1`` is kept (it means "produced nothing"); NaN, infinite or negative
  values, and non-numeric (or bool) values of ``*_ms`` attributes, are *invalid*: kept as a NaN
  sample of their metric, so the metric still exists and every verdict on it counts them
  (:mod:`~pytest_voicelatency.spans.samples`), with a *problem* that names the span, the
  attribute and the fix;
* a span is a *bar* (a stage on the pipeline's timeline, used to find gaps between stages) unless
  it is a turn parent, a handoff, a gap, or a black-box measurement (``audio.source="caller"``).
  Handoffs are explicit measurements *of* a seam, so ``gap.asr_to_llm`` is the whole uncovered
  time between the ASR and LLM bars, including any handoff span inside it;
* a span that is not a native voice span is offered to the framework conventions
  (:mod:`pytest_voicelatency.spans.conventions`: Pipecat, LiveKit Agents, OTel GenAI and ini
  mappings), which read its stage, metrics (converted to ms) and identity.

>>> from pytest_voicelatency.spans.otel import stage_of
>>> stage_of("voice.handoff.vad_to_asr", None)
'handoff.vad_to_asr'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_voicelatency.spans.conventions import DEFAULT_CONVENTIONS, Conventions
from pytest_voicelatency.spans.record import (
    CENSORED,
    MISSED,
    NOTHING,
    UNRELIABLE,
    SampleFlag,
    SpanRecord,
)
from pytest_voicelatency.spans.record import OUTCOMES as _OUTCOMES

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["SampleFlag", "SpanRecord", "record_from_span", "stage_of", "scope_of",
           "trace_session", "SESSION_SPAN", "IDENTITY_ATTRIBUTES", "UNRELIABLE", "CENSORED",
           "MISSED"]

IDENTITY_ATTRIBUTES = frozenset({"audio.stage", "audio.session_id", "audio.turn_id", "audio.source",
                                 "audio.reliable", "audio.outcome", "audio.clock"})


def stage_of(name: str, stage_attribute: Any) -> str | None:
    """The stage a span belongs to, or ``None`` when it is not a voice span."""
    if isinstance(stage_attribute, str) and stage_attribute:
        return stage_attribute
    if name.startswith("audio.") and len(name) > 6:
        return name[6:]
    if name.startswith("voice.handoff.") and len(name) > 14:
        return "handoff." + name[14:]
    if name == "voice.turn":
        return "turn"
    return None


_INF = float("inf")


def _bad_metric(key: str, value: Any, span_name: str) -> str | None:
    """Why an ``audio.*`` attribute is an *invalid* metric value (None when it is simply a
    label: a bool or a string on a key not ending in ``_ms``)."""
    counted = "counted as invalid (a verdict on this metric fails and says so)"
    if isinstance(value, bool):
        if not key.endswith("_ms"):
            return None
        return (f"span {span_name!r}: attribute {key} is the bool {value}, not a number of "
                f"milliseconds; {counted}")
    if isinstance(value, (int, float)):
        number = float(value)
        if number != number or number in (_INF, -_INF):
            return (f"span {span_name!r}: attribute {key} is {number}; {counted}: set a finite "
                    f"number of milliseconds")
        return (f"span {span_name!r}: attribute {key} is negative ({number:g}); {counted}: use a "
                f"monotonic clock; -1 is only meaningful for audio.first_byte_ms")
    if key.endswith("_ms"):
        return (f"span {span_name!r}: attribute {key} is {type(value).__name__} {value!r}, "
                f"not a number; {counted}: set it as a float of milliseconds")
    return None


_INVALID = float("nan")  # the value of an invalid sample: counted per metric, never a latency


def _attribute_dict(span: ReadableSpan) -> Any:
    """The span's attributes as cheaply as possible: the SDK's own dict when reachable.

    Going through the public ``MappingProxyType`` over ``BoundedAttributes`` costs a lock and
    several Python calls per key; this runs once per span on the agent's hot path. Falls back
    to the public mapping for any other span implementation.
    """
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    return inner if isinstance(inner, dict) else (span.attributes or {})


def scope_of(span: ReadableSpan) -> tuple[str, str | None]:
    """The span's instrumentation scope name ("" when unknown) and version."""
    scope = getattr(span, "instrumentation_scope", None)
    if scope is None:
        return "", None
    return scope.name or "", scope.version


def _from_convention(span: ReadableSpan, attributes: Any,
                     conventions: Conventions) -> SpanRecord | None:
    """A framework span read by a convention, or None."""
    scope, version = scope_of(span)
    context, parent = span.context, span.parent
    trace_id = context.trace_id if context is not None else 0
    reading = conventions.read(span.name, scope, version, attributes, trace_id,
                               context.span_id if context is not None else 0,
                               parent.span_id if parent is not None else 0)
    if reading is None:
        return None
    start, end = span.start_time or 0, span.end_time or 0
    metrics, problems = list(reading.metrics), list(reading.problems)
    if end >= start:
        metrics.append(("duration_ms", (end - start) / 1e6))
    else:
        problems.append(f"span {span.name!r} ends before it starts; duration dropped")
    return SpanRecord(span.name, reading.stage, reading.session_id, reading.turn_id, trace_id,
                      start, end, tuple(metrics), reading.bar, tuple(problems), 0)


#: the span an adapter ends to say "trace ``audio.trace_id`` is session ``audio.session_id``"
SESSION_SPAN = "voice.session"


def trace_session(span: ReadableSpan,
                  conventions: Conventions = DEFAULT_CONVENTIONS) -> tuple[int, str, str] | None:
    """``(trace id, trace id as the session text its spans were read under, session)`` when
    ``span`` is a trace root that names the session of its whole trace, else ``None``."""
    if span.name != SESSION_SPAN and not conventions.may_name_session(span.name):
        return None  # most spans: decided by the name alone, before the attributes are read
    attributes = _attribute_dict(span)
    if span.name == SESSION_SPAN:  # an adapter names a framework's trace (LiveKit, no room)
        session, trace_hex = attributes.get("audio.session_id"), attributes.get("audio.trace_id")
        if isinstance(session, str) and session and isinstance(trace_hex, str):
            try:
                trace_id = int(trace_hex, 16)
            except ValueError:
                return None
            return trace_id, format(trace_id, "032x"), session
        return None
    context = span.context
    if context is None or not context.trace_id:
        return None
    session = conventions.trace_session(span.name, scope_of(span)[0], attributes)
    if session is None:
        return None
    return context.trace_id, format(context.trace_id, "032x"), session


def record_from_span(span: ReadableSpan,
                     conventions: Conventions = DEFAULT_CONVENTIONS) -> SpanRecord | None:
    """Turn a finished span into a :class:`SpanRecord`, or ``None`` if it is not a voice span.

    Native voice spans (``audio.stage``, ``audio.<stage>`` ...) are read first; any other span is
    offered to ``conventions`` (default: every built-in framework convention).
    """
    attributes = _attribute_dict(span)
    name = span.name
    stage_attribute = attributes.get("audio.stage")
    stage = stage_of(name, stage_attribute)
    if stage is None:
        return _from_convention(span, attributes, conventions) if conventions.names or \
            conventions.custom else None
    problems: list[str] = []
    if stage_attribute is not None and not (isinstance(stage_attribute, str) and stage_attribute):
        problems.append(f"span {name!r}: audio.stage is {stage_attribute!r}, not a stage name; "
                        f"used {stage!r} from the span name (set audio.stage to a string such "
                        f"as 'asr')")
    metrics: list[tuple[str, float]] = []
    for key, value in attributes.items():
        if not key.startswith("audio.") or key in IDENTITY_ATTRIBUTES:
            continue
        kind = type(value)
        if (kind is float or kind is int) and 0 <= value < _INF:  # the common case, fast
            metrics.append((key[6:], float(value)))
        elif (kind is float or kind is int) and value == NOTHING and key == "audio.first_byte_ms":
            metrics.append(("first_byte_ms", NOTHING))
        else:
            problem = _bad_metric(key, value, name)
            if problem:
                problems.append(problem)
                metrics.append((key[6:], _INVALID))
    start, end = span.start_time or 0, span.end_time or 0
    if end >= start:
        metrics.append(("duration_ms", (end - start) / 1e6))
    else:
        problems.append(f"span {name!r} ends before it starts; duration dropped (stamp both "
                        f"ends from one monotonic clock)")
    session = attributes.get("audio.session_id")
    turn = attributes.get("audio.turn_id")
    if session is None or turn is None:
        problems.append(f"span {name!r} (stage {stage}) has no audio.session_id/audio.turn_id; "
                        f"its samples count but it joins no turn, so no gap samples (pass "
                        f"session_id and turn_id to stage_span)")
    flags = 0 if attributes.get("audio.reliable", True) is not False else UNRELIABLE
    if attributes.get("audio.clock") == "virtual":
        flags |= SampleFlag.VIRTUAL
    outcome = attributes.get("audio.outcome")
    if outcome is not None:
        if outcome in _OUTCOMES:
            flags |= _OUTCOMES[outcome]
        else:
            problems.append(f"span {name!r}: audio.outcome is {outcome!r}; expected one of "
                            f"{', '.join(map(repr, _OUTCOMES))}; treated as 'ok'")
    context = span.context
    source = attributes.get("audio.source")
    bar = stage != "turn" and source != "caller" and not stage.startswith(_NOT_BARS)
    return SpanRecord(name, stage, "" if session is None else str(session),
                      "" if turn is None else str(turn),
                      context.trace_id if context is not None else 0, start, end,
                      tuple(metrics), bar, tuple(problems), flags)


_NOT_BARS = ("gap.", "caller.", "handoff.", "speaking.")
