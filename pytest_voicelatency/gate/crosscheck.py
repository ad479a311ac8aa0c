"""The "spans lie" check: does the agent's own account agree with what the caller heard?

Why: the seed's barge-in incident looked fine in the agent's spans (generation cancelled fast)
while the user heard ~500 ms of audio already shipped to the client. When both an agent stage
(white-box, e.g. ``barge_in`` ``silence_ms``) and a caller stage (black-box, e.g.
``caller.barge_in`` ``latency_ms``) measured the same moment, this module pairs them per turn and
finds every pair where the caller heard the agent *longer* than the agent claims, by more than
``margin_ms``; the report warns when such pairs are more than 5 % of the paired turns. (The
other direction — the listener heard silence sooner, say because the agent happened to pause —
hurts no one and is not reported.)

Pairs are matched within one test and session by time, not by turn id, because an agent counts
turns its own way (a VAD may split "wait, ... stop" in two). How depends on what the agent's span
covers (:attr:`Check.pairing`):

* ``"starts_in"`` (a barge-in span starts once the user cut in): an agent span pairs with the
  caller span whose measured window it starts in (from ``slack_ms`` before its start to its end);
* ``"covers"`` (a whole-turn span such as Pipecat's ``turn`` or LiveKit's ``agent_turn`` starts
  when the user starts speaking, long before the caller's response window, which runs from the
  end of the user's speech to the first audio heard): an agent span pairs with the caller span
  whose *end* — the instant the caller heard the reply — it covers (within ``slack_ms``), the
  largest overlap winning when two do.

Each agent span pairs at most once. Pure: it reads a
:class:`~pytest_voicelatency.spans.rows.SpanTable` and returns plain data.

>>> from pytest_voicelatency.spans.record import SpanRecord
>>> from pytest_voicelatency.spans.rows import SpanTable
>>> t = SpanTable()
>>> t.add(SpanRecord("audio.barge_in", "barge_in", "s", "3", 0, 30_000_000, 40_000_000,
...                  (("silence_ms", 45.0),), True), "test")
>>> t.add(SpanRecord("caller.barge_in", "caller.barge_in", "s", "3", 0, 0, 600_000_000,
...                  (("latency_ms", 600.0),), False), "test")
>>> print(spans_lie(t)[0])  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
spans lie: barge_in silence_ms (agent) is more than 50 ms below caller.barge_in latency_ms
(heard) in 1 of 1 paired turns; worst: agent 45.0 ms, caller heard 600.0 ms (test test,
session s, turn 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pytest_voicelatency.spans.record import CENSORED, MISSED
from pytest_voicelatency.spans.rows import SpanTable

__all__ = ["Check", "Disagreement", "DEFAULT_CHECKS", "RESPONSE_CHECK", "disagreements",
           "spans_lie"]


@dataclass(frozen=True, slots=True)
class Check:
    """An agent stage/metric and the caller stage/metric that measure the same thing, and how
    their spans are paired in time (see the module docstring)."""

    agent_stage: str = "barge_in"
    agent_metric: str = "silence_ms"
    caller_stage: str = "caller.barge_in"
    caller_metric: str = "latency_ms"
    pairing: Literal["starts_in", "covers"] = "starts_in"


DEFAULT_CHECKS: tuple[Check, ...] = (Check(),)
#: A whole-turn span's own response latency (Pipecat ``turn.user_bot_latency_seconds``, LiveKit
#: ``lk.e2e_latency``, both read as ``turn`` ``latency_ms``) against what the caller heard.
RESPONSE_CHECK = Check("turn", "latency_ms", "caller.response", "latency_ms", "covers")

_Row = tuple[int, int, float, int, int]  # start_ns, end_ns, value, flags, row


def _partner(check: Check, start: int, end: int, claims: list[_Row], slack: int) -> _Row | None:
    """The agent span (of ``claims``) that measured the caller window ``start..end``."""
    if check.pairing == "starts_in":
        return next((a for a in claims if start - slack <= a[0] <= end), None)
    covering = [a for a in claims if a[0] - slack <= end <= a[1] + slack]
    return max(covering, key=lambda a: (min(end, a[1]) - max(start, a[0]), -a[0]), default=None)


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One turn where the caller heard more than the agent's own span says."""

    check: Check
    test: str
    session_id: str
    turn_id: str
    agent_ms: float
    caller_ms: float
    caller_outcome: str = "ok"

    @property
    def excess_ms(self) -> float:
        return self.caller_ms - self.agent_ms

    def caller_text(self) -> str:
        if self.caller_outcome == "missed":
            return f"missed (still audible after {self.caller_ms:.1f} ms)"
        if self.caller_outcome == "censored":
            return f">= {self.caller_ms:.1f} ms (censored)"
        return f"{self.caller_ms:.1f} ms"


