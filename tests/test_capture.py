"""Specification of span capture: which spans, how many, and what happens to bad attributes."""

from __future__ import annotations

import math
import threading

import pytest
from opentelemetry import trace

from pytest_voicelatency import stage_span, voice_spans
from pytest_voicelatency.spans import current_capture


def test_captures_spans_from_any_tracer_on_the_global_provider():
    """A user's own tracer and span names following the convention are captured."""
    tracer = trace.get_tracer("my.agent")
    with voice_spans() as cap:
        with tracer.start_as_current_span("audio.tts") as span:
            span.set_attribute("audio.session_id", "s")
            span.set_attribute("audio.turn_id", "1")
            span.set_attribute("audio.first_byte_ms", 42.0)
        with tracer.start_as_current_span("http.request"):
            pass
    assert cap.select("tts").values.tolist() == [42.0] and len(cap) == 1


def test_nested_captures_each_see_the_span_once():
    """An inner capture (e.g. inside @given) and the outer one both get it, once each."""
    with voice_spans() as outer:
        with voice_spans() as inner:
            with stage_span("asr", "s", 1) as fb:
                fb()
            assert current_capture() is inner
        assert current_capture() is outer
    assert len(outer) == len(inner) == 1


def test_spans_ending_after_the_capture_closed_are_not_counted():
    """Spans from one test never leak into another."""
    with voice_spans() as first:
        pass
    with stage_span("asr", "s", 1):
        pass
    with voice_spans() as second:
        pass
    assert len(first) == len(second) == 0


def test_spans_ending_on_many_threads_are_all_counted():
    """Thread-safe: eight threads × 200 spans, none lost, none doubled."""
    def work(k):
        for i in range(200):
            with stage_span("tts", f"s{k}", i) as fb:
                fb()
    with voice_spans() as cap:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert len(cap) == 1600 and cap.select("tts").n == 1600


@pytest.mark.parametrize(("value", "problem"), [
    (math.nan, "is nan"),
    (math.inf, "is inf"),
    (-5.0, "negative"),
    ("fast", "not a number"),
])
def test_bad_metric_attributes_are_dropped_with_a_named_problem(value, problem):
    """NaN, infinite, negative and non-numeric *_ms values name the span, attribute and fix,
    and are counted as invalid samples of their metric (issue #10: never silently dropped)."""
    with voice_spans() as cap:
        with stage_span("tts", "s", 1, attributes={"chunk_gap_ms": value}) as fb:
            fb()
    selection = cap.sample_set().select("tts", "chunk_gap_ms")
    assert selection.n == 0 and selection.invalid == 1
    assert any("audio.chunk_gap_ms" in p and problem in p and "'audio.tts'" in p
               for p in cap.problems)
    assert cap.select("tts").n == 1  # the rest of the span still counts


def test_labels_are_not_metrics_and_not_problems():
    """Strings and booleans on audio.* are labels (transcripts, flags), silently kept out."""
    with voice_spans() as cap:
        with stage_span("asr", "s", 1, attributes={"transcript": "confirm", "final": True}) as fb:
            fb()
    assert cap.problems == [] and "transcript" not in cap.sample_set().metrics_by_stage()["asr"]


def test_a_span_without_ids_is_reported():
    """Missing session/turn ids is a problem that tells how to fix it."""
    tracer = trace.get_tracer("x")
    with voice_spans() as cap:
        with tracer.start_as_current_span("audio.llm"):
            pass
    assert any("no audio.session_id/audio.turn_id" in p for p in cap.problems)
    assert cap.stages() == ["llm"]


def test_samples_are_recomputed_when_more_spans_arrive():
    """The cached sample set follows the capture."""
    with voice_spans() as cap:
        with stage_span("asr", "s", 1):
            pass
        assert cap.select("asr", "duration_ms").n == 1
        with stage_span("asr", "s", 2):
            pass
        assert cap.select("asr", "duration_ms").n == 2


def test_a_non_string_stage_attribute_is_reported_and_the_name_used():
    """audio.stage = 5 is a mistake: the span name decides, and the problem says so."""
    tracer = trace.get_tracer("x")
    with voice_spans() as cap:
        with tracer.start_as_current_span("audio.tts") as span:
            span.set_attribute("audio.stage", 5)
            span.set_attribute("audio.session_id", "s")
            span.set_attribute("audio.turn_id", "1")
    assert cap.stages() == ["tts"]
    assert any("audio.stage is 5, not a stage name; used 'tts'" in p for p in cap.problems)


def test_a_span_a_thread_ends_after_its_test_is_not_counted_in_the_next_test():
    """A span begun while one capture was open and ended after it closed (a background thread
    outliving its test) is left out of the capture open at its end, with a problem naming it."""
    from opentelemetry import trace

    from pytest_voicelatency.spans.capture import start, stop

    tracer = trace.get_tracer("test")
    first = start("test_a")
    leftover = tracer.start_span("audio.llm", attributes={"audio.stage": "llm",
                                                          "audio.first_byte_ms": 5.0})
    stop(first)
    second = start("test_b")
    leftover.end()
    with tracer.start_as_current_span("audio.asr", attributes={"audio.stage": "asr",
                                                               "audio.first_byte_ms": 7.0}):
        pass
    stop(second)
    assert second.stages() == ["asr"]
    assert any("'audio.llm' started in test_a" in p for p in second.problems)
