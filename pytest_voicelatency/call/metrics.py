"""Black-box measurements of one call, derived from its log by pure functions.

Every number here is a difference of two *actual* instants on the call's clock: when the user's
speech really started or ended (the ground-truth sample, placed at the actual send instant of the
frame that carried it — see :func:`~pytest_voicelatency.call.protocol.sample_instant_ns`) and
when the listener really heard something (the :class:`~pytest_voicelatency.call.playout.Playout`
model replayed over the agent events the log received). Nothing is ever invented:

* **response** (``caller.response``): ground-truth end of the user's speech → start of the first
  sound the listener hears after it. ``arrival_ms`` beside it is the naive number (first agent
  audio *arrived*), to show what leading silence or buffering hides;
* **barge-in** (``caller.barge_in``): ground-truth onset of the interruption → the instant the
  agent's audio playing then stops at the listener (quiet for the hold). ``tail_ms`` is how long
  the listener kept hearing the agent after the agent decided to stop (its clear, else its last
  audible chunk): the window in which the agent is deaf to the user;
* an event that never happened within the step's bound is **missed** (value: the bound); one still
  pending when the call ended is **censored** (value: the lower bound so far). Neither is 0;
* **barge-in truth**: a barge-in is honoured (``ok``) only when the agent stopped *because of* it.
  The protocol does not say how long a reply was meant to be, so the caller asks for a sign it
  can see: the agent's audio playing at the onset went quiet within the bound, and between the
  onset and that quiet the agent reacted — an ``AgentClear``, or an ``AgentState`` other than
  ``"speaking"`` (``"interrupted"``, ``"listening"``...). Audio that simply ran out with no
  such sign is ``not_interrupted`` (the reply's own end, not a stop): no latency and no
  ``caller.barge_in`` sample (a note says so), while the interruption decision records the
  words as talked over (``barge_in.missed = 1``). A barge-in clip with no audible sample
  between its labelled onset and offset is ``no_onset``: nothing was said, so there is nothing
  to honour; it is no sample (a note says so). A reply that outlasts ``stop_timeout_ms`` is
  ``missed``;
* **pacing**: lateness of every inbound frame (actual send − deadline) and of every event-loop
  wake-up, p50/p99/max per call. Reliability is judged **per measurement window**: a
  measurement whose window (its start to its end, plus the frame before) holds a frame sent
  more than the limit late is **unreliable** (``Measurement.reliable``); the others of the same
  call stay reliable. A call on a virtual clock cannot fall behind its own time: it is never
  unreliable, and its spans say ``audio.clock="virtual"``;
* **interruption decisions**: a barge-in step spoken with real words (the clip's kind:
  ``utterance``, ``interruption``, or a user's unlabelled clip) should stop the agent; a
  backchannel, cough, bark, babble or noise should not. Each such step that landed on audible
  agent speech gives a 0/1 sample: ``barge_in.missed`` (words, and the agent kept talking past
  the step's ``stop_timeout_ms``) or ``barge_in.false`` (a non-word sound, and the agent went
  quiet within that window). Their mean is the rate; ``barge_in.missed: p99 < 1`` passes while
  at most 1 % of real interruptions are missed. Only words give a ``caller.barge_in`` latency.

>>> from pytest_voicelatency.call.log import FrameSent
>>> due = [20_000_000 * (i + 1) for i in range(4)]
>>> frames = [FrameSent(i, t, t, t + 1_000_000 * (i == 2)) for i, t in enumerate(due)]
>>> p = pacing(frames, limit_ms=5.0)
>>> p.lateness_p50_ms, p.lateness_p99_ms, p.wake_max_ms, p.reliable
(0.0, 1.0, 0.0, True)
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from pytest_voicelatency.call.log import CallLog, Expectation, FrameSent, Note, Received, Utterance
from pytest_voicelatency.call.playout import Playout
from pytest_voicelatency.call.protocol import (
    AgentAudio,
    AgentClear,
    AgentState,
    check_event,
    sample_instant_ns,
)
from pytest_voicelatency.stats.quantiles import nearest_rank

__all__ = ["Measurement", "Pacing", "PlayoutSummary", "CallMetrics", "Interruption", "SpanData",
           "measure", "pacing", "replay", "speech_instant_ns", "response", "barge_in",
           "interruption", "caller_spans", "timeline", "WORD_KINDS", "Outcome", "SPAN_OUTCOME"]

#: ``ok``: a latency; ``missed``: not within the bound; ``censored``: the call ended first;
#: ``not_interrupted``: the agent's audio ran out with no sign it stopped for the barge-in;
#: ``no_onset``: the barge-in clip holds no speech, so nothing was interrupted.
Outcome = Literal["ok", "missed", "censored", "not_interrupted", "no_onset"]

#: in the note of every barge-in that did not land on audible agent speech (and only there):
#: what :func:`~pytest_voicelatency.strategies.assume_landed` looks for
NOT_LANDED = "there was nothing to barge in on"
#: What each outcome is recorded as in ``audio.outcome`` (the sample layer's three flags).
SPAN_OUTCOME = {"ok": "ok", "missed": "missed", "censored": "censored",
                "not_interrupted": "missed", "no_onset": "missed"}

#: Clip kinds that are words meant to interrupt (``unknown``: a user's own file, assumed words).
WORD_KINDS = frozenset({"utterance", "interruption", "unknown", "mixed"})


@dataclass(frozen=True, slots=True)
class Measurement:
    """One black-box measurement: ``kind`` of turn ``turn_id`` from ``start_ns`` to ``end_ns``."""

    kind: Literal["response", "barge_in"]
    turn_id: str
    start_ns: int
    end_ns: int
    value_ms: float
    outcome: Outcome
    bound_ms: float
    arrival_ms: float | None = None
    tail_ms: float | None = None
    #: False when a frame inside this measurement's window went out more than the pacing
    #: limit late: the caller fell behind real time while timing it
    reliable: bool = True

    @property
    def heard_ms(self) -> float:
        """The measured window, ``end_ns - start_ns``, in ms. For a barge-in: how long the
        listener heard the agent after the user began talking over it — for ``ok`` the stop
        latency, for ``not_interrupted`` until the reply ran out by itself, for ``missed`` the
        bound (it was still audible then), for ``censored`` until the agent went quiet or the
        call ended, and 0 for ``no_onset`` (the interruption had no audible onset: nothing was
        timed). For a response: the wait before the agent was heard."""
        return (self.end_ns - self.start_ns) / 1e6


@dataclass(frozen=True, slots=True)
class Pacing:
    """How well the caller kept real time: inbound frame lateness and wake-up lateness, ms."""

    frames: int
    lateness_p50_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float
    wake_p50_ms: float
    wake_p99_ms: float
    wake_max_ms: float
    limit_ms: float

    @property
    def reliable(self) -> bool:
        """False when p99 send lateness exceeded the limit: the call's timings cannot be trusted."""
        return self.frames == 0 or self.lateness_p99_ms <= self.limit_ms


