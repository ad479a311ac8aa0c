"""The gate configuration of a run, parsed once at configure time from ini values and options.

Every bad value raises :class:`~pytest_voicelatency.errors.VoiceLatencyUsageError` naming the
ini key (or the threshold line) and what it accepts; the plugin turns it into a pytest usage
error before any test runs.

>>> s = build(thresholds=["asr: p95 < 150"], confidence="0.95")
>>> s.thresholds[0].label, s.policy.confidence, s.compare_policy.confidence
('p95 < 150', 0.95, 0.99)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from typing import Any

from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.files import same_file
from pytest_voicelatency.gate.policy import (
    ComparePolicy,
    GatePolicy,
    parse_body,
    policy_from_strings,
)
from pytest_voicelatency.gate.thresholds import Threshold, parse_thresholds
from pytest_voicelatency.stats.levels import parse_fraction

__all__ = ["Settings", "build"]


@dataclass(frozen=True)
class Settings:
    """The run's gate configuration and output paths, parsed at configure time."""

    thresholds: tuple[Threshold, ...] = ()
    policy: GatePolicy = GatePolicy()
    compare_policy: ComparePolicy = ComparePolicy()
    json_path: str | None = None
    save_path: str | None = None
    compare_path: str | None = None
    markdown_path: str | None = None
    html_path: str | None = None  # the self-contained HTML report
    html_turns: int = 10  # worst turns drawn as waterfalls per stage with a verdict
    step_summary: str | None = None  # $GITHUB_STEP_SUMMARY
    root: str | None = None  # where to ask git for the commit
    judge: bool = True  # False for --collect-only: nothing ran, nothing to gate
    spans_lie_margin_ms: float = 50.0  # agent span vs what the caller heard (crosscheck.py)
    save_partial: bool = False  # an incomplete run may replace an existing baseline, marked
    allow_partial: bool = False  # a baseline marked partial may be compared with

    def has_work(self, table: Sized | None) -> bool:
        """Whether the end of the run has anything to judge, compare or write.

        With no voice spans, no thresholds and no outputs there is nothing to do, and the
        run skips loading numpy and the statistics just to print "no voice spans".
        """
        return bool((table is not None and len(table)) or self.thresholds
                    or self.needs_environment or self.markdown_path or self.step_summary
                    or self.html_path)

    @property
    def needs_environment(self) -> bool:
        return bool(self.json_path or self.save_path or self.compare_path)

    def record(self) -> dict[str, Any]:
        """The settings as stored in results files (merges refuse shards that differ)."""
        p, c = self.policy, self.compare_policy
        return {"thresholds": [t.line for t in self.thresholds], "confidence": p.confidence,
                "inconclusive": p.inconclusive, "missing": p.missing, "unreliable": p.unreliable,
                "compare": {"confidence": c.confidence, "quantile": c.q,
                            "min_relative": c.min_relative, "min_ms": c.min_ms,
                            "body": list(c.body), "tail_share": c.tail_share}}


def _fraction(key: str, text: str, default: str) -> float:
    value = parse_fraction(text)
    if value is None:
        raise VoiceLatencyUsageError(
            f"{key} = {text!r}: give a number strictly between 0 and 1 (default {default})")
    return value


