"""Capture finished spans in memory, from any tracer on the global provider.

OpenTelemetry lets a process set its global tracer provider once. So the plugin never fights
that rule: on first use it attaches one span processor to the SDK ``TracerProvider`` that is
already installed (the user's, e.g. from ``conftest.py``), or installs a plain one if none is
set. That processor hands each finished voice span, converted once to a compact record, to every
capture active at that moment. Captures nest (a per-test capture and a ``voice_spans()``
inside a hypothesis example both see the span); a span that ends while no capture is active is
dropped at the cost of one list check.

The public twin is ``pytest_voicelatency.voice_spans`` (in ``fixtures.py``, which also follows
the pytest session's ini); :func:`capture_spans` here is the plain building block it uses.

>>> from pytest_voicelatency import stage_span
>>> with capture_spans() as cap:
...     with stage_span("asr", "s1", "t1") as first_partial:
...         first_partial()
>>> cap.stages()
['asr']
"""

from __future__ import annotations

import random
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.spans.conventions import (
    DEFAULT_CONVENTIONS,
    Conventions,
    UnreadSummary,
    unread_sentence,
    unread_summary,
)
from pytest_voicelatency.spans.otel import (
    SESSION_SPAN,
    record_from_span,
    scope_of,
    trace_session,
)
from pytest_voicelatency.spans.rows import SpanTable

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from pytest_voicelatency.spans.samples import SampleSet, Selection

__all__ = ["Capture", "capture_spans", "attach", "current_capture"]

_lock = threading.Lock()
_active: list[Capture] = []
_attached: weakref.WeakSet[Any] = weakref.WeakSet()
#: span id -> the captures open when it started (dropped when it ends; bounded for spans that
#: never end)
_born: dict[int, tuple[Capture, ...]] = {}
MAX_OPEN_SPANS = 100_000


class Capture:
    """The voice spans finished while this capture was active, kept as compact rows.

    ``samples()`` derives samples (including gaps) on demand and caches them until more spans
    arrive. Thread-safe: spans may end on any thread.
    """

    def __init__(self, test_id: str = "", unreliable: str = "warn",
                 conventions: Conventions = DEFAULT_CONVENTIONS) -> None:
        self.test_id = test_id
        #: which framework conventions read non-native spans (``voice_latency_conventions``)
        self.conventions = conventions
        #: what an assertion does with samples marked unreliable: "warn", "fail" or "retry"
        #: (retry is the caller's job; here it warns) — the ``voice_latency_unreliable`` ini
        self.unreliable = unreliable
        self.table = SpanTable()
        self.spans_seen = 0
        self._cache: tuple[int, SampleSet] | None = None
        self.closed = False
        #: what the assertions on this capture decided, in order, as plain tuples
        #: ``(stage, metric, rule, outcome, value_ms, n)`` (the run's report lists and links them)
        self.checks: list[tuple[str, str, str, str, float, int]] = []

    def _receive(self, record: Any) -> None:
        self.table.add(record, self.test_id)

    def sample_set(self) -> SampleSet:
        """All samples so far (span metrics and gaps), as numpy columns."""
        # lazy: start-up boundary — the plugin opens a capture for every test, and a run whose
        # tests emit no voice span must not pay for numpy
        from pytest_voicelatency.spans.samples import derive

        size = len(self.table)
        if self._cache is None or self._cache[0] != size:
            with self.table.frozen():
                self._cache = (size, derive(self.table))
        return self._cache[1]

    def select(self, stage: str, metric: str | None = None) -> Selection:
        """The samples of one stage (default metric unless ``metric`` is given)."""
        return self.sample_set().select(stage, metric)

    def samples(self, stage: str | None = None, metric: str | None = None) -> list[Any]:
        """Samples as :class:`~pytest_voicelatency.spans.samples.Sample` objects, filtered."""
        return [s for s in self.sample_set()
                if (stage is None or s.stage == stage) and (metric is None or s.metric == metric)]

    def stages(self) -> list[str]:
        """Stages seen so far, including derived gap stages, sorted."""
        return list(self.sample_set().metrics_by_stage())

    @property
    def problems(self) -> list[str]:
        """Attributes dropped as invalid, and spans missing ids, described with their fix."""
        return list(self.table.problems)

    @property
    def unread(self) -> UnreadSummary | None:
        """Spans seen but read as no voice stage (names, scopes, who would read them), or None."""
        with self.table.frozen():
            return unread_summary(dict(self.table.unread), self.table.unread_count)

    def unread_sentence(self) -> str | None:
        """The line to print when spans were seen but none read as voice stages, else None."""
        return unread_sentence(*self.table.unread_snapshot())

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return f"<Capture {len(self.table)} voice spans{' closed' if self.closed else ''}>"