@dataclass(frozen=True, slots=True)
class PlayoutSummary:
    """The client's view of the agent's stream (see
    :class:`~pytest_voicelatency.call.playout.Playout`)."""

    jitter_ms: float
    buffer_ms: float
    underruns: int
    flushed_ms: float
    clears: int
    chunks: int


@dataclass(frozen=True, slots=True)
class Interruption:
    """One sound spoken over the agent, judged as a decision: should it stop, and did it?

    ``intended``: the clip is words (see :data:`WORD_KINDS`). ``stopped``: the agent's audio
    playing at the sound's onset went quiet at the listener within ``bound_ms``.
    """

    turn_id: str
    clip: str
    kind: str
    intended: bool
    stopped: bool
    onset_ns: int
    bound_ms: float
    reliable: bool = True

    @property
    def missed(self) -> bool:
        """Words the agent talked over."""
        return self.intended and not self.stopped

    @property
    def false(self) -> bool:
        """A backchannel, cough or noise the agent stopped for."""
        return not self.intended and self.stopped


@dataclass(frozen=True, slots=True)
class CallMetrics:
    """Everything measured on one call; ``notes`` say what could not be measured and why.

    ``clock`` is ``"virtual"`` when the call ran on a virtual clock: then no machine load can
    have delayed it, and it is reliable whatever its pacing says.
    """

    session_id: str
    start_ns: int
    end_ns: int
    responses: tuple[Measurement, ...]
    barge_ins: tuple[Measurement, ...]
    pacing: Pacing
    playout: PlayoutSummary
    notes: tuple[str, ...] = ()
    interruptions: tuple[Interruption, ...] = ()
    clock: Literal["real", "virtual"] = "real"

    @property
    def unreliable(self) -> int:
        """How many measurements (responses, barge-ins, interruption decisions) fell in a window
        where the caller fell behind real time."""
        if self.clock == "virtual":
            return 0
        return (sum(not m.reliable for m in self.responses + self.barge_ins)
                + sum(not d.reliable for d in self.interruptions))

    @property
    def reliable(self) -> bool:
        """True unless a measured window was spoiled (then only those samples are flagged)."""
        return self.unreliable == 0


