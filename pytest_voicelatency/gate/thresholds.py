"""Parse the CI gate lines of the ``voice_latency_thresholds`` ini option. Pure.

Grammar, one gate per line (k6-like)::

    <stages>[.<metric>]: p<percentile> <op> <milliseconds>[ms]

* ``<stages>`` is a stage name or a glob over stage names (``*``, ``?``, ``[...]``):
  ``barge_in``, ``handoff.vad_to_asr``, ``gap.*``.
* ``.<metric>`` is optional. Stage names contain dots themselves (``caller.response``,
  ``gap.asr_to_llm``), so the rule is: **the last dotted part names a metric when it ends in
  ``_ms``** (``llm.first_byte_ms``, ``caller.response.duration_ms``); otherwise the whole text is
  the stage and the stage's default metric is used (see
  :func:`pytest_voicelatency.spans.samples.default_metric`). Count metrics (``underruns``,
  ``clears``, ``frames``) do not end in ``_ms`` and so cannot be gated by a threshold line yet; a
  gate that tries (or forgets the ``_ms``) matches no stage and is *missing*, with a hint from
  :func:`selector_hint`.
* ``p<percentile>``: ``p50``, ``p95``, ``p99``, ``p99.9``: strictly between 0 and 100.
* ``<op>``: ``<`` (strictly below) or ``<=`` (at most).
* Blank lines and lines starting with ``#`` are ignored.

A malformed line raises :class:`~pytest_voicelatency.errors.VoiceLatencyUsageError` quoting the
line and this grammar; the plugin turns it into a pytest usage error at configure time.

>>> t = parse_threshold("llm.first_byte_ms: p99 <= 900")
>>> (t.pattern, t.metric, t.q, str(t.limit))
('llm', 'first_byte_ms', 0.99, '<= 900')
>>> parse_threshold("caller.response: p50 < 700ms").metric is None
True
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.stats.levels import is_fraction, quantile_label
from pytest_voicelatency.stats.limit import Limit

__all__ = ["Threshold", "parse_threshold", "parse_thresholds", "GRAMMAR", "split_selector",
           "selector_hint"]

GRAMMAR = ("one gate per line: '<stage or glob>[.<metric>_ms]: p<percentile> <|<= <ms>', e.g.\n"
           "    barge_in: p95 < 200\n"
           "    llm.first_byte_ms: p99 <= 900\n"
           "    gap.*: p95 < 100\n"
           "the last dotted part is a metric only when it ends in _ms; percentiles lie strictly "
           "between 0 and 100 (p50, p95, p99, p99.9); limits are positive milliseconds")

_LINE = re.compile(r"^(?P<selector>[^:]+?)\s*:\s*(?P<rest>.*)$")
_RULE = re.compile(r"^[pP](?P<pct>\d+(?:\.\d+)?)\s*(?P<op><=|<)\s*(?P<limit>[^\s]+?)\s*(?:ms)?$")
_SELECTOR = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")


@dataclass(frozen=True, slots=True)
class Threshold:
    """One parsed gate line: a stage glob, an optional metric, a quantile and a limit."""

    line: str
    pattern: str
    metric: str | None
    q: float
    limit: Limit

    @property
    def label(self) -> str:
        """Short form for tables: ``p95 < 200``."""
        return f"{quantile_label(self.q)} {self.limit}"

    @property
    def is_glob(self) -> bool:
        return any(c in self.pattern for c in "*?[")


def split_selector(selector: str) -> tuple[str, str | None]:
    """Split ``stage[.metric]`` by the rule in the module docstring."""
    head, dot, last = selector.rpartition(".")
    if dot and head and last.endswith("_ms") and not any(c in last for c in "*?["):
        return head, last
    return selector, None


_RULE_TEXT = "a metric is selected only when the last dotted part ends in _ms"


def selector_hint(selector: str, metrics_by_stage: Mapping[str, Sequence[str]]) -> str:
    """Why ``selector``, which matched no stage, may have meant a metric of a known stage.

    Only when the part before the last dot is a known stage; otherwise ``""``.

    >>> print(selector_hint("asr.first_byte", {"asr": ["first_byte_ms"]}))
    did you mean stage 'asr' with metric 'first_byte_ms'? a metric is selected only when the last
    dotted part ends in _ms
    """
    stage, dot, last = selector.rpartition(".")
    metrics = metrics_by_stage.get(stage) if dot and stage else None
    if metrics is None:
        return ""
    if any(c in last for c in "*?["):
        return (f"stage {stage!r} exists, but a metric cannot be a glob: name one of its metrics "
                f"({', '.join(metrics)}); {_RULE_TEXT}")
    if f"{last}_ms" in metrics:
        return f"did you mean stage {stage!r} with metric {last + '_ms'!r}? {_RULE_TEXT}"
    if last in metrics:
        return (f"metric {last!r} of stage {stage!r} is a count, not milliseconds: counts "
                f"cannot be gated by a threshold line yet ({_RULE_TEXT}); assert on them in a "
                "test instead")
    return (f"stage {stage!r} has no metric {last!r} or {last + '_ms'!r} (it has "
            f"{', '.join(metrics)}); {_RULE_TEXT}")


def _bad(line: str, why: str) -> VoiceLatencyUsageError:
    return VoiceLatencyUsageError(
        f"voice_latency_thresholds: cannot read line {line.strip()!r}: {why}.\n{GRAMMAR}")


def parse_threshold(line: str) -> Threshold:
    """Parse one gate line (see the grammar in the module docstring)."""
    text = line.strip()
    match = _LINE.match(text)
    if match is None:
        raise _bad(line, "expected '<stage>: p<percentile> <op> <ms>' with a colon after the stage")
    selector, rest = match["selector"].strip(), match["rest"].strip()
    if not _SELECTOR.match(selector):
        raise _bad(line, f"stage {selector!r} may contain only letters, digits, '_', '.', '-' "
                         "and the glob characters * ? [ ]")
    rule = _RULE.match(rest)
    if rule is None:
        if re.match(r"^[pP]\d", rest) and re.search(r"(>=|>|==|=)", rest):
            why = (f"operator in {rest!r} is not supported: a latency gate is an upper limit, "
                   "use < or <=")
        else:
            why = f"expected 'p<percentile> <op> <ms>' after the colon, got {rest!r}"
        raise _bad(line, why)
    q = float(rule["pct"]) / 100
    if not is_fraction(q):
        raise _bad(line, f"unknown quantile p{rule['pct']}: the percentile must lie strictly "
                         "between 0 and 100 (p50, p95, p99, p99.9)")
    try:
        limit = float(rule["limit"])
    except ValueError:
        raise _bad(line, f"limit {rule['limit']!r} is not a number of milliseconds") from None
    if not math.isfinite(limit) or limit <= 0:
        raise _bad(line, f"limit {rule['limit']!r} must be a positive, finite number of "
                         "milliseconds")
    pattern, metric = split_selector(selector)
    return Threshold(text, pattern, metric, q,
                     Limit("<=" if rule["op"] == "<=" else "<", limit))


def parse_thresholds(lines: Iterable[str]) -> list[Threshold]:
    """Parse every non-blank, non-comment line; the first bad line raises."""
    return [parse_threshold(line) for line in lines
            if line.strip() and not line.strip().startswith("#")]
