"""How a run's gates and baseline comparison judge, as plain data parsed from the ini file.

Kept apart from :mod:`~pytest_voicelatency.gates` and :mod:`~pytest_voicelatency.compare`, and free
of numpy, because the plugin parses these at configure time: a mistake in the ini file is a
usage error before any test runs, and loading the plugin stays cheap.

>>> policy_from_strings(confidence="0.95", missing="warn").missing
'warn'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import VoiceLatencyUsageError

__all__ = ["GatePolicy", "ComparePolicy", "POLICY_CHOICES", "policy_from_strings"]

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
        try:
            level = float(confidence)
            if not 0 < level < 1:
                raise ValueError(confidence)
        except ValueError:
            raise VoiceLatencyUsageError(
                f"voice_latency_confidence = {confidence!r}: give a number strictly between 0 "
                "and 1 (e.g. 0.95), or leave it empty to gate the point estimate") from None
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

    def min_effect(self, base_value: float) -> float:
        return max(self.min_relative * base_value, self.min_ms)
