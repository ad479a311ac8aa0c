"""Assert per-stage latency quantiles in a test, with a failure message that explains itself.

>>> from pytest_voicelatency import assert_p95, capture_spans, stage_span
>>> with capture_spans() as cap:
...     for turn in range(20):
...         with stage_span("asr", "s1", turn) as first_partial:
...             first_partial()
>>> assert_p95(stage="asr", lt=1000, capture=cap).outcome
'pass'

A failure raises :class:`~pytest_voicelatency.errors.LatencyAssertionError` naming the stage,
metric, quantile, limit, n, the bound (with ``confidence=``), how many turns produced nothing and
the worst three samples with their session, turn and trace ids, so the slow turn can be pulled out
of a trace store directly.
"""

from __future__ import annotations

import difflib
import warnings

from pytest_voicelatency.errors import (
    LatencyAssertionError,
    VoiceLatencyUsageError,
    VoiceLatencyWarning,
)
from pytest_voicelatency.spans.capture import Capture, current_capture
from pytest_voicelatency.spans.samples import Selection
from pytest_voicelatency.stats.levels import check_q, quantile_label
from pytest_voicelatency.stats.limit import limit_from
from pytest_voicelatency.stats.verdict import (
    Verdict,
    format_verdict,
    invalid_note,
    judge,
    small_n_caveat,
)

__all__ = ["assert_quantile", "assert_p50", "assert_p95", "assert_p99"]


def _unreliable(capture: Capture, selection: Selection, verdict: Verdict) -> None:
    """Never a silent verdict on numbers the harness could not time: warn, or fail by policy."""
    __tracebackhide__ = True
    text = (f"{selection.unreliable} of {selection.n} samples of {selection.stage} "
            f"{selection.metric} were measured while the harness could not keep time (e.g. a "
            f"starved event loop), so this {verdict.outcome} is not trustworthy; rerun on a "
            f"quieter machine, or set voice_latency_unreliable = retry")
    if capture.unreliable == "fail":
        explained = format_verdict(selection, verdict, selection.worst(3))
        raise LatencyAssertionError(f"{explained}\n  UNRELIABLE: {text}",
                                    stage=selection.stage, metric=selection.metric,
                                    value=verdict.estimate.value, limit=verdict.limit.value,
                                    n=verdict.estimate.n, verdict="unreliable")
    warnings.warn(VoiceLatencyWarning(text), stacklevel=4)


def _missing_message(capture: Capture, stage: str, metric: str | None, sel: Selection) -> str:
    seen = capture.sample_set().metrics_by_stage()
    unread = capture.unread_sentence()
    listing = "\n".join(f"  {s}: {', '.join(m)}" for s, m in seen.items()) or (
        f"  (no voice spans at all: {unread})" if unread else "  (no voice spans at all)")
    what = f"stage {stage!r}" + (
        f" metric {metric!r}" if metric else f" (default metric {sel.metric!r})")
    hint = ("every sample produced nothing (first_byte_ms = -1): the stage never called "
            "first_byte()" if sel.nothing else
            "check the stage name, that the agent ran inside the capture, and that its spans "
            "reach the global tracer provider")
    wanted, choices = (metric or sel.metric, seen[stage]) if stage in seen else (stage, seen)
    close = [] if sel.nothing else difflib.get_close_matches(wanted, choices, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {'metric' if stage in seen else 'stage'} {close[0]!r}? " + hint
    return (f"no samples for {what}; {hint}.\n{len(capture)} voice spans captured; stages and "
            f"metrics seen:\n{listing}")


def assert_quantile(q: float, *, stage: str, lt: float | None = None, le: float | None = None,
                    metric: str | None = None, capture: Capture | None = None,
                    confidence: float | None = None) -> Verdict:
    """Assert that the q-quantile of ``stage``'s ``metric`` is below ``lt`` (or at most ``le``) ms.

    ``metric`` defaults to the stage's default metric; ``capture`` to the innermost active
    capture (the test's ``voice_spans`` or an enclosing ``capture_spans()``). With
    ``confidence=0.95`` the verdict uses order-statistic bounds and an undecided result fails as
    *inconclusive*. Returns the verdict when it passes.
    """
    __tracebackhide__ = True
    q = check_q(q)
    if not isinstance(stage, str) or not stage:
        raise VoiceLatencyUsageError(f"stage= must be a stage name such as 'asr', got {stage!r}")
    limit = limit_from(lt, le)
    capture = capture if capture is not None else current_capture()
    if capture is None:
        raise VoiceLatencyUsageError(
            "no span capture is active: request the voice_spans fixture in this test, run with "
            "pytest --voice-latency, or wrap the code in `with capture_spans() as cap:` and pass "
            "capture=cap")
    selection = capture.select(stage, metric)
    verdict = judge(selection.values, q, limit, confidence)
    outcome = "invalid" if selection.invalid else verdict.outcome
    capture.checks.append((stage, selection.metric, f"{quantile_label(q)} {limit}", outcome,
                           float(verdict.estimate.value), int(verdict.estimate.n)))
    if selection.invalid:  # never a verdict on numbers that are not latencies
        shown = format_verdict(selection, verdict, selection.worst(3)) \
            if verdict.outcome != "missing" else f"{stage} {selection.metric}: no valid samples"
        raise LatencyAssertionError(
            f"{shown}\n  INVALID: {invalid_note(selection)}" if verdict.outcome == "missing"
            else shown, stage=stage, metric=selection.metric, limit=limit.value,
            n=selection.n, verdict="invalid")
    if selection.unreliable and verdict.outcome != "missing":
        _unreliable(capture, selection, verdict)
    if verdict.outcome == "missing":
        raise LatencyAssertionError(_missing_message(capture, stage, metric, selection),
                                    stage=stage, metric=selection.metric, limit=limit.value,
                                    verdict="missing")
    if not verdict.passed:
        raise LatencyAssertionError(format_verdict(selection, verdict, selection.worst(3)),
                                    stage=stage, metric=selection.metric,
                                    value=verdict.estimate.value,
                                    limit=limit.value, n=verdict.estimate.n,
                                    verdict=verdict.outcome)
    caveat = small_n_caveat(selection.n, q) if confidence is None else None
    if caveat:
        warnings.warn(VoiceLatencyWarning(
            f"{format_verdict(selection, verdict).splitlines()[0]}; "
            f"{caveat}"), stacklevel=3)
    return verdict


def assert_p50(*, stage: str, lt: float | None = None, le: float | None = None,
               metric: str | None = None, capture: Capture | None = None,
               confidence: float | None = None) -> Verdict:
    """:func:`assert_quantile` at q = 0.50."""
    __tracebackhide__ = True
    return assert_quantile(0.50, stage=stage, lt=lt, le=le, metric=metric, capture=capture,
                           confidence=confidence)


def assert_p95(*, stage: str, lt: float | None = None, le: float | None = None,
               metric: str | None = None, capture: Capture | None = None,
               confidence: float | None = None) -> Verdict:
    """:func:`assert_quantile` at q = 0.95: ``assert_p95(stage="barge_in", lt=200)``."""
    __tracebackhide__ = True
    return assert_quantile(0.95, stage=stage, lt=lt, le=le, metric=metric, capture=capture,
                           confidence=confidence)


def assert_p99(*, stage: str, lt: float | None = None, le: float | None = None,
               metric: str | None = None, capture: Capture | None = None,
               confidence: float | None = None) -> Verdict:
    """:func:`assert_quantile` at q = 0.99."""
    __tracebackhide__ = True
    return assert_quantile(0.99, stage=stage, lt=lt, le=le, metric=metric, capture=capture,
                           confidence=confidence)