def _number(key: str, text: str, low: float, high: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low < value < high:
        raise VoiceLatencyUsageError(f"{key} = {text!r}: give {what}")
    return value


def build(*, thresholds: Sequence[str] = (), confidence: str = "", inconclusive: str = "warn",
          missing: str = "fail", unreliable: str = "warn", compare_confidence: str = "0.99",
          compare_body: str = "p50 p75 p90",
          min_effect_pct: str = "10", min_effect_ms: str = "10", json_path: str | None = None,
          save_path: str | None = None, compare_path: str | None = None,
          markdown_path: str | None = None, step_summary: str | None = None,
          root: str | None = None, judge: bool = True,
          spans_lie_margin_ms: str = "50", save_partial: bool = False,
          allow_partial: bool = False, html_path: str | None = None,
          html_turns: str = "10") -> Settings:
    """Parse raw ini strings and option values into :class:`Settings`.

    Saving and comparing on one file is refused: the compare would read the file the save is
    about to replace, and a slow run would become the next run's baseline.
    """
    if save_path and compare_path and same_file(save_path, compare_path):
        raise VoiceLatencyUsageError(
            f"--voice-latency-save {save_path!r} and --voice-latency-compare {compare_path!r} "
            "are the same file: a slow run would replace the baseline it is compared with; "
            "save to another path (e.g. the job's artifact) and refresh the baseline on the "
            "default branch (docs/ci.md)")
    policy = policy_from_strings(confidence, inconclusive, missing, unreliable)
    compare_policy = ComparePolicy(
        confidence=_fraction("voice_latency_compare_confidence", compare_confidence, "0.99"),
        min_relative=_number("voice_latency_min_effect_pct", min_effect_pct, -1e-12, 1e6,
                             "a percentage >= 0 (default 10)") / 100,
        min_ms=_number("voice_latency_min_effect_ms", min_effect_ms, -1e-12, 1e9,
                       "milliseconds >= 0 (default 10)"),
        inconclusive=policy.inconclusive, body=parse_body(compare_body))
    margin = _number("voice_latency_spans_lie_margin_ms", spans_lie_margin_ms, 0, 1e9,
                     "milliseconds > 0 (default 50)")
    turns = _number("voice_latency_html_turns", html_turns, -1, 1001,
                    "a whole number of turns from 0 to 1000 (default 10)")
    if turns != int(turns):
        raise VoiceLatencyUsageError(
            f"voice_latency_html_turns = {html_turns!r}: give a whole number of turns "
            "from 0 to 1000 (default 10)")
    return Settings(tuple(parse_thresholds(thresholds)), policy, compare_policy,
                    json_path=json_path or None, save_path=save_path or None,
                    compare_path=compare_path or None, markdown_path=markdown_path or None,
                    html_path=html_path or None, html_turns=int(turns),
                    step_summary=step_summary or None, root=root, judge=judge,
                    spans_lie_margin_ms=margin, save_partial=bool(save_partial),
                    allow_partial=bool(allow_partial))


def _inside(path: str, folder: str) -> bool:
    try:
        real, root = os.path.realpath(path), os.path.realpath(folder)
        return os.path.commonpath([real, root]) == root
    except (OSError, ValueError):
        return False


def misread_path_options(args: Sequence[str], options: Sequence[str], *, invocation_dir: str,
                         rootdir: str) -> str | None:
    """Why the command line may have misled pytest's ini search, or None.

    pytest finds its rootdir and ini file *before* plugin options are known, so the value of
    ``--voice-latency-compare /elsewhere/base.json`` (space form) counts as a path argument: with
    a value outside the project, pytest picks another rootdir, reads no ``pytest.ini`` and every
    ``voice_latency_*`` setting is silently off. The ``=`` form is one token and is safe. A value
    that does not exist, or lies inside both the invocation directory and the rootdir, cannot
    have moved the search.

    >>> misread_path_options(["--voice-latency-compare=/tmp"], ["--voice-latency-compare"],
    ...                      invocation_dir="/work", rootdir="/work") is None
    True
    """
    for option, value in zip(args, args[1:]):
        if option not in options or value.startswith("-") or not os.path.exists(value):
            continue
        where = os.path.join(invocation_dir, value)
        if _inside(where, invocation_dir) and _inside(where, rootdir):
            continue
        return (f"{option} {value}: pytest reads a path after a space as a test path when it "
                "looks for its rootdir and ini file, before this option is known, so your "
                f"ini settings (voice_latency_*) may be silently ignored (rootdir: {rootdir}); "
                f"write {option}={value} instead")
    return None
