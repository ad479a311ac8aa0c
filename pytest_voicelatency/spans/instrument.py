"""Instrument a voice agent: one OpenTelemetry span per stage, per handoff, per turn.

The conventions follow the two source articles this project grew from:

* a stage span is named ``audio.<stage>`` and carries ``audio.stage``, ``audio.session_id`` and
  ``audio.turn_id`` (session id goes on traces, never on metric labels);
* ``audio.first_byte_ms`` is the time to the stage's first useful output (first partial, first
  token, first audio chunk), set by calling the yielded timer once; ``-1`` means the stage
  produced nothing and is excluded from percentiles;
* ``audio.total_ms`` is the whole stage; an exception records itself and sets
  ``audio.error=True``; a cancellation (barge-in) sets ``audio.cancelled=True`` instead;
* a handoff span ``voice.handoff.<from>_to_<to>`` (stage ``handoff.<from>_to_<to>``) times the
  gap *between* stages, where the seeds' worst incident hid.

All times come from one monotonic :class:`~pytest_voicelatency.clock.Clock`; span timestamps are
derived from it, so durations and attributes agree and never go negative. Without ``clock=``, a
span opened on a virtual event loop uses that loop's
:class:`~pytest_voicelatency.vclock.VirtualClock` (an agent that forgets to pass
``session.clock`` still stamps the call's time), elsewhere the real clock.

>>> from pytest_voicelatency import stage_span, voice_spans
>>> with voice_spans() as cap:
...     with stage_span("llm", "sess_1", "t1") as first_byte:
...         first_byte()                 # first token arrived
...         first_byte()                 # later calls do nothing
>>> [s.stage for s in cap.samples(metric="first_byte_ms")]
['llm']
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from pytest_voicelatency.clock import Clock, default_clock, ns_to_ms
from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.vclock import current_clock

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = ["StageTimer", "stage_span", "handoff_span", "turn_span", "TRACER_NAME"]

TRACER_NAME = "pytest_voicelatency"
AttributeValue = str | bool | int | float


class StageTimer:
    """Yielded by :func:`stage_span`: call it at the first byte; stamp more instants on the span.

    ``timer()`` sets ``audio.first_byte_ms`` on its first call and does nothing afterwards, so it
    can sit inside a streaming loop. ``timer.mark("cancel_ms")`` stores the time since the span
    started as ``audio.cancel_ms``; ``timer.set("revision_chars", 3)`` stores any number.
    """

    __slots__ = ("span", "_clock", "_start_ns", "_first_byte_ns")

    def __init__(self, span: Span, clock: Clock, start_ns: int) -> None:
        self.span = span
        self._clock = clock
        self._start_ns = start_ns
        self._first_byte_ns: int | None = None

    def __call__(self) -> None:
        if self._first_byte_ns is None:
            self._first_byte_ns = self._clock.now_ns()
            self.span.set_attribute("audio.first_byte_ms",
                                    ns_to_ms(self._first_byte_ns - self._start_ns))

    @property
    def produced(self) -> bool:
        """True once the first byte was marked."""
        return self._first_byte_ns is not None

    def elapsed_ms(self) -> float:
        """Milliseconds since the span started, on the span's clock."""
        return ns_to_ms(self._clock.now_ns() - self._start_ns)

    def mark(self, name: str) -> float:
        """Set ``audio.<name>`` to the milliseconds elapsed since the span started; return it."""
        value = self.elapsed_ms()
        self.span.set_attribute(_audio_key(name), value)
        return value

    def set(self, name: str, value: AttributeValue) -> None:
        """Set ``audio.<name>`` (numbers become metrics; strings and booleans are labels)."""
        self.span.set_attribute(_audio_key(name), value)


