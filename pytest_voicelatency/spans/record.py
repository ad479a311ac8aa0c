"""The plain span record and its sample flags: what every layer after the OpenTelemetry
boundary sees of a span. No OpenTelemetry, no numpy: it is on the plugin's start-up path.

>>> SpanRecord("audio.llm", "llm", "s", "t", 0, 0, 5_000_000, (("first_byte_ms", 2.0),), True).stage
'llm'
>>> SampleFlag.names(SampleFlag.MISSED | SampleFlag.UNRELIABLE)
['unreliable', 'missed']
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = ["SampleFlag", "SpanRecord", "UNRELIABLE", "CENSORED", "MISSED", "NOTHING", "OUTCOMES"]

NOTHING = -1.0  # first_byte_ms of a stage that produced nothing

#: Sample flags (a bitmask per span). A measurement that is not a plain number says so:
#: ``audio.reliable = False`` (the harness could not keep time, e.g. a starved event loop),
#: ``audio.outcome = "censored"`` (the call ended first: the value is only a lower bound) or
#: ``"missed"`` (the event never happened within the call's bound, e.g. a barge-in the agent
#: never honoured). Censored and missed samples count as +inf in quantiles: unknown is never fast.
class SampleFlag(enum.IntFlag):
    """The flag bits of a sample; stored as plain ints in rows, payloads and results files."""

    UNRELIABLE = 1
    CENSORED = 2
    MISSED = 4
    VIRTUAL = 8  # measured on a virtual clock (``audio.clock = "virtual"``): no pacing to doubt

    @classmethod
    def names(cls, flags: int) -> list[str]:
        """The lower-case names of the bits set in ``flags``, lowest bit first."""
        return [f.name.lower() for f in cls if flags & f and f.name is not None]


UNRELIABLE, CENSORED, MISSED = SampleFlag.UNRELIABLE, SampleFlag.CENSORED, SampleFlag.MISSED
OUTCOMES = {"ok": 0, "censored": CENSORED, "missed": MISSED}


class SpanRecord(NamedTuple):
    """What the plugin keeps of one voice span: identity, timing and numeric metrics.

    Times are the span's own integer nanoseconds; ``trace_id`` is the integer trace id (0 when
    none). ``session_id``/``turn_id`` are ``""`` when the span did not carry them (its samples
    count, but it cannot join a turn's gaps). A named tuple because one is made per span on the
    hot path of the agent under test.
    """

    name: str
    stage: str
    session_id: str
    turn_id: str
    trace_id: int
    start_ns: int
    end_ns: int
    metrics: tuple[tuple[str, float], ...]
    bar: bool
    problems: tuple[str, ...] = ()
    flags: int = 0