def _ms(ns: int | float) -> float:
    return round(float(ns) / 1e6, 4)


def _quantiles(values: np.ndarray) -> tuple[float, float, float]:
    if values.size == 0:
        return (0.0, 0.0, 0.0)
    return (_ms(nearest_rank(values, 0.5)), _ms(nearest_rank(values, 0.99)),
            _ms(float(values.max())))


def pacing(frames: Sequence[FrameSent], limit_ms: float) -> Pacing:
    """p50/p99/max of send lateness and wake-up lateness over ``frames`` (nearest rank)."""
    sent = np.array([f.sent_ns - f.scheduled_ns for f in frames], dtype=np.float64)
    woke = np.array([f.woke_ns - f.scheduled_ns for f in frames], dtype=np.float64)
    return Pacing(len(frames), *_quantiles(np.maximum(sent, 0)), *_quantiles(np.maximum(woke, 0)),
                  limit_ms)


def window_reliable(log: CallLog, start_ns: int, end_ns: int, limit_ms: float) -> bool:
    """True when no inbound frame due inside ``[start_ns - frame, end_ns]`` went out more than
    ``limit_ms`` late (always on a virtual clock): a late wake-up spoils only the measurements
    whose window it falls in."""
    if log.clock.is_virtual:
        return True
    frames, limit = log.frames, limit_ms * 1e6
    lo = bisect.bisect_left(frames, start_ns - log.format.frame_ns, key=lambda f: f.scheduled_ns)
    for frame in frames[lo:]:
        if frame.scheduled_ns > end_ns:
            break
        if frame.sent_ns - frame.scheduled_ns > limit:
            return False
    return True


def speech_instant_ns(log: CallLog, sample: int, *, end: bool = False) -> int | None:
    """When inbound stream sample ``sample`` was spoken (None if its frame was never sent).

    With ``end=True`` ``sample`` is one past the last sample of a stretch (an offset): the
    instant is taken from the frame holding ``sample - 1``, the last sample actually spoken, so an
    offset on a frame boundary does not pick up the next frame's send lateness.
    """
    n = log.format.frame_samples
    index = (sample - 1) // n if end and sample > 0 else sample // n
    if index >= len(log.frames):
        return None
    frame = log.frames[index]
    return sample_instant_ns(frame.sent_ns, n, sample - index * n, log.format.sample_rate)


