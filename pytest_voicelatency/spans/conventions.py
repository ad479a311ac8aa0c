"""Framework span conventions: read Pipecat, LiveKit Agents and OTel GenAI spans as voice stages.

Pure: this module reads span *names, scopes and attributes* (plain values handed over by
:mod:`pytest_voicelatency.spans.otel`); it imports no framework. A :class:`Conventions` value says
which conventions are on and holds any ini mappings; ``record_from_span(span, conventions)`` uses
it for every span that is not a native voice span (``audio.stage`` / ``audio.<stage>`` always win).

Built in (all on by default, each recognised automatically by instrumentation scope, or by the
span name together with a framework attribute when the scope is unknown):

* ``pipecat`` (Pipecat 1.x, scopes ``pipecat`` / ``pipecat.turn``): ``stt`` → ``asr``, ``llm``,
  ``tts`` with ``metrics.ttfb`` (seconds) → ``first_byte_ms``; ``tts.interrupted`` → metric
  ``cancelled`` (1.0, only when true); ``turn`` → ``turn`` with ``turn.user_bot_latency_seconds``
  → ``latency_ms`` and ``turn.was_interrupted`` → ``interrupted``. Session: the trace id, renamed
  to the ``conversation`` root's ``conversation.id`` when that root ends (the Pipecat adapter sets
  it to the caller's session id); turn: the ``turn`` span's id, which its children reach through
  their parent span id.
* ``livekit`` (LiveKit Agents 1.x, scope ``livekit-agents``): ``llm_node`` ``lk.response.ttft`` and
  ``tts_node`` ``lk.response.ttfb`` → ``first_byte_ms``; ``user_turn`` → ``asr`` with
  ``transcription_delay_ms`` and ``end_of_turn_delay_ms``; ``agent_turn`` → ``turn`` with
  ``lk.e2e_latency`` → ``latency_ms``, ``lk.interrupted`` → ``interrupted``; ``agent_speaking`` and
  ``user_speaking`` → the non-bar stages ``speaking.agent`` / ``speaking.user``, from which
  :mod:`~pytest_voicelatency.spans.samples` derives ``barge_in`` (it needs two spans). Session:
  ``gen_ai.conversation.id`` (the room sid), else the trace id.
* ``genai`` (OTel GenAI, any scope): a span with ``gen_ai.response.time_to_first_chunk``
  (seconds) → ``llm`` ``first_byte_ms``. Session ``gen_ai.conversation.id`` or the trace id.

Units become milliseconds. A missing first-byte attribute leaves ``first_byte_ms`` absent (the
stage keeps ``duration_ms``), never 0. Odd values (non-numeric, negative, NaN) are dropped with a
problem naming the span, the attribute and the convention; a scope version outside the tested
major gives a note, never an error.

The ini (``voice_latency_conventions``, a line list) selects conventions and adds mappings; see
:func:`conventions_from_ini`.

>>> c = conventions_from_ini(["pipecat", "synth -> stt.first_byte_ms=ttfb_s*1000"])
>>> c.names, c.custom[0].stage, c.custom[0].metrics[0].scale
(('pipecat',), 'asr', 1000.0)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_voicelatency.errors import VoiceLatencyUsageError

__all__ = ["MetricRule", "SpanRule", "Convention", "Conventions", "Reading", "UnreadSummary",
           "BUILTIN", "DEFAULT_CONVENTIONS", "NATIVE_ONLY", "STAGE_ALIASES", "INI_NAME",
           "conventions_from_ini", "unread_summary", "suggest_convention"]

INI_NAME = "voice_latency_conventions"
STAGE_ALIASES = {"stt": "asr"}
#: stages that are not bars (no gap samples around them); everything under these prefixes too
NON_BAR_STAGES = ("turn",)


@dataclass(frozen=True, slots=True)
class MetricRule:
    """One attribute read as one metric: ``value * scale`` (numbers); a true boolean is 1.0."""

    metric: str
    attribute: str
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class SpanRule:
    """How one span name becomes a stage.

    ``turn`` says where the span's turn id comes from: ``"parent"`` (its parent span's id: the
    children of one turn span join), ``"self"`` (its own id: a turn parent, which its children
    then join) or ``"none"`` (joins no turn; no gaps). ``signature``: attributes of which at
    least one must be present when the scope does not identify the framework.
    """

    span_name: str
    stage: str
    metrics: tuple[MetricRule, ...] = ()
    bar: bool = True
    turn: str = "parent"
    signature: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Convention:
    """A framework's span names, what identifies them, and where its session id lives."""

    name: str
    scopes: tuple[str, ...]
    rules: tuple[SpanRule, ...]
    session_attributes: tuple[str, ...] = ()
    tested_major: str = ""
    #: attribute -> rule for span names the convention does not know (GenAI: any span name)
    attribute_rules: tuple[tuple[str, SpanRule], ...] = ()
    #: span names the convention knows but deliberately reads as no stage (e.g. ``conversation``)
    known_names: tuple[str, ...] = ()
    #: ``(span name, attribute)`` of a trace's root span whose attribute names the session of the
    #: whole trace (Pipecat: ``conversation`` / ``conversation.id``, which the adapter sets to the
    #: caller's session id). Its children carry no session attribute, so they are read under the
    #: trace id first and renamed when the root ends (it ends last).
    session_roots: tuple[tuple[str, str], ...] = ()

    def owns_scope(self, scope: str) -> bool:
        return any(scope == s or scope.startswith(s + ".") for s in self.scopes)