def _rows(table: SpanTable, stage: str,
          metric: str) -> dict[tuple[int, int], list[_Row]]:
    """(test, session) -> [(start, end, value, flags, row)] for one stage's metric."""
    c, s = table.columns, table.strings
    ids = {text: i for i, text in enumerate(s)}
    stage_id, metric_id = ids.get(stage), ids.get(metric)
    if stage_id is None or metric_id is None:
        return {}
    values = {row: value for row, name, value in zip(c["m_row"], c["m_name"], c["m_value"])
              if name == metric_id and c["stage"][row] == stage_id}
    out: dict[tuple[int, int], list[_Row]] = {}
    for row, value in values.items():
        key = (c["test"][row], c["session"][row])
        out.setdefault(key, []).append((c["start_ns"][row], c["end_ns"][row], value,
                                        c["flags"][row], row))
    for items in out.values():
        items.sort()
    return out


def disagreements(table: SpanTable, *, margin_ms: float = 50.0,
                  checks: Sequence[Check] = DEFAULT_CHECKS, slack_ms: float = 50.0,
                  ) -> tuple[list[Disagreement], dict[Check, int]]:
    """Every disagreement beyond ``margin_ms``, and how many turns each check could pair."""
    found: list[Disagreement] = []
    paired: dict[Check, int] = {}
    slack = round(slack_ms * 1e6)
    with table.frozen():
        for check in checks:
            agents = _rows(table, check.agent_stage, check.agent_metric)
            callers = _rows(table, check.caller_stage, check.caller_metric)
            paired[check] = 0
            for key, heard in callers.items():
                claims = list(agents.get(key, ()))
                for start, end, caller_ms, flags, row in heard:
                    match = _partner(check, start, end, claims, slack)
                    if match is None:
                        continue
                    claims.remove(match)
                    paired[check] += 1
                    if caller_ms - match[2] <= margin_ms:
                        continue
                    outcome = ("missed" if flags & MISSED
                               else "censored" if flags & CENSORED else "ok")
                    found.append(Disagreement(check, table.strings[key[0]], table.strings[key[1]],
                                              table.strings[table.columns["turn"][row]],
                                              match[2], caller_ms, outcome))
    return found, paired


def spans_lie(table: SpanTable, *, margin_ms: float = 50.0,
              checks: Sequence[Check] = DEFAULT_CHECKS, slack_ms: float = 50.0,
              min_fraction: float = 0.05) -> list[str]:
    """Warning lines for the run-wide report: one per check whose disagreements matter.

    A check warns when more than ``min_fraction`` of its paired turns disagree — by default
    more than 5 %, enough to move the p95 a gate reads. One turn in twenty delayed by a CPU
    burst is noise; a flush that never happens shows up in nearly every barge-in.
    """
    found, paired = disagreements(table, margin_ms=margin_ms, checks=checks, slack_ms=slack_ms)
    lines = []
    for check in checks:
        mine = [d for d in found if d.check == check]
        if not mine or len(mine) <= min_fraction * paired[check]:
            continue
        worst = max(mine, key=lambda d: d.excess_ms)
        lines.append(
            f"spans lie: {check.agent_stage} {check.agent_metric} (agent) is more than "
            f"{margin_ms:g} ms below {check.caller_stage} {check.caller_metric} (heard) in "
            f"{len(mine)} of {paired[check]} paired turns; worst: agent {worst.agent_ms:.1f} ms, "
            f"caller heard {worst.caller_text()} (test {worst.test}, session {worst.session_id}, "
            f"turn {worst.turn_id})")
    return lines
