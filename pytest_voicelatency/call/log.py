"""The record of one call: an append-only log of what was sent, heard and expected, in order.

Why a log: every number the caller reports is derived from it afterwards by pure functions
(:mod:`pytest_voicelatency.call.metrics`), so a metric can be unit-tested on a synthetic log with
no sockets and no sleeps, and a surprising number can be explained by reading the log.

What goes in, all in integer nanoseconds of the call's one clock:

* :class:`FrameSent` — each inbound frame's *scheduled* deadline, the instant the caller *woke*
  for it and the instant it was *actually* sent (instants of user speech come from the actual one);
* :class:`Utterance` — a clip placed in the inbound stream, with its ground-truth speech onset and
  offset as stream sample indices (known from the clip's labels, not from a VAD);
* :class:`Received` — an agent event, stamped once by :meth:`CallLog.receive` the moment it
  arrives, before it is even validated;
* :class:`Expectation` — a script step that asked for a measurement (a response, a barge-in) and
  the bound after which it counts as missed;
* :class:`Note` — something the script gave up waiting for (a reply that outran its bound, a
  reply that never came to barge in on), said in words for the call's warnings;
* :class:`CallEnded` — when listening stopped: anything still unknown then is censored.

>>> from pytest_voicelatency.call.protocol import AgentState, AudioFormat
>>> from pytest_voicelatency.clock import RealClock
>>> from pytest_voicelatency.call.playout import PlayoutConfig
>>> log = CallLog("s1", AudioFormat(), PlayoutConfig(), RealClock())
>>> entry = log.receive(AgentState("thinking"))
>>> entry.arrived_ns <= log.clock.now_ns(), len(log)
(True, 1)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from pytest_voicelatency.call.protocol import AgentEvent, AudioFormat

if TYPE_CHECKING:
    from pytest_voicelatency.call.playout import PlayoutConfig
    from pytest_voicelatency.clock import Clock

__all__ = ["CallLog", "FrameSent", "Utterance", "Received", "Expectation", "Note", "CallEnded",
           "LogEntry"]


@dataclass(frozen=True, slots=True)
class FrameSent:
    """Inbound frame ``index`` (samples ``index*n .. index*n+n``): deadline, wake-up, send."""

    index: int
    scheduled_ns: int
    woke_ns: int
    sent_ns: int


@dataclass(frozen=True, slots=True)
class Utterance:
    """A clip in the inbound stream; sample indices count from the call's first inbound sample.

    ``role`` is ``"say"`` (a user turn), ``"barge_in"`` (a user turn spoken over the agent) or
    ``"noise"`` (no turn). ``onset``/``offset`` are the ground truth (``None`` when the clip has
    none); ``target_ns`` is the instant a barge-in was aimed at, for the record; ``kind`` is the
    clip's label (``"utterance"``, ``"backchannel"``, ``"cough"``...): whether a sound spoken
    over the agent was meant to interrupt it. ``speech`` is False when the clip holds no audible
    sample between its labelled onset and offset (a silent clip labelled as speech): nothing
    was said, so a barge-in made of it is ``no_onset``, never a latency.
    """

    turn_id: str
    role: Literal["say", "barge_in", "noise"]
    clip: str
    start_sample: int
    end_sample: int
    onset_sample: int | None
    offset_sample: int | None
    target_ns: int | None = None
    kind: str = "unknown"
    speech: bool = True


@dataclass(frozen=True, slots=True)
class Received:
    """An agent event and the instant it arrived (stamped once, before validation)."""

    arrived_ns: int
    event: AgentEvent


@dataclass(frozen=True, slots=True)
class Expectation:
    """A script step asked for a ``response`` to, or a ``barge_in`` by, turn ``turn_id``."""

    kind: Literal["response", "barge_in"]
    turn_id: str
    bound_ms: float
    at_ns: int
    step: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    """The script gave up waiting for something at ``at_ns``; ``text`` says what, for turn
    ``turn_id``, in words fit for a warning."""

    at_ns: int
    turn_id: str
    text: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The caller stopped listening at ``at_ns``; ``reason`` is ``"done"`` or the error's name."""

    at_ns: int
    reason: str = "done"


LogEntry = FrameSent | Utterance | Received | Expectation | Note | CallEnded
_E = TypeVar("_E", FrameSent, Utterance, Received, Expectation, Note, CallEnded)


class CallLog:
    """The append-only log of one call, plus the conditions needed to interpret it.

    ``origin_ns`` is the call's time zero: inbound sample ``k`` is due at ``origin_ns + k/rate``.
    Entries are never changed or removed. Not thread-safe (one call, one event loop).
    """

    def __init__(self, session_id: str, fmt: AudioFormat, playout: PlayoutConfig, clock: Clock,
                 origin_ns: int | None = None) -> None:
        self.session_id = session_id
        self.format = fmt
        self.playout = playout
        self.clock = clock
        self.origin_ns = clock.now_ns() if origin_ns is None else origin_ns
        self._entries: list[LogEntry] = []
        self.frames: list[FrameSent] = []
        self.late_events = 0
        self._openers: dict[str, Utterance] = {}  # turn id -> the utterance that opened it

    def receive(self, event: AgentEvent) -> Received | None:
        """Stamp ``event`` with the arrival instant and append it; None once the call ended."""
        arrived = self.clock.now_ns()
        if self.ended is not None:
            self.late_events += 1
            return None
        entry = Received(arrived, event)
        self._entries.append(entry)
        return entry

    def append(self, entry: LogEntry) -> None:
        """Append an entry made elsewhere (frames, utterances, expectations, the end)."""
        if isinstance(entry, FrameSent):
            self.frames.append(entry)
        elif isinstance(entry, Utterance) and entry.role != "noise":
            self._openers.setdefault(entry.turn_id, entry)
        self._entries.append(entry)

    def end(self, reason: str = "done") -> CallEnded:
        """Close the log at the current instant (idempotent: the first end wins)."""
        if self.ended is None:
            self._entries.append(CallEnded(self.clock.now_ns(), reason))
        ended = self.ended
        assert ended is not None
        return ended

    @property
    def ended(self) -> CallEnded | None:
        last = self._entries[-1] if self._entries else None
        return last if isinstance(last, CallEnded) else None

    @property
    def entries(self) -> tuple[LogEntry, ...]:
        return tuple(self._entries)

    def of(self, kind: type[_E]) -> Iterator[_E]:
        """The entries of one type, in log order."""
        return (e for e in self._entries if isinstance(e, kind))

    def utterance(self, turn_id: str) -> Utterance | None:
        """The user utterance that opened turn ``turn_id`` (indexed as it is appended)."""
        return self._openers.get(turn_id)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<CallLog {self.session_id} {len(self._entries)} entries>"