_S = 1000.0  # seconds -> milliseconds

PIPECAT = Convention(
    "pipecat", ("pipecat",),
    (
        SpanRule("stt", "asr", (MetricRule("first_byte_ms", "metrics.ttfb", _S),),
                 signature=("metrics.ttfb", "gen_ai.operation.name", "transcript")),
        SpanRule("llm", "llm", (MetricRule("first_byte_ms", "metrics.ttfb", _S),),
                 signature=("metrics.ttfb", "gen_ai.operation.name")),
        SpanRule("tts", "tts", (MetricRule("first_byte_ms", "metrics.ttfb", _S),
                                MetricRule("cancelled", "tts.interrupted")),
                 signature=("metrics.ttfb", "gen_ai.operation.name", "tts.interrupted")),
        SpanRule("turn", "turn", (MetricRule("latency_ms", "turn.user_bot_latency_seconds", _S),
                                  MetricRule("interrupted", "turn.was_interrupted")),
                 bar=False, turn="self", signature=("turn.number",)),
    ),
    tested_major="1", known_names=("conversation",),
    session_roots=(("conversation", "conversation.id"),),
)

LIVEKIT = Convention(
    "livekit", ("livekit-agents", "livekit"),
    (
        SpanRule("llm_node", "llm", (MetricRule("first_byte_ms", "lk.response.ttft", _S),),
                 signature=("lk.response.ttft",)),
        SpanRule("tts_node", "tts", (MetricRule("first_byte_ms", "lk.response.ttfb", _S),),
                 signature=("lk.response.ttfb", "lk.tts.streaming")),
        SpanRule("user_turn", "asr",
                 (MetricRule("transcription_delay_ms", "lk.transcription_delay", _S),
                  MetricRule("end_of_turn_delay_ms", "lk.end_of_turn_delay", _S)),
                 turn="self", signature=("lk.transcription_delay", "lk.end_of_turn_delay")),
        SpanRule("agent_turn", "turn", (MetricRule("latency_ms", "lk.e2e_latency", _S),
                                        MetricRule("interrupted", "lk.interrupted")),
                 bar=False, turn="self", signature=("lk.e2e_latency", "lk.generation_id")),
        SpanRule("agent_speaking", "speaking.agent", bar=False, turn="none"),
        SpanRule("user_speaking", "speaking.user", bar=False, turn="none"),
    ),
    session_attributes=("gen_ai.conversation.id",), tested_major="1",
    known_names=("agent_session",),
)

GENAI_TTFC = "gen_ai.response.time_to_first_chunk"
GENAI = Convention(
    "genai", (), (),
    session_attributes=("gen_ai.conversation.id",),
    attribute_rules=((GENAI_TTFC,
                      SpanRule("*", "llm", (MetricRule("first_byte_ms", GENAI_TTFC, _S),))),),
)