class _Dispatcher:
    """The one span processor: converts each finished voice span once, fans it out."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        # Which captures were open when the span began: a span a thread of one test ends after
        # that test returned must not count in the next test's capture.
        if _active and len(_born) < MAX_OPEN_SPANS:
            _born[span.context.span_id] = tuple(_active)

    def on_end(self, span: ReadableSpan) -> None:
        born = _born.pop(span.context.span_id, None) if span.context is not None else None
        if not _active:
            return
        conventions: Conventions | None = None
        record = None
        for capture in tuple(_active):
            if born is not None and capture not in born and not any(b in _active for b in born):
                capture.table.note_problem(
                    f"span {span.name!r} started in {born[0].test_id or 'an earlier capture'} "
                    "and ended after it closed (a thread outliving its test?): not counted here")
                continue
            if capture.conventions is not conventions:  # nested captures usually share one
                conventions = capture.conventions
                record = record_from_span(span, conventions)
            if record is None:
                root = trace_session(span, conventions)
                if root is not None:
                    capture.table.rename_session(*root)
                if span.name != SESSION_SPAN:
                    capture.table.note_unread(span.name, scope_of(span)[0])
            else:
                capture._receive(record)

    def _on_ending(self, span: Any) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_DISPATCHER = _Dispatcher()


def attach(provider: TracerProvider | None = None) -> TracerProvider:
    """Make sure ``provider`` (default: the global one) feeds the plugin's captures; idempotent.

    With no SDK provider installed globally, installs a plain ``TracerProvider`` once. Call it
    yourself only for a private provider that is not the global one.
    """
    with _lock:
        if provider is None:
            provider = trace.get_tracer_provider()  # type: ignore[assignment]
            if not isinstance(provider, TracerProvider) \
                    and type(provider).__name__ == "ProxyTracerProvider":
                trace.set_tracer_provider(TracerProvider(id_generator=_OsIds()))
                provider = trace.get_tracer_provider()  # type: ignore[assignment]
        if not isinstance(provider, TracerProvider):
            raise VoiceLatencyUsageError(
                f"the global OpenTelemetry tracer provider is {type(provider).__module__}."
                f"{type(provider).__name__}, not an SDK TracerProvider, so its spans cannot be "
                f"captured: install opentelemetry.sdk.trace.TracerProvider() with "
                f"trace.set_tracer_provider() in conftest.py, or pass your SDK provider to "
                f"pytest_voicelatency.attach(provider)")
        if provider not in _attached:
            provider.add_span_processor(_DISPATCHER)  # type: ignore[arg-type]
            _attached.add(provider)
        return provider


def current_capture() -> Capture | None:
    """The innermost active capture (what an assertion uses by default), or None."""
    return _active[-1] if _active else None


def active_captures() -> tuple[Capture, ...]:
    """Every active capture, outermost first: a span ended now reaches each of them."""
    with _lock:
        return tuple(_active)


class _OsIds(IdGenerator):  # type: ignore[misc,unused-ignore]
    """Trace and span ids from the OS's randomness. The SDK's default draws them from the
    ``random`` module, which hypothesis seeds afresh for every example: the examples of a
    property then reused one another's trace ids."""

    _random = random.SystemRandom()

    def generate_span_id(self) -> int:
        while (span_id := self._random.getrandbits(64)) == trace.INVALID_SPAN_ID:
            pass
        return span_id

    def generate_trace_id(self) -> int:
        while (trace_id := self._random.getrandbits(128)) == trace.INVALID_TRACE_ID:
            pass
        return trace_id


def start(test_id: str = "", unreliable: str = "warn",
          conventions: Conventions = DEFAULT_CONVENTIONS) -> Capture:
    """Open a capture (prefer :func:`capture_spans`; the plugin uses this across hooks)."""
    attach()
    capture = Capture(test_id, unreliable, conventions)
    with _lock:
        _active.append(capture)
    return capture


def stop(capture: Capture) -> Capture:
    """Close a capture opened with :func:`start`; idempotent."""
    with _lock:
        if capture in _active:
            _active.remove(capture)
    capture.closed = True
    return capture


@contextmanager
def capture_spans(test_id: str = "", *, unreliable: str = "warn",
                  conventions: Conventions = DEFAULT_CONVENTIONS) -> Iterator[Capture]:
    """Capture the voice spans finished inside the block (public twin: ``voice_spans()``).

    Usable anywhere, including inside a hypothesis ``@given`` test where a function-scoped
    fixture would not reset between examples. ``unreliable`` is what assertions on this capture
    do with samples the harness marked unreliable: ``"warn"`` (default) or ``"fail"``.
    ``conventions`` says which framework spans are read (default: Pipecat, LiveKit Agents and
    OTel GenAI, detected automatically; see ``conventions_from_ini``).
    """
    if unreliable not in ("warn", "fail", "retry"):
        raise VoiceLatencyUsageError(
            f"unreliable= must be 'warn', 'fail' or 'retry', got {unreliable!r}")
    capture = start(test_id, unreliable, conventions)
    try:
        yield capture
    finally:
        stop(capture)
        outer = current_capture()
        if outer is not None:  # the test's own capture reports what was asserted in here too
            outer.checks.extend(capture.checks)