def replay(log: CallLog) -> Playout:
    """The listener's playout of every agent event in the log (malformed events are skipped)."""
    playout = Playout(log.playout, log.format.sample_rate)
    for entry in log.of(Received):
        event = entry.event
        if isinstance(event, AgentAudio):
            try:
                check_event(event, log.format, decode=False)
            except Exception:
                continue
            playout.audio_pcm(entry.arrived_ns, event.pcm)
        elif isinstance(event, AgentClear):
            playout.clear(entry.arrived_ns)
    return playout


def response(log: CallLog, playout: Playout, exp: Expectation, end_ns: int) -> Measurement | str:
    """The response to turn ``exp.turn_id``, or a note saying why it cannot be measured."""
    utterance = log.utterance(exp.turn_id)
    if utterance is None or utterance.offset_sample is None:
        return f"turn {exp.turn_id}: no user utterance with a known end to measure a response from"
    said = speech_instant_ns(log, utterance.offset_sample, end=True)
    if said is None:
        return f"turn {exp.turn_id}: the call ended before the user finished speaking"
    bound = said + round(exp.bound_ms * 1e6)
    onset = playout.first_onset(said)
    arrival = next((c.arrival_ns for c in playout.chunks if c.sent_ns >= said), None)
    arrival_ms = None if arrival is None else _ms(arrival - said)
    if onset is not None and onset <= min(end_ns, bound):
        return Measurement("response", exp.turn_id, said, onset, _ms(onset - said), "ok",
                           exp.bound_ms, arrival_ms)
    if end_ns < bound:
        return Measurement("response", exp.turn_id, said, end_ns, _ms(max(end_ns - said, 0)),
                           "censored", exp.bound_ms, arrival_ms)
    return Measurement("response", exp.turn_id, said, bound, exp.bound_ms, "missed", exp.bound_ms,
                       arrival_ms)


def _stop_decision(log: CallLog, playout: Playout, onset: int, silent: int,
                   bound: int) -> int | None:
    """When the agent decided to stop: its first clear after the onset (within the bound), else
    the send instant of its last audible chunk that played before the silence."""
    for entry in log.of(Received):
        if isinstance(entry.event, AgentClear) and onset <= entry.arrived_ns <= onset + bound:
            return entry.arrived_ns
    reacted = _reaction(log, onset, silent)
    if reacted is not None:
        return reacted
    last = None
    for chunk in playout.chunks:
        first = chunk.runs[0][0] if chunk.runs else None
        if first is not None and chunk.start_ns + first * 1_000_000_000 // playout.rate < silent:
            last = chunk.sent_ns
    return last


def _reaction(log: CallLog, onset: int, silent: int) -> int | None:
    """The first sign, between the interruption's onset and the quiet it ended in, that the agent
    stopped because of it: an ``AgentClear`` or an ``AgentState`` other than ``"speaking"``."""
    for entry in log.of(Received):
        if entry.arrived_ns < onset:
            continue
        if entry.arrived_ns > silent:
            break
        event = entry.event
        if isinstance(event, AgentClear) or (isinstance(event, AgentState)
                                             and event.state != "speaking"):
            return entry.arrived_ns
    return None


def _landed(log: CallLog, playout: Playout, exp: Expectation) -> tuple[Utterance, int] | str:
    """The interrupting utterance and its spoken onset, or why it did not land on the agent."""
    utterance = log.utterance(exp.turn_id)
    if utterance is None or utterance.onset_sample is None:
        return f"turn {exp.turn_id}: no interrupting utterance with a known onset"
    onset = speech_instant_ns(log, utterance.onset_sample)
    if onset is None:
        return f"turn {exp.turn_id}: the call ended before the interruption was spoken"
    if not playout.audible_at(onset):
        return (f"turn {exp.turn_id}: the agent was not audible when the interruption began, so "
                f"{NOT_LANDED} (its reply had ended or not begun); not a "
                f"barge-in sample: shorten after_ms or barge in at an agent state")
    return utterance, onset


