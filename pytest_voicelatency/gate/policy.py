"""How a run's gates and baseline comparison judge, as plain data parsed from the ini file.

Kept apart from :mod:`~pytest_voicelatency.gate.evaluate` and
:mod:`~pytest_voicelatency.gate.compare`, and free of numpy, because the plugin parses these at
configure time: a mistake in the ini file is a usage error before any test runs, and loading the
plugin stays cheap.

>>> policy_from_strings(confidence="0.95", missing="warn").missing
'warn'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.stats.levels import is_fraction, parse_fraction, quantile_label

__all__ = ["GatePolicy", "ComparePolicy", "POLICY_CHOICES", "policy_from_strings", "parse_body"]

POLICY_CHOICES = {"inconclusive": ("warn", "fail"), "missing": ("fail", "warn"),
                  "unreliable": ("warn", "fail", "retry")}


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """How gates are judged and which non-verdicts fail the run (see the module docstring)."""

    confidence: float | None = None
    inconclusive: Literal["warn", "fail"] = "warn"
    missing: Literal["warn", "fail"] = "fail"
    unreliable: Literal["warn", "fail", "retry"] = "warn"


def policy_from_strings(confidence: str = "", inconclusive: str = "warn", missing: str = "fail",
                        unreliable: str = "warn") -> GatePolicy:
    """Build a policy from ini strings; a bad value names its ini key and the accepted values."""
    level: float | None = None
    if confidence.strip().lower() not in ("", "none", "off"):
        level = parse_fraction(confidence)
        if level is None:
            raise VoiceLatencyUsageError(
                f"voice_latency_confidence = {confidence!r}: give a number strictly between 0 "
                "and 1 (e.g. 0.95), or leave it empty to gate the point estimate")
    values = {"inconclusive": inconclusive, "missing": missing, "unreliable": unreliable}
    for key, value in values.items():
        if value.strip().lower() not in POLICY_CHOICES[key]:
            raise VoiceLatencyUsageError(
                f"voice_latency_{key} = {value!r}: choose one of "
                f"{', '.join(POLICY_CHOICES[key])} (default {POLICY_CHOICES[key][0]})")
    return GatePolicy(level, inconclusive.strip().lower(), missing.strip().lower(),  # type: ignore[arg-type]
                      unreliable.strip().lower())  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ComparePolicy:
    """How runs are compared (see the module docstring)."""

    confidence: float = 0.99
    q: float = 0.95
    min_relative: float = 0.10
    min_ms: float = 10.0
    inconclusive: Literal["warn", "fail"] = "warn"
    #: Quantiles of the upper body tested beside ``q`` (ini ``voice_latency_compare_body``);
    #: empty: test exceedances over the baseline's ``q`` alone.
    body: tuple[float, ...] = (0.5, 0.75, 0.9)
    #: Share of the error budget kept by the test at ``q``; the body quantiles split the rest.
    tail_share: float = 2 / 3
    #: Smallest growth of the "produced nothing" rate (first_byte_ms = -1) that is a regression,
    #: in absolute share of samples (0.05 = 5 percentage points).
    min_nothing_rate: float = 0.05

    def __post_init__(self) -> None:
        problems = []
        if not is_fraction(self.confidence):
            problems.append(f"confidence={self.confidence!r} must lie strictly between 0 and 1")
        if not is_fraction(self.q):
            problems.append(f"q={self.q!r} must lie strictly between 0 and 1")
        if not (self.min_relative >= 0 and self.min_ms >= 0):
            problems.append("min_relative and min_ms must be >= 0")
        if list(self.body) != sorted(set(self.body)) or not all(0 < b < self.q for b in self.body):
            problems.append(f"body={self.body!r} must be distinct quantiles below q={self.q}, "
                            "ascending")
        if not (0 < self.tail_share < 1 if self.body else self.tail_share > 0):
            problems.append(f"tail_share={self.tail_share!r} must lie strictly between 0 and 1 "
                            "(the body tests share the rest)")
        if problems:
            raise VoiceLatencyUsageError(f"ComparePolicy: {'; '.join(problems)}")

    def min_effect(self, base_value: float) -> float:
        return max(self.min_relative * base_value, self.min_ms)

    def shares(self) -> tuple[tuple[float, float], ...]:
        """``(quantile, share of α)`` of each exceedance test, body first, ``q`` last; sums to 1.

        >>> [(q, round(share, 3)) for q, share in ComparePolicy().shares()]
        [(0.5, 0.111), (0.75, 0.111), (0.9, 0.111), (0.95, 0.667)]
        >>> ComparePolicy(body=()).shares()
        ((0.95, 1.0),)
        """
        if not self.body:
            return ((self.q, 1.0),)
        rest = (1.0 - self.tail_share) / len(self.body)
        return (*((b, rest) for b in self.body), (self.q, self.tail_share))


def parse_body(text: str, q: float = 0.95) -> tuple[float, ...]:
    """Parse ``voice_latency_compare_body``: quantiles below ``q`` (``p50 p75 p90``) or ``none``.

    >>> parse_body("p50, p75 p90")
    (0.5, 0.75, 0.9)
    >>> parse_body("none")
    ()
    """
    words = text.replace(",", " ").split()
    if [w.lower() for w in words] in ([], ["none"]):
        return ()
    out: list[float] = []
    for word in words:
        try:
            value = float(word[1:]) / 100 if word[:1] in "pP" else math.nan
        except ValueError:
            value = math.nan
        if not 0 < value < q or value in out:
            raise VoiceLatencyUsageError(
                f"voice_latency_compare_body = {text!r}: {word!r} is not a new quantile below "
                f"{quantile_label(q)}; give quantiles such as 'p50 p75 p90' (the default), or "
                "'none' to test exceedances over the baseline's p95 alone")
        out.append(value)
    return tuple(sorted(out))
