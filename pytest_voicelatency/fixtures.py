"""The plugin's pytest fixtures. Each has a plain context-manager twin for use outside fixtures
(for example inside a hypothesis ``@given`` test, where function-scoped fixtures do not reset
between examples). Heavy imports happen inside the fixtures, not at plugin load.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from pytest_voicelatency.run.state import CAPTURE

if TYPE_CHECKING:
    from pytest_voicelatency.call.caller import Caller, Policy
    from pytest_voicelatency.spans.capture import Capture

__all__ = ["voice_spans", "voice_caller", "simulated_caller", "unreliable_policy", "UNRELIABLE_INI"]

UNRELIABLE_INI = "voice_latency_unreliable"


@pytest.fixture
def voice_spans(request: pytest.FixtureRequest) -> Iterator[Capture]:
    """The voice spans finished during this test (a :class:`~pytest_voicelatency.Capture`).

    Assertions such as ``assert_p95(stage="asr", lt=150)`` read it by default. Twin:
    :func:`pytest_voicelatency.capture_spans`.
    """
    capture = request.node.stash.get(CAPTURE, None)
    if capture is not None:
        yield capture
        return
    from pytest_voicelatency.spans.capture import capture_spans

    with capture_spans(request.node.nodeid, unreliable=unreliable_policy(request.config)) as capture:
        yield capture


@contextmanager
def simulated_caller(**options: Any) -> Iterator[Caller]:
    """A :class:`~pytest_voicelatency.call.caller.Caller`: the twin of the ``voice_caller`` fixture.

    Takes the ``Caller`` keyword arguments (``playout=``, ``pacing_limit_ms=``,
    ``unreliable=``...). Usable anywhere, including a hypothesis ``@given`` test; its spans reach
    whatever capture is active (``capture_spans()``, or the test's ``voice_spans``).

    >>> from pytest_voicelatency.agents.oracle import OracleAgent, tone_clip
    >>> from pytest_voicelatency.call.script import answer, say
    >>> with simulated_caller() as caller:
    ...     result = caller.run(OracleAgent(), [say(tone_clip()), answer(until="audible")])
    >>> result.metrics.responses[0].outcome
    'ok'
    """
    from pytest_voicelatency.call.caller import Caller

    yield Caller(**options)


def unreliable_policy(config: pytest.Config) -> Policy:
    """The ``voice_latency_unreliable`` ini value: ``warn`` (default), ``fail`` or ``retry``.

    Read defensively: when the ini is not registered (an older plugin), the policy is ``warn``.
    """
    from pytest_voicelatency.errors import VoiceLatencyUsageError

    try:
        value = config.getini(UNRELIABLE_INI)
    except ValueError:
        return "warn"
    text = str(value or "warn").strip().lower()
    if text not in ("warn", "fail", "retry"):
        raise VoiceLatencyUsageError(f"ini {UNRELIABLE_INI} = {value!r}: use warn, fail or retry")
    return text  # type: ignore[return-value]


@pytest.fixture
def voice_caller(request: pytest.FixtureRequest, voice_spans: Capture) -> Iterator[Caller]:
    """A simulated caller (:class:`~pytest_voicelatency.call.caller.Caller`) whose spans land in
    ``voice_spans``.

    From a plain test: ``voice_caller.run_calls(MyAgent, scripts)`` (it runs the event loop);
    from an async test: ``await voice_caller.calls(MyAgent, scripts)``. Unreliable calls follow
    the ``voice_latency_unreliable`` ini (``warn``, ``fail`` or ``retry``). Twin:
    :func:`simulated_caller`.
    """
    with simulated_caller(unreliable=unreliable_policy(request.config)) as caller:
        yield caller