def interruption(log: CallLog, playout: Playout, exp: Expectation,
                 end_ns: int) -> Interruption | None:
    """The stop decision of barge-in step ``exp``; None when it did not land or is unknown yet."""
    landed = _landed(log, playout, exp)
    if isinstance(landed, str) or not landed[0].speech:
        return None
    utterance, onset = landed
    silent = playout.silent_from(onset)
    bound_ns = round(exp.bound_ms * 1e6)
    quiet = silent - onset <= bound_ns and playout.settled(onset, end_ns) is not None
    outran = silent - onset > bound_ns and end_ns - onset >= bound_ns
    if not quiet and not outran:
        return None  # the call ended inside the window: still undecided
    stopped = quiet and _reaction(log, onset, silent) is not None  # ran out by itself: no stop
    return Interruption(exp.turn_id, utterance.clip, utterance.kind,
                        utterance.kind in WORD_KINDS, stopped, onset, exp.bound_ms)


def barge_in(log: CallLog, playout: Playout, exp: Expectation, end_ns: int) -> Measurement | str:
    """The barge-in of turn ``exp.turn_id``, or a note saying why it cannot be measured."""
    landed = _landed(log, playout, exp)
    if isinstance(landed, str):
        return landed
    utterance, onset = landed
    bound_ns = round(exp.bound_ms * 1e6)
    if not utterance.speech:
        return Measurement("barge_in", exp.turn_id, onset, onset, exp.bound_ms, "no_onset",
                           exp.bound_ms)
    silent = playout.silent_from(onset)
    if silent - onset > bound_ns and end_ns - onset >= bound_ns:  # still audible at the bound
        return Measurement("barge_in", exp.turn_id, onset, onset + bound_ns, exp.bound_ms,
                           "missed", exp.bound_ms)
    if playout.settled(onset, end_ns) is None:
        last = min(silent, end_ns)
        return Measurement("barge_in", exp.turn_id, onset, last, _ms(last - onset), "censored",
                           exp.bound_ms)
    if _reaction(log, onset, silent) is None:
        return Measurement("barge_in", exp.turn_id, onset, silent, exp.bound_ms, "not_interrupted",
                           exp.bound_ms)
    decision = _stop_decision(log, playout, onset, silent, bound_ns)
    tail = None if decision is None else _ms(max(silent - decision, 0))
    return Measurement("barge_in", exp.turn_id, onset, silent, _ms(silent - onset), "ok",
                       exp.bound_ms, tail_ms=tail)