def _audio_key(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise VoiceLatencyUsageError(f"attribute name must be a non-empty string, got {name!r}")
    return name if name.startswith("audio.") else f"audio.{name}"


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise VoiceLatencyUsageError(
            f"{what} must be a non-empty string without spaces (e.g. 'llm'), got {value!r}")
    return value


def _check_id(what: str, value: object) -> str | int:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise VoiceLatencyUsageError(
            f"{what} must be a non-empty string or an int, got {value!r}: pass the id your agent "
            f"uses so spans of one turn can be joined (gaps between stages are found per turn)")
    return value


@contextmanager
def _timed_span(name: str, stage: str, session_id: str | int, turn_id: str | int, *,
                tracer: Tracer | None, clock: Clock | None,
                attributes: Mapping[str, AttributeValue] | None,
                first_byte: bool) -> Iterator[StageTimer]:
    clock = clock or current_clock() or default_clock()
    tracer = tracer or trace.get_tracer(TRACER_NAME)
    start_ns = clock.now_ns()
    span = tracer.start_span(name, start_time=clock.span_time_ns(start_ns))
    span.set_attribute("audio.stage", stage)
    span.set_attribute("audio.session_id", session_id)
    span.set_attribute("audio.turn_id", turn_id)
    if attributes:
        for key, value in attributes.items():
            span.set_attribute(_audio_key(key) if "." not in key else key, value)
    timer = StageTimer(span, clock, start_ns)
    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False,
                            set_status_on_exception=False):
            yield timer
    except (asyncio.CancelledError, GeneratorExit):
        span.set_attribute("audio.cancelled", True)
        raise
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.set_attribute("audio.error", True)
        raise
    finally:
        end_ns = clock.now_ns()
        span.set_attribute("audio.total_ms", ns_to_ms(end_ns - start_ns))
        if first_byte and not timer.produced:
            span.set_attribute("audio.first_byte_ms", -1)
        span.end(end_time=clock.span_time_ns(end_ns))


def stage_span(stage: str, session_id: str | int, turn_id: str | int, *,
               tracer: Tracer | None = None, clock: Clock | None = None,
               attributes: Mapping[str, AttributeValue] | None = None,
               ) -> AbstractContextManager[StageTimer]:
    """Time one stage of one turn as span ``audio.<stage>``; yield a :class:`StageTimer`.

    Works in sync and async code (it is a plain ``with`` block; the span is made current, so
    spans started inside become its children). ``attributes`` are added as given; bare keys get
    the ``audio.`` prefix. ``tracer`` defaults to the global provider's tracer, ``clock`` to the
    running virtual loop's clock, else the process's real monotonic clock.
    """
    return _timed_span(f"audio.{_check_name('stage', stage)}", stage,
                       _check_id("session_id", session_id), _check_id("turn_id", turn_id),
                       tracer=tracer, clock=clock, attributes=attributes, first_byte=True)


def handoff_span(from_stage: str, to_stage: str, session_id: str | int, turn_id: str | int, *,
                 tracer: Tracer | None = None, clock: Clock | None = None,
                 attributes: Mapping[str, AttributeValue] | None = None,
                 ) -> AbstractContextManager[StageTimer]:
    """Time the handoff between two stages as span ``voice.handoff.<from>_to_<to>``.

    Its stage is ``handoff.<from>_to_<to>`` and its default metric is ``duration_ms``. Wrap the
    code that runs after one stage decided and before the next one starts (e.g. opening or
    borrowing an ASR connection after VAD fired).
    """
    pair = f"{_check_name('from_stage', from_stage)}_to_{_check_name('to_stage', to_stage)}"
    return _timed_span(f"voice.handoff.{pair}", f"handoff.{pair}",
                       _check_id("session_id", session_id), _check_id("turn_id", turn_id),
                       tracer=tracer, clock=clock, attributes=attributes, first_byte=False)


def turn_span(session_id: str | int, turn_id: str | int, *, tracer: Tracer | None = None,
              clock: Clock | None = None, attributes: Mapping[str, AttributeValue] | None = None,
              ) -> AbstractContextManager[StageTimer]:
    """The parent span ``voice.turn`` of one turn; stage spans opened inside become children.

    A turn span is not a bar: gaps between stages are computed between its children only.
    """
    return _timed_span("voice.turn", "turn", _check_id("session_id", session_id),
                       _check_id("turn_id", turn_id), tracer=tracer, clock=clock,
                       attributes=attributes, first_byte=False)