#: the built-in conventions by name, in the order they are tried
BUILTIN: dict[str, Convention] = {c.name: c for c in (PIPECAT, LIVEKIT, GENAI)}


@dataclass(frozen=True, slots=True)
class Reading:
    """What a convention made of one span: its stage, metrics, identity and notes."""

    stage: str
    metrics: tuple[tuple[str, float], ...]
    session_id: str
    turn_id: str
    bar: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conventions:
    """Which framework conventions are on, plus ini mappings (``custom``, tried first).

    Native voice spans are always read; they are not a convention that can be turned off.
    """

    names: tuple[str, ...] = tuple(BUILTIN)
    custom: tuple[SpanRule, ...] = ()
    _by_name: dict[str, list[tuple[Convention | None, SpanRule]]] = field(
        init=False, repr=False, compare=False, hash=False)
    _by_attribute: tuple[tuple[str, Convention, SpanRule], ...] = field(
        init=False, repr=False, compare=False, hash=False)
    #: span name -> (convention, attribute) of the trace roots that name their trace's session
    _roots: dict[str, tuple[tuple[Convention, str], ...]] = field(
        init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        by_name: dict[str, list[tuple[Convention | None, SpanRule]]] = {}
        for rule in self.custom:
            by_name.setdefault(rule.span_name, []).append((None, rule))
        by_attribute: list[tuple[str, Convention, SpanRule]] = []
        for name in self.names:
            convention = BUILTIN[name]
            for rule in convention.rules:
                by_name.setdefault(rule.span_name, []).append((convention, rule))
            by_attribute.extend((a, convention, r) for a, r in convention.attribute_rules)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_attribute", tuple(by_attribute))
        roots: dict[str, list[tuple[Convention, str]]] = {}
        for name in self.names:
            for root, attribute in BUILTIN[name].session_roots:
                roots.setdefault(root, []).append((BUILTIN[name], attribute))
        object.__setattr__(self, "_roots", {k: tuple(v) for k, v in roots.items()})

    def may_name_session(self, name: str) -> bool:
        """Whether a span called ``name`` can be a trace root naming its session (cheap: asked
        of every span no convention read, before its attributes are looked at)."""
        return name in self._roots

    def read(self, name: str, scope: str, scope_version: str | None, attributes: Mapping[str, Any],
             trace_id: int, span_id: int, parent_id: int) -> Reading | None:
        """The voice reading of a non-native span, or ``None`` when no convention reads it."""
        candidates = self._by_name.get(name)
        if candidates:
            for convention, rule in candidates:
                if convention is None or convention.owns_scope(scope) or any(
                        a in attributes for a in rule.signature):
                    return _apply(convention, rule, name, scope_version, attributes, trace_id,
                                  span_id, parent_id)
        for attribute, convention, rule in self._by_attribute:
            if attribute in attributes:
                return _apply(convention, rule, name, scope_version, attributes, trace_id,
                              span_id, parent_id)
        return None

    def trace_session(self, name: str, scope: str, attributes: Mapping[str, Any]) -> str | None:
        """The session a trace root names for its whole trace (see ``Convention.session_roots``),
        or ``None`` when this span is no such root."""
        for convention, attribute in self._roots.get(name, ()):
            value = attributes.get(attribute) if convention.owns_scope(scope) else None
            if isinstance(value, str) and value:
                return value
        return None


#: every built-in convention on (the default), and none (native spans only)
DEFAULT_CONVENTIONS = Conventions()
NATIVE_ONLY = Conventions(names=())


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x") if value else ""


def _apply(convention: Convention | None, rule: SpanRule, name: str, scope_version: str | None,
           attributes: Mapping[str, Any], trace_id: int, span_id: int,
           parent_id: int) -> Reading:
    who = convention.name if convention is not None else f"{INI_NAME} mapping"
    problems: list[str] = []
    metrics: list[tuple[str, float]] = []
    for m in rule.metrics:
        value = attributes.get(m.attribute)
        if value is None:
            continue
        if isinstance(value, bool):
            if value:
                metrics.append((m.metric, 1.0))
            continue
        if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
            metrics.append((m.metric, float(value) * m.scale))
        else:
            problems.append(f"span {name!r} ({who} convention): attribute {m.attribute} is "
                            f"{type(value).__name__} {value!r}, not a non-negative number; "
                            f"{m.metric} dropped")
    if convention is not None and convention.tested_major and scope_version and \
            not scope_version.split(".")[0] == convention.tested_major:
        problems.append(f"span {name!r}: instrumentation scope version {scope_version} is not "
                        f"{convention.name} {convention.tested_major}.x, which the "
                        f"{convention.name!r} convention was written for; read anyway (check "
                        f"the numbers, or map the spans in {INI_NAME})")
    session = ""
    if convention is not None:
        for key in convention.session_attributes:
            value = attributes.get(key)
            if isinstance(value, str) and value:
                session = value
                break
    session = session or _hex(trace_id, 32)
    if rule.turn == "self":
        turn = _hex(span_id, 16)
    elif rule.turn == "parent":
        turn = _hex(parent_id, 16)
    else:
        turn = ""
    return Reading(rule.stage, tuple(metrics), session, turn, rule.bar, tuple(problems))


# -- the ini ------------------------------------------------------------------------------------

_METRIC = re.compile(r"^(?P<metric>[A-Za-z_][\w]*)=(?P<attr>[^*\s]+)(?:\*(?P<scale>[0-9.eE+-]+))?$")
_STAGE = re.compile(r"^[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*$")


def _usage(line: str, why: str) -> VoiceLatencyUsageError:
    return VoiceLatencyUsageError(
        f"{INI_NAME} line {line!r}: {why}. Each line is a built-in convention "
        f"({', '.join(BUILTIN)}, native or auto) or a mapping 'span_name -> stage "
        f"[metric=attribute[*scale]] ...', e.g. 'synth -> tts.first_byte_ms=ttfb_s*1000'")


def _metric_rule(token: str, line: str) -> MetricRule:
    match = _METRIC.match(token)
    if match is None:
        raise _usage(line, f"{token!r} is not metric=attribute[*scale]")
    try:
        scale = float(match["scale"]) if match["scale"] else 1.0
    except ValueError:
        raise _usage(line, f"scale {match['scale']!r} is not a number") from None
    if not (math.isfinite(scale) and scale > 0):
        raise _usage(line, f"scale {match['scale']!r} must be a positive number")
    return MetricRule(match["metric"], match["attr"], scale)


def _mapping(line: str) -> SpanRule:
    span_name, _, target = (part.strip() for part in line.partition("->"))
    tokens = target.split()
    if not span_name or not tokens:
        raise _usage(line, "a mapping needs a span name and a stage on both sides of '->'")
    first, rest = tokens[0], tokens[1:]
    metrics: list[MetricRule] = []
    if "=" in first:
        head, _, tail = first.partition("=")
        stage, dot, metric = head.rpartition(".")
        if not dot or not stage:
            raise _usage(line, f"{first!r} needs the form stage.metric=attribute[*scale]")
        metrics.append(_metric_rule(f"{metric}={tail}", line))
    else:
        stage = first
    if not _STAGE.match(stage):
        raise _usage(line, f"{stage!r} is not a stage name")
    if stage.rpartition(".")[2].endswith("_ms"):
        raise _usage(line, f"{stage!r} is not a stage name (a metric needs =attribute[*scale])")
    stage = STAGE_ALIASES.get(stage, stage)
    metrics.extend(_metric_rule(token, line) for token in rest)
    bar = stage != "turn" and not stage.startswith(("gap.", "caller.", "handoff.", "speaking."))
    return SpanRule(span_name, stage, tuple(metrics), bar=bar,
                    turn="self" if stage == "turn" else "parent")


def conventions_from_ini(lines: Iterable[str] | str | None) -> Conventions:
    """Parse the ``voice_latency_conventions`` ini lines into a :class:`Conventions`.

    * empty (the default) or ``auto``: every built-in convention, detected automatically;
    * ``pipecat``, ``livekit``, ``genai``: only the conventions named (plus any mappings);
      ``native`` alone: native spans only (they are always read);
    * ``span_name -> stage [metric=attribute[*scale]] ...`` (the first metric may be joined to
      the stage: ``stage.metric=attribute*scale``): a mapping, tried before the built-ins.
      ``stt`` means ``asr``. A boolean attribute gives 1.0 when true and nothing when false.

    Blank lines and ``#`` comments are skipped. A malformed line raises
    :class:`~pytest_voicelatency.errors.VoiceLatencyUsageError` naming the line and the form.
    """
    if lines is None:
        return DEFAULT_CONVENTIONS
    if isinstance(lines, str):
        lines = lines.splitlines()
    names: list[str] = []
    custom: list[SpanRule] = []
    auto = explicit = False
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "->" in line:
            custom.append(_mapping(line))
        elif line == "auto":
            auto = True
        elif line == "native":
            explicit = True
        elif line in BUILTIN:
            explicit = True
            if line not in names:
                names.append(line)
        else:
            raise _usage(line, f"{line!r} is not a known convention")
    if auto or not explicit:
        names = list(BUILTIN)
    return Conventions(tuple(names), tuple(custom))


# -- what was not read ----------------------------------------------------------------------------

def suggest_convention(name: str, scope: str) -> str | None:
    """The built-in convention that reads spans like this one (by scope, then by name), or None."""
    for convention in BUILTIN.values():
        if scope and convention.owns_scope(scope):
            return convention.name
    for convention in BUILTIN.values():
        if any(rule.span_name == name for rule in convention.rules) and not scope:
            return convention.name
    return None


@dataclass(frozen=True)
class UnreadSummary:
    """Spans a capture saw but read as no voice stage: how many, which, and who would read them.

    ``spans``: ``(name, scope, count)`` most frequent first (at most the table's cap of
    distinct pairs); ``readers``: convention name → span names it would read.
    """

    total: int
    spans: tuple[tuple[str, str, int], ...]
    readers: dict[str, tuple[str, ...]]

    def sentence(self, limit: int = 8) -> str:
        """One line for the terminal and the report."""
        names = list(dict.fromkeys(name for name, _, _ in self.spans))
        scopes = list(dict.fromkeys(scope or "no scope" for _, scope, _ in self.spans))
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        shown = ", ".join(names[:limit]) + more
        head = (f"{self.total} span{'s' if self.total != 1 else ''} seen but none read as voice "
                f"stages: {shown} (scope {', '.join(scopes[:4])})")
        if self.readers:
            which = sorted(self.readers)
            quoted = " and ".join(f"the {n!r} convention" for n in which)
            return (f"{head} — {quoted} read{'s' if len(which) == 1 else ''} them "
                    f"({INI_NAME} = {' '.join(which)})")
        example = names[0] if names else "my_span"
        return (f"{head} — no built-in convention reads them: map them in the ini "
                f"({INI_NAME} = {example} -> llm.first_byte_ms=<attribute>*1000) or set "
                f"audio.stage on them (docs/conventions.md)")


def unread_sentence(kept: int, unread: Mapping[tuple[str, str], int], total: int) -> str | None:
    """The line to print when ``total`` spans were seen but none of them (``kept == 0``) was read
    as a voice stage; None otherwise. Takes :meth:`SpanTable.unread_snapshot`'s three values."""
    if kept or not total:
        return None
    summary = unread_summary(unread, total)
    return summary.sentence() if summary is not None else None


def unread_summary(unread: Mapping[tuple[str, str], int],
                   total: int | None = None) -> UnreadSummary | None:
    """Summarise a table's unread ``(name, scope) -> count`` map; None when nothing was unread."""
    if not unread:
        return None
    spans = tuple(sorted(((n, s, c) for (n, s), c in unread.items()), key=lambda x: (-x[2], x[0])))
    readers: dict[str, list[str]] = {}
    for name, scope, _ in spans:
        suggestion = suggest_convention(name, scope)
        if suggestion is not None:
            readers.setdefault(suggestion, []).append(name)
    return UnreadSummary(total if total is not None else sum(unread.values()), spans,
                         {k: tuple(dict.fromkeys(v)) for k, v in readers.items()})