def measure(log: CallLog, *, pacing_limit_ms: float = 5.0,
            playout: Playout | None = None) -> CallMetrics:
    """Derive every measurement of a call from its log (pure: the log is not changed).

    ``playout`` may be the :func:`replay` of this very log, already built (the runner feeds one
    live, event by event, in log order): then it is not replayed again.
    """
    ended = log.ended
    end_ns = ended.at_ns if ended is not None else max(
        [log.origin_ns] + [f.sent_ns for f in log.frames]
        + [e.arrived_ns for e in log.of(Received)])
    playout = playout if playout is not None else replay(log)
    responses: list[Measurement] = []
    barge_ins: list[Measurement] = []
    notes: list[str] = []
    decisions: list[Interruption] = []
    for exp in log.of(Expectation):
        if exp.kind == "barge_in":
            decision = interruption(log, playout, exp, end_ns)
            if decision is not None:
                decisions.append(decision)
            if decision is not None and not decision.intended:
                continue  # a backchannel or a cough is no barge-in: no latency to measure
        result = (response if exp.kind == "response" else barge_in)(log, playout, exp, end_ns)
        if isinstance(result, str):
            notes.append(result)
            continue
        result = replace(result, reliable=window_reliable(log, result.start_ns, result.end_ns,
                                                          pacing_limit_ms))
        (responses if exp.kind == "response" else barge_ins).append(result)
        if result.outcome == "not_interrupted":
            notes.append(
                f"turn {exp.turn_id}: the agent's audio ran out "
                f"{_ms(result.end_ns - result.start_ns):g} ms after the interruption began, with "
                f"no AgentClear and no AgentState from the agent in between: its reply ended by "
                f"itself, it did not stop for the barge-in (outcome not_interrupted: no barge-in "
                f"latency; the interruption counts as missed); emit AgentClear() when you stop "
                f"for an interruption")
        elif result.outcome == "no_onset":
            utterance = log.utterance(exp.turn_id)
            clip = utterance.clip if utterance is not None else "?"
            notes.append(
                f"turn {exp.turn_id}: the barge-in clip {clip!r} holds no audible sample between "
                f"its labelled onset and offset (silence labelled as speech), so nothing "
                f"interrupted the agent (outcome no_onset, no barge-in sample); fix the clip's "
                f"onset_ms/offset_ms or use a clip with speech")
    decisions = [replace(d, reliable=window_reliable(
        log, d.onset_ns, d.onset_ns + round(d.bound_ms * 1e6), pacing_limit_ms))
        for d in decisions]
    notes.extend(f"turn {n.turn_id}: {n.text}" for n in log.of(Note))
    if log.late_events:
        notes.append(f"{log.late_events} agent events arrived after the call ended (ignored)")
    summary = PlayoutSummary(round(playout.jitter_ms, 4), round(playout.buffer_ms, 4),
                             playout.underruns, round(playout.flushed_ms, 4), playout.clears,
                             len(playout.chunks))
    return CallMetrics(log.session_id, log.origin_ns, end_ns, tuple(responses),
                       tuple(barge_ins), pacing(log.frames, pacing_limit_ms), summary,
                       tuple(notes), tuple(decisions),
                       "virtual" if log.clock.is_virtual else "real")


@dataclass(frozen=True, slots=True)
class SpanData:
    """A black-box span to emit: name (= stage), instants on the call's clock, attributes."""

    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]


def caller_spans(metrics: CallMetrics, *, virtual_clock: bool = False) -> list[SpanData]:
    """The ``caller.*`` spans of a call: one per measurement, plus playout and pacing per call,
    plus one ``barge_in.missed`` or ``barge_in.false`` span per interruption decision.

    Every span carries ``audio.source="caller"``, the session and turn ids (``"call"`` for the
    per-call ones), ``audio.reliable`` and ``audio.clock`` (``"real"`` or ``"virtual"``); a
    missed or censored measurement carries ``audio.outcome`` and its bound as the value. A
    decision span holds its 0/1 value as ``audio.missed`` / ``audio.false`` and as its duration
    in ms, so a gate on the stage's default metric reads the same number.
    """
    virtual = virtual_clock or metrics.clock == "virtual"
    common = {"audio.source": "caller", "audio.session_id": metrics.session_id,
              "audio.clock": "virtual" if virtual else "real"}
    call_reliable = virtual or metrics.pacing.reliable

    def span(stage: str, turn: str, start: int, end: int, values: dict[str, Any],
             reliable: bool) -> SpanData:
        attributes = {"audio.stage": stage, "audio.turn_id": turn, **common,
                      "audio.reliable": virtual or reliable,
                      **{f"audio.{k}": v for k, v in values.items() if v is not None}}
        return SpanData(stage, start, max(end, start), attributes)

    out = []
    for m in metrics.responses + metrics.barge_ins:
        if m.outcome in ("no_onset", "not_interrupted"):
            continue  # no stop to time: no latency sample (the call's notes say so)
        values: dict[str, Any] = {"latency_ms": m.value_ms, "outcome": SPAN_OUTCOME[m.outcome],
                                  "bound_ms": m.bound_ms}
        if m.kind == "response":
            values["arrival_ms"] = m.arrival_ms
        else:
            values["tail_ms"] = m.tail_ms
            values["barge_in"] = m.outcome
        out.append(span(f"caller.{m.kind}", m.turn_id, m.start_ns, m.end_ns, values, m.reliable))
    for d in metrics.interruptions:
        name, value = ("missed", d.missed) if d.intended else ("false", d.false)
        out.append(span(f"barge_in.{name}", d.turn_id, d.onset_ns,
                        d.onset_ns + 1_000_000 * value,
                        {name: float(value), "bound_ms": d.bound_ms, "clip": d.clip,
                         "kind": d.kind}, d.reliable))
    o, p = metrics.playout, metrics.pacing
    out.append(span("caller.playout", "call", metrics.start_ns, metrics.end_ns,
                    {"jitter_ms": o.jitter_ms, "buffer_ms": o.buffer_ms, "underruns": o.underruns,
                     "flushed_ms": o.flushed_ms, "clears": o.clears}, call_reliable))
    out.append(span("caller.pacing", "call", metrics.start_ns, metrics.end_ns,
                    {"lateness_p50_ms": p.lateness_p50_ms, "lateness_p99_ms": p.lateness_p99_ms,
                     "lateness_max_ms": p.lateness_max_ms, "wake_p50_ms": p.wake_p50_ms,
                     "wake_p99_ms": p.wake_p99_ms, "wake_max_ms": p.wake_max_ms,
                     "frames": p.frames, "limit_ms": p.limit_ms}, call_reliable))
    return out


