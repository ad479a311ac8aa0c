"""Quantile and confidence levels: the one rule for "a number strictly between 0 and 1", and
the one way to name a quantile (``p95``). Pure and numpy-free.

Levels arrive from four places (assertion keywords, ini strings parsed at configure time, the
command line and policy objects), and each used to check them its own way; a level that one
accepts and another refuses would make a gate and an assertion disagree. Numpy-free because the
plugin parses ini values with these at configure time, when loading numpy would slow every pytest
start-up.

>>> is_fraction(0.95), is_fraction(1), is_fraction(True), parse_fraction(" 0.99 ")
(True, False, False, 0.99)
>>> quantile_label(0.95), quantile_label(0.999), quantile_label(0.5)
('p95', 'p99.9', 'p50')
"""

from __future__ import annotations

from pytest_voicelatency.errors import VoiceLatencyUsageError

__all__ = ["is_fraction", "parse_fraction", "check_q", "check_confidence", "quantile_label"]


def is_fraction(value: object) -> bool:
    """Whether ``value`` is a real number (not a bool) strictly between 0 and 1; NaN is not."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 < value < 1)


def parse_fraction(text: str) -> float | None:
    """``text`` as a number strictly between 0 and 1, or None (callers word their own error:
    each names the ini key or option the text came from)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if is_fraction(value) else None


def check_q(q: object) -> float:
    """Validate a quantile level given to an assertion or estimate."""
    __tracebackhide__ = True
    if not is_fraction(q):
        raise VoiceLatencyUsageError(
            f"quantile q must be a number strictly between 0 and 1 (0.95 for p95), got {q!r}")
    return float(q)  # type: ignore[arg-type]  # is_fraction proved it is a number


def check_confidence(confidence: object) -> float:
    """Validate a confidence level (e.g. 0.95)."""
    __tracebackhide__ = True
    if not is_fraction(confidence):
        raise VoiceLatencyUsageError(
            f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")
    return float(confidence)  # type: ignore[arg-type]  # is_fraction proved it is a number


def quantile_label(q: float) -> str:
    """The name of the q-quantile in tables, messages and gate lines: ``0.95 → 'p95'``."""
    return f"p{round(q * 100, 6):g}"
