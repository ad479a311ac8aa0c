"""Hypothesis strategies for voice calls: when the user talks over the agent, with what sound,
through which line, against which agent.

Why: cancellation bugs live in moments — a barge-in while a TTS chunk is in flight, before the
first audio, on the last frame — and in sounds that should not interrupt at all. Drawing those
moments and sounds at random, hundreds of times, on a virtual clock (``Caller(clock="virtual")``)
finds them in seconds, and hypothesis shrinks a failure to the simplest call that shows it.

The pieces, each a strategy, compose into whole call scripts with :func:`call_scripts`:

* :func:`barge_in_moments` — a :class:`Moment`: relative to the reply becoming audible, to the
  agent reporting ``speaking`` or ``thinking``; aimed anywhere, at a TTS chunk boundary, before
  the first audio, or at the reply's last frame;
* :func:`interjections` — an :class:`Interjection`: real words, a backchannel ("mm-hm",
  "uh-huh"), a cough, babble or a dog, from the bundled labelled clips;
* :func:`perturbations` — a :class:`Perturbation` of a clip: a noise bed at an SNR, gain,
  clipping, leading silence (the ground truth stays exact);
* :func:`playout_configs` — the listener's network and jitter buffer (:data:`NETWORKS`);
* :func:`reference_configs` — stage latencies of the reference agent;
* :func:`backend_faults`, :func:`backend_calls`, :func:`backend_profiles` — what a scripted
  backend (:class:`~pytest_voicelatency.agents.ScriptedBackend`) does with an agent's tool
  requests: latencies (clustered around the tool's client timeout when given, where a slow
  commit lands after the caller gave up) and faults (errors, lost replies, hangs).

Moments a strategy cannot produce are rejected with :func:`hypothesis.assume` (a chunk boundary
in a reply shorter than a chunk), as are calls where a drawn moment did not land on the agent's
speech (:func:`assume_landed`): never a failure that depends on luck.

>>> from hypothesis import find
>>> m = find(barge_in_moments(anchors=("chunk_boundary",)), lambda m: True)
>>> m.anchor, m.state
('chunk_boundary', None)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Literal

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from pytest_voicelatency.agents.backend import FAULTS, BackendCall, BackendFault, BackendProfile
from pytest_voicelatency.agents.reference import Latency, ReferenceConfig
from pytest_voicelatency.audio.clips import Clip, add_noise, list_clips, load_clip, pad
from pytest_voicelatency.call.metrics import NOT_LANDED, CallMetrics
from pytest_voicelatency.call.playout import PlayoutConfig
from pytest_voicelatency.call.script import Step, answer, barge_in, pause, say
from pytest_voicelatency.errors import VoiceLatencyUsageError

__all__ = ["Moment", "Interjection", "Perturbation", "NETWORKS", "INTERJECTION_KINDS",
           "barge_in_moments", "interjections", "perturbations", "playout_configs",
           "reference_configs", "call_scripts", "assume_landed", "interjection_clips",
           "backend_faults", "backend_calls", "backend_profiles"]

Anchor = Literal["free", "chunk_boundary", "before_audio", "last_frame"]
InterjectionKind = Literal["words", "backchannel", "cough", "babble", "bark"]
INTERJECTION_KINDS: tuple[InterjectionKind, ...] = ("words", "backchannel", "cough", "babble",
                                                    "bark")
_ANCHORS: tuple[Anchor, ...] = ("free", "chunk_boundary", "before_audio", "last_frame")
#: Network profiles of the listener's line: (delay ms, jitter ms, jitter buffer ms).
NETWORKS: dict[str, tuple[float, float, float]] = {
    "lan": (0.0, 0.0, 40.0), "wifi": (15.0, 8.0, 60.0), "4g": (50.0, 25.0, 100.0),
    "congested": (120.0, 40.0, 160.0)}
_FRAME_MS = 20.0


@dataclass(frozen=True)
class Moment:
    """When to barge in: ``after_ms`` after the reply became audible (``state=None``) or after
    the agent emitted ``AgentState(state)``. ``anchor`` names what the moment aims at."""

    after_ms: float
    state: str | None = None
    anchor: Anchor = "free"

    def describe(self) -> str:
        since = "audible reply" if self.state is None else f"state {self.state!r}"
        return f"{self.after_ms:g} ms after the {since} ({self.anchor})"


@dataclass(frozen=True)
class Interjection:
    """A sound the user makes over the agent: a bundled clip and what kind of sound it is.
    Only ``words`` are meant to interrupt."""

    clip: str
    kind: InterjectionKind

    @property
    def words(self) -> bool:
        return self.kind == "words"


@dataclass(frozen=True)
class Perturbation:
    """A change to a clip that keeps its ground truth: gain, clipping (peaks flattened by
    ``clip_db``), a noise bed at ``snr_db`` over the speech, then leading silence."""

    noise: str | None = None
    snr_db: float = 30.0
    gain_db: float = 0.0
    clip_db: float = 0.0
    lead_ms: float = 0.0
    seed: int = 0

    def apply(self, clip: Clip | str, sample_rate: int = 16_000) -> Clip:
        out = load_clip(clip, sample_rate=sample_rate) if isinstance(clip, str) else clip
        if self.gain_db:
            scaled = np.clip(out.samples * 10 ** (self.gain_db / 20), -1.0, 1.0)
            out = replace(out, samples=scaled.astype(np.float32))
        if self.clip_db > 0:
            ceiling = float(np.abs(out.samples).max()) * 10 ** (-self.clip_db / 20)
            out = replace(out, samples=np.clip(out.samples, -ceiling, ceiling))
        if self.noise is not None:
            out = add_noise(out, _clip(self.noise, out.sample_rate), self.snr_db, seed=self.seed)
        if self.lead_ms:
            out = pad(out, lead_ms=self.lead_ms)
        return out


@cache
def _clip(name: str, sample_rate: int) -> Clip:
    return load_clip(name, sample_rate=sample_rate)


@cache
def interjection_clips(kind: InterjectionKind) -> tuple[str, ...]:
    """The bundled clips of one kind of interjection. Words are the interruptions ("wait, stop",
    "no, I meant Tuesday") and the utterances with at least 1 s of speech: a duration-based
    policy cannot tell a single short word from "mm-hm", so those are left out."""
    if kind == "words":
        long = [name for name in list_clips("utterance") if _speech_ms(name) >= 1000]
        return tuple(list_clips("interruption") + long)
    labels = {"backchannel": "backchannel", "cough": "cough", "babble": "babble", "bark": "bark"}
    if kind not in labels:
        raise VoiceLatencyUsageError(f"interjection kind must be one of {INTERJECTION_KINDS}, "
                                     f"got {kind!r}")
    return tuple(list_clips(labels[kind]))  # type: ignore[arg-type]


def _speech_ms(name: str) -> float:
    clip = _clip(name, 16_000)
    return (clip.offset_ms or 0.0) - (clip.onset_ms or 0.0)


# ---------------------------------------------------------------------- moments


def barge_in_moments(*, anchors: Sequence[Anchor] = _ANCHORS,
                     states: Sequence[str | None] = (None, "speaking"), reply_ms: float = 2400.0,
                     tts_chunk_ms: float = 200.0, lead_ms: float = 30.0,
                     max_after_ms: float | None = None) -> st.SearchStrategy[Moment]:
    """Moments to barge in, for a reply of ``reply_ms`` sent in TTS chunks of ``tts_chunk_ms``
    with ``lead_ms`` of leading silence (the reference agent's defaults).

    ``free``: anywhere in the reply; ``chunk_boundary``: within 10 ms of where a chunk starts
    playing; ``before_audio``: while the agent reports ``thinking``, before its first audio;
    ``last_frame``: on the reply's last 20 ms frame. ``states`` are what ``free`` and
    ``chunk_boundary`` moments count from (None: the audible reply).
    """
    for anchor in anchors:
        if anchor not in _ANCHORS:
            raise VoiceLatencyUsageError(f"anchor must be one of {_ANCHORS}, got {anchor!r}")
    if not anchors or not states:
        raise VoiceLatencyUsageError("barge_in_moments needs at least one anchor and one state")
    if not (reply_ms > 0 and tts_chunk_ms > 0 and lead_ms >= 0):
        raise VoiceLatencyUsageError("reply_ms and tts_chunk_ms must be > 0, lead_ms >= 0")
    limit = reply_ms if max_after_ms is None else min(reply_ms, max_after_ms)

    @st.composite
    def moments(draw: st.DrawFn) -> Moment:
        anchor = draw(st.sampled_from(list(anchors)))
        if anchor == "before_audio":
            return Moment(float(draw(st.integers(0, 300))), "thinking", anchor)
        state = draw(st.sampled_from(list(states)))
        if anchor == "last_frame":
            after = reply_ms - _FRAME_MS + draw(st.integers(-10, 10))
        elif anchor == "chunk_boundary":
            chunks = math.ceil((reply_ms + lead_ms) / tts_chunk_ms)
            assume(chunks > 1)  # a reply of one chunk has no boundary to aim at
            k = draw(st.integers(1, chunks - 1))
            after = k * tts_chunk_ms - lead_ms + draw(st.integers(-10, 10))
        else:
            after = float(draw(st.integers(0, max(0, int(limit - _FRAME_MS)))))
        assume(0 <= after <= limit)  # e.g. the last frame of a reply longer than max_after_ms
        return Moment(float(after), state, anchor)

    return moments()


def interjections(kinds: Sequence[InterjectionKind] = INTERJECTION_KINDS
                  ) -> st.SearchStrategy[Interjection]:
    """Sounds made over the agent, drawn from the bundled labelled clips of ``kinds``."""
    if not kinds:
        raise VoiceLatencyUsageError("interjections() needs at least one kind")
    options = [Interjection(name, kind) for kind in kinds for name in interjection_clips(kind)]
    return st.sampled_from(options)


def perturbations(*, noises: Sequence[str | None] = (None, "pink_noise", "room_tone", "babble"),
                  snr_db: tuple[float, float] = (10.0, 40.0),
                  gain_db: tuple[float, float] = (-12.0, 6.0),
                  clip_db: tuple[float, float] = (0.0, 12.0),
                  lead_ms: tuple[float, float] = (0.0, 500.0)) -> st.SearchStrategy[Perturbation]:
    """Perturbations within the given ranges (each a ``(low, high)`` pair, whole numbers)."""
    for name, (low, high) in (("snr_db", snr_db), ("gain_db", gain_db), ("clip_db", clip_db),
                              ("lead_ms", lead_ms)):
        if not low <= high:
            raise VoiceLatencyUsageError(f"perturbations {name}: low {low} > high {high}")
    return st.builds(
        Perturbation, noise=st.sampled_from(list(noises)),
        snr_db=st.integers(math.ceil(snr_db[0]), math.floor(snr_db[1])).map(float),
        gain_db=st.integers(math.ceil(gain_db[0]), math.floor(gain_db[1])).map(float),
        clip_db=st.integers(math.ceil(clip_db[0]), math.floor(clip_db[1])).map(float),
        lead_ms=st.integers(math.ceil(lead_ms[0]), math.floor(lead_ms[1])).map(float),
        seed=st.integers(0, 2**16))


# ---------------------------------------------------------------------- the line and the agent


def playout_configs(networks: Sequence[str] = tuple(NETWORKS)
                    ) -> st.SearchStrategy[PlayoutConfig]:
    """The listener's line: a network profile of :data:`NETWORKS`, varied within ±50 %."""
    unknown = [n for n in networks if n not in NETWORKS]
    if unknown or not networks:
        raise VoiceLatencyUsageError(f"networks must be among {tuple(NETWORKS)}, got {networks}")

    @st.composite
    def configs(draw: st.DrawFn) -> PlayoutConfig:
        delay, jitter, buffer = NETWORKS[draw(st.sampled_from(list(networks)))]
        scale = draw(st.integers(50, 150)) / 100
        return PlayoutConfig(buffer_ms=buffer, delay_ms=round(delay * scale, 1),
                             jitter_ms=round(jitter * scale, 1), seed=draw(st.integers(0, 2**16)))

    return configs()


def _latencies(median: tuple[int, int]) -> st.SearchStrategy[Latency]:
    return st.builds(lambda m, spread: Latency(float(m), round(m * spread / 100, 1)),
                     st.integers(*median), st.integers(100, 200))


def reference_configs(**fixed: Any) -> st.SearchStrategy[ReferenceConfig]:
    """Stage latency profiles of the reference agent (ASR, LLM, TTS, cancel; each a median and
    a p95 up to twice it) and its seed; ``fixed`` knobs (e.g. ``racy_flush=True``) are kept."""
    unknown = set(fixed) - set(ReferenceConfig.__dataclass_fields__)
    if unknown:
        raise VoiceLatencyUsageError(
            f"reference_configs: no ReferenceConfig knob {sorted(unknown)}")
    return st.builds(
        lambda seed, asr, final, llm, token, tts, chunk, cancel: replace(
            ReferenceConfig(seed=seed, asr_first_partial=asr, asr_final=final,
                            llm_first_token=llm, llm_token=token, tts_first_chunk=tts,
                            tts_chunk=chunk, cancel=replace(cancel, max_ms=cancel.p95_ms * 2)),
            **fixed),
        st.integers(0, 2**16), _latencies((40, 150)), _latencies((40, 150)),
        _latencies((100, 400)), _latencies((5, 40)), _latencies((60, 250)),
        _latencies((20, 120)), _latencies((5, 60)))


# ---------------------------------------------------------------------- an agent's backend


def backend_faults(faults: Sequence[BackendFault] = FAULTS) -> st.SearchStrategy[BackendFault]:
    """Faults of one backend request (:data:`~pytest_voicelatency.agents.FAULTS`); shrinks
    towards the first of ``faults``."""
    unknown = [f for f in faults if f not in FAULTS]
    if unknown or not faults:
        raise VoiceLatencyUsageError(f"backend faults must be among {FAULTS}, got {faults}")
    return st.sampled_from(list(faults))


def backend_calls(*, latency_ms: tuple[int, int] = (0, 1500),
                  faults: Sequence[BackendFault] = FAULTS,
                  timeout_ms: float | None = None) -> st.SearchStrategy[BackendCall]:
    """One request's :class:`~pytest_voicelatency.agents.BackendCall`: a whole-ms latency in
    ``latency_ms`` and a fault. With the tool's client ``timeout_ms``, half the latencies fall
    within 50 ms of it, where a commit lands just before or just after the caller gives up."""
    low, high = latency_ms
    if not 0 <= low <= high:
        raise VoiceLatencyUsageError(f"backend_calls latency_ms must be 0 <= low <= high, "
                                     f"got {latency_ms}")
    latency = st.integers(low, high)
    if timeout_ms is not None:
        if not 0 < timeout_ms < math.inf:
            raise VoiceLatencyUsageError(f"backend_calls timeout_ms must be a positive number "
                                         f"of ms (the tool's client timeout), got {timeout_ms!r}")
        near = (max(low, math.floor(timeout_ms) - 50), min(high, math.ceil(timeout_ms) + 50))
        if near[0] <= near[1]:  # the timeout's neighbourhood overlaps the range
            latency = latency | st.integers(*near)
    return st.builds(lambda ms, fault: BackendCall(float(ms), fault), latency,
                     backend_faults(faults))


def backend_profiles(*, requests: tuple[int, int] = (1, 3), latency_ms: tuple[int, int] = (0, 1500),
                     faults: Sequence[BackendFault] = FAULTS, timeout_ms: float | None = None,
                     then: BackendCall | None = None) -> st.SearchStrategy[BackendProfile]:
    """Backend scripts: the first ``requests`` (low, high) requests drawn by
    :func:`backend_calls`, then ``then`` (default: 50 ms, no fault) for every later one."""
    low, high = requests
    if not 0 <= low <= high:
        raise VoiceLatencyUsageError(f"backend_profiles requests must be 0 <= low <= high, "
                                     f"got {requests}")
    calls = backend_calls(latency_ms=latency_ms, faults=faults, timeout_ms=timeout_ms)
    return st.builds(lambda drawn: BackendProfile(tuple(drawn), then or BackendCall()),
                     st.lists(calls, min_size=low, max_size=high))


# ---------------------------------------------------------------------- whole calls

_UTTERANCES = ("confirm_order", "cancel_order", "book_table", "change_address", "open_tomorrow")


def call_scripts(*, turns: tuple[int, int] = (1, 2),
                 sounds: st.SearchStrategy[Interjection] | None = None,
                 moments: st.SearchStrategy[Moment] | None = None,
                 perturb: st.SearchStrategy[Perturbation] | None = None,
                 double: bool = True, reply_ms: float = 2400.0,
                 window_ms: float = 1500.0) -> st.SearchStrategy[list[Step]]:
    """Whole call scripts: ``turns`` user turns, each said and then answered, or talked over
    at a drawn moment with a drawn sound (twice in a row when ``double``), ending with one more
    turn that must be answered.

    Words are followed by ``answer()`` (the reply to the interruption); any other sound by a
    pause that lets the reply play out, since it should not have been interrupted. Each
    barge-in's ``stop_timeout_ms`` is ``window_ms``: the window in which the agent must stop for
    words and must not for anything else (keep it shorter than what remains of the reply).
    """
    sounds = sounds if sounds is not None else interjections()
    moments = moments if moments is not None else barge_in_moments(reply_ms=reply_ms)
    low, high = turns
    if not 1 <= low <= high:
        raise VoiceLatencyUsageError(f"call_scripts turns must be 1 <= low <= high, got {turns}")

    def spoken(draw: st.DrawFn, name: str) -> Clip | str:
        return name if perturb is None else draw(perturb).apply(name)

    @st.composite
    def scripts(draw: st.DrawFn) -> list[Step]:
        script: list[Step] = []
        for _ in range(draw(st.integers(low, high))):
            script.append(say(spoken(draw, draw(st.sampled_from(_UTTERANCES)))))
            if not draw(st.booleans()):
                script.append(answer())
                continue
            for _ in range(1 + (double and draw(st.booleans()))):
                sound, moment = draw(sounds), draw(moments)
                script.append(barge_in(spoken(draw, sound.clip), after_ms=moment.after_ms,
                                       at_state=moment.state, stop_timeout_ms=window_ms))
                if not sound.words:
                    script.append(pause(reply_ms + 500))
                    break
            else:
                script.append(answer())
        script += [say(spoken(draw, draw(st.sampled_from(_UTTERANCES)))), answer()]
        return script

    return scripts()


def assume_landed(metrics: CallMetrics) -> None:
    """Reject the example unless every barge-in it asked for landed on audible agent speech
    (a moment past the end of the reply, or before its first audio, measures nothing).

    A barge-in that landed but that the agent never reacted to (outcome ``not_interrupted``:
    its reply ran out by itself) is kept: the listener heard the agent for
    ``Measurement.heard_ms`` after the user began talking, which the property judges."""
    assume(not any(NOT_LANDED in note for note in metrics.notes))