def timeline(log: CallLog, *, around_ns: int | None = None, rows: int = 30) -> str:
    """What happened on the call, in order, as text: who spoke, what the agent sent and said
    it was doing, and what the listener heard when (ms from the call's time zero).

    For failure messages: a property that fails on a moment prints the moment's story. The
    agent's audio events are grouped into runs; with ``around_ns`` only the ``rows`` lines
    nearest that instant are kept.
    """
    origin = log.origin_ns
    lines: list[tuple[int, str]] = []
    for u in log.of(Utterance):
        verb = {"say": "user says", "barge_in": "user talks over the agent with",
                "noise": "noise"}[u.role]
        what = f"{verb} {u.clip!r} ({u.kind})"
        on = None if u.onset_sample is None else speech_instant_ns(log, u.onset_sample)
        off = None if u.offset_sample is None else speech_instant_ns(log, u.offset_sample, end=True)
        if on is not None:
            aimed = "" if u.target_ns is None else f", aimed at {_ms(u.target_ns - origin):g} ms"
            lines.append((on, f"{what}: speech starts{aimed}"))
        if off is not None:
            lines.append((off, f"{what}: speech ends"))
    run: list[Received] = []

    def flush_run() -> None:
        if run:
            count = len(run)
            lines.append((run[0].arrived_ns, f"agent sends audio: {count} chunk{'s' * (count > 1)}"
                          f" until {_ms(run[-1].arrived_ns - origin):g} ms"))
            run.clear()

    for entry in log.of(Received):
        event = entry.event
        if isinstance(event, AgentAudio):
            run.append(entry)
            continue
        flush_run()
        if isinstance(event, AgentClear):
            lines.append((entry.arrived_ns, f"agent clears the client's buffer ({event.reason})"))
        else:
            lines.append((entry.arrived_ns, f"agent state: {getattr(event, 'state', event)}"))
    flush_run()
    for on, off in replay(log).intervals:
        lines.append((on, "listener starts hearing the agent"))
        lines.append((off, "listener stops hearing the agent"))
    ended = log.ended
    if ended is not None:
        lines.append((ended.at_ns, f"call ends ({ended.reason})"))
    lines.sort(key=lambda item: item[0])
    if around_ns is not None and len(lines) > rows:
        nearest = min(range(len(lines)), key=lambda i: abs(lines[i][0] - around_ns))
        first = max(0, min(nearest - rows // 2, len(lines) - rows))
        lines = lines[first:first + rows]
    return "\n".join(f"{_ms(at - origin):>11.3f} ms  {text}" for at, text in lines)
