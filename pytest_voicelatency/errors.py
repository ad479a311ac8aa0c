"""The plugin's one exception base and one warning base.

Every error the plugin raises names the thing that is wrong (a stage, an option, a file, a
threshold line) and what to do about it. Catch :class:`VoiceLatencyError` to handle all of them.
"""

from __future__ import annotations

__all__ = [
    "VoiceLatencyError",
    "VoiceLatencyUsageError",
    "VoiceLatencyWarning",
    "LatencyAssertionError",
]


class VoiceLatencyError(Exception):
    """Base class of every error raised by pytest-voicelatency."""


class VoiceLatencyUsageError(VoiceLatencyError, ValueError):
    """An argument or option was given a value the plugin cannot use.

    Raised for programming mistakes (``lt=-5``, ``q=1.5``, an assertion outside any capture);
    the message says which argument and what it accepts.
    """


class LatencyAssertionError(AssertionError):
    """A latency assertion failed: the message names stage, metric, quantile, limit and evidence.

    It subclasses :class:`AssertionError` so pytest reports a *failure* (not an error), and it
    carries the figures as attributes for tools that want them.
    """

    def __init__(self, message: str, *, stage: str = "", metric: str = "",
                 value: float | None = None, limit: float | None = None, n: int = 0,
                 verdict: str = "fail") -> None:
        super().__init__(message)
        self.stage = stage
        self.metric = metric
        self.value = value
        self.limit = limit
        self.n = n
        self.verdict = verdict


class VoiceLatencyWarning(UserWarning):
    """Base class of every warning issued by pytest-voicelatency."""
