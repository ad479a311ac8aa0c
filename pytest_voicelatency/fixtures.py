"""The plugin's pytest fixtures, their twins and their markers: one name for each.

=================  ===================================  ===========================================
fixture            twin (a context manager, anywhere)   marker (the twin's keyword arguments)
=================  ===================================  ===========================================
``voice_spans``    ``with voice_spans() as spans:``     ``@pytest.mark.voice_spans(unreliable=...)``
``voice_caller``   ``with voice_caller() as caller:``   ``@pytest.mark.voice_caller(playout=...)``
=================  ===================================  ===========================================

A twin works where a fixture cannot — inside a hypothesis ``@given`` test (function-scoped
fixtures do not reset between examples), in a module-scoped fixture, in a script. A marker
configures a fixture exactly as the same keywords configure its twin; ``voice_caller`` passes
them, whatever they are, to :class:`~pytest_voicelatency.call.caller.Caller`, so a new caller
option needs no change here. Both honour the ``voice_latency_unreliable`` ini key: the fixtures
read it from their test's config, the twins from the pytest session they run in (none: ``warn``).

Heavy imports happen inside the fixtures and twins, not at plugin load.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from pytest_voicelatency._lazy import exports
from pytest_voicelatency.options import (
    CALLER_MARKER,
    CLOCK_CHOICES,
    CLOCK_INI,
    SPANS_MARKER,
    UNRELIABLE_CHOICES,
    UNRELIABLE_INI,
)
from pytest_voicelatency.run.state import CAPTURE

if TYPE_CHECKING:
    from pytest_voicelatency.call.caller import Caller, Policy
    from pytest_voicelatency.spans.capture import Capture

__all__ = ["voice_spans", "voice_caller", "voice_spans_fixture", "voice_caller_fixture",
           "unreliable_policy", "configure", "unconfigure"]

# 0.1.0 documented `from pytest_voicelatency.fixtures import simulated_caller`: it works, warning
__getattr__ = exports(__name__, {}, deprecated={
    "simulated_caller": ("pytest_voicelatency", "voice_caller")})[0]

#: the ``voice_latency_unreliable`` policy and ``voice_latency_clock`` of each configured pytest
#: session, innermost last
_SESSIONS: list[tuple[pytest.Config, Policy, str]] = []


# ------------------------------------------------------------------------------------ twins

@contextmanager
def voice_spans(test_id: str = "", *, unreliable: Policy | None = None,
                **options: Any) -> Iterator[Capture]:
    """Capture the voice spans finished inside the block: the twin of the ``voice_spans`` fixture.

    Yields a :class:`~pytest_voicelatency.spans.capture.Capture`; assertions inside the block read
    it by default. ``unreliable`` is what assertions on it do with samples the caller marked
    unreliable (``"warn"``, ``"fail"``; ``"retry"`` acts as warn here); default: the pytest
    session's ``voice_latency_unreliable`` ini, else ``"warn"``. Other keywords (such as
    ``conventions=``) go to the capture as they are.

    >>> from pytest_voicelatency import stage_span
    >>> with voice_spans() as spans:
    ...     with stage_span("asr", "s1", "t1") as first_partial:
    ...         first_partial()
    >>> spans.stages()
    ['asr']
    """
    from pytest_voicelatency.spans.capture import capture_spans  # lazy: plugin start-up

    policy = configured_policy() if unreliable is None else unreliable
    with capture_spans(test_id, unreliable=policy, **options) as capture:
        yield capture


@contextmanager
def voice_caller(**options: Any) -> Iterator[Caller]:
    """A simulated :class:`~pytest_voicelatency.call.caller.Caller`: the twin of the
    ``voice_caller`` fixture.

    Takes the ``Caller`` keyword arguments (``playout=``, ``pacing_limit_ms=``, ``unreliable=``,
    ``session_prefix=``, ``clock=``...); ``unreliable`` defaults to the pytest session's
    ``voice_latency_unreliable`` ini, else ``"warn"``; ``clock`` to its ``voice_latency_clock``
    ini (``real`` or ``virtual``), else real time. Its spans reach whatever capture is active
    (``voice_spans()``, or the test's ``voice_spans`` fixture).

    >>> from pytest_voicelatency.agents import OracleAgent
    >>> from pytest_voicelatency.audio import tone_clip
    >>> from pytest_voicelatency.call import answer, say
    >>> with voice_caller() as caller:
    ...     result = caller.run(OracleAgent(), [say(tone_clip()), answer(until="audible")])
    >>> result.metrics.responses[0].outcome
    'ok'
    """
    from pytest_voicelatency.call.caller import Caller  # lazy: plugin start-up

    options.setdefault("unreliable", configured_policy())
    options.setdefault("clock", configured_clock())
    yield Caller(**options)


# ------------------------------------------------------------------------------------ fixtures

@pytest.fixture(name="voice_spans")
def voice_spans_fixture(request: pytest.FixtureRequest) -> Iterator[Capture]:
    """The voice spans finished during this test (a ``Capture``); assertions read it by default.

    Twin: ``with pytest_voicelatency.voice_spans() as spans:``. Marker:
    ``@pytest.mark.voice_spans(unreliable="fail")``.
    """
    from pytest_voicelatency.spans.capture import capture_spans  # lazy: plugin start-up

    options = marker_options(request, SPANS_MARKER, capture_spans, skip=("test_id",))
    if "unreliable" in options:
        options["unreliable"] = check_policy(options["unreliable"], f"@pytest.mark.{SPANS_MARKER}")
    capture = request.node.stash.get(CAPTURE, None)
    if capture is not None:  # the plugin's per-test capture (--voice-latency): same options
        for key, value in options.items():  # each keyword of capture_spans is a Capture attribute
            setattr(capture, key, value)
        yield capture
        return
    options.setdefault("unreliable", unreliable_policy(request.config))
    with voice_spans(request.node.nodeid, **options) as capture:
        yield capture


@pytest.fixture(name="voice_caller")
def voice_caller_fixture(request: pytest.FixtureRequest, voice_spans: Capture) -> Iterator[Caller]:
    """A simulated caller whose spans land in ``voice_spans``.

    From a plain test: ``voice_caller.run_calls(MyAgent, scripts)`` (it runs the event loop);
    from an async test: ``await voice_caller.calls(MyAgent, scripts)``. Twin:
    ``with pytest_voicelatency.voice_caller() as caller:``. Marker:
    ``@pytest.mark.voice_caller(playout=PlayoutConfig(...), unreliable="retry", ...)`` passes its
    keywords to the ``Caller``.
    """
    from pytest_voicelatency.call.caller import Caller  # lazy: plugin start-up

    options = marker_options(request, CALLER_MARKER, Caller)
    options.setdefault("unreliable", unreliable_policy(request.config))
    options.setdefault("clock", clock_choice(request.config))
    try:
        caller = Caller(**options)
    except (TypeError, ValueError) as exc:
        from pytest_voicelatency.errors import VoiceLatencyUsageError  # lazy: plugin start-up

        raise VoiceLatencyUsageError(f"@pytest.mark.{CALLER_MARKER}: {exc}") from exc
    yield caller


# ------------------------------------------------------------------------------------ helpers

def marker_options(request: pytest.FixtureRequest, marker: str, target: Callable[..., Any],
                   skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The keyword arguments of every ``marker`` on the test (the closest wins), checked against
    ``target``'s signature: a positional argument or an unknown keyword is a usage error naming
    the marker and the keyword."""
    from pytest_voicelatency.errors import VoiceLatencyUsageError  # lazy: plugin start-up

    options: dict[str, Any] = {}
    marks = list(request.node.iter_markers(marker))
    if not marks:
        return options
    parameters = inspect.signature(target).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    accepted = sorted(name for name, p in parameters.items()
                      if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name not in skip)
    for mark in reversed(marks):  # module, class, then function: the closest is applied last
        if mark.args:
            raise VoiceLatencyUsageError(
                f"@pytest.mark.{marker}{mark.args!r}: pass keyword arguments only, e.g. "
                f"@pytest.mark.{marker}({accepted[0]}=...)")
        for key in mark.kwargs:
            if key not in accepted and not (open_ended and key not in skip):
                raise VoiceLatencyUsageError(
                    f"@pytest.mark.{marker}({key}=...): unknown keyword {key!r}; "
                    f"it takes {', '.join(accepted)}")
        options.update(mark.kwargs)
    return options


def check_policy(value: object, where: str) -> Policy:
    """``value`` as an unreliable policy, else a usage error naming ``where`` and the choices."""
    text = str(value).strip().lower()
    if text not in UNRELIABLE_CHOICES:
        from pytest_voicelatency.errors import VoiceLatencyUsageError  # lazy: plugin start-up

        raise VoiceLatencyUsageError(f"{where} = {value!r}: use {', '.join(UNRELIABLE_CHOICES)}")
    return text  # type: ignore[return-value]


def unreliable_policy(config: pytest.Config) -> Policy:
    """The ``voice_latency_unreliable`` ini value: ``warn`` (default), ``fail`` or ``retry``.

    Read defensively: when the ini is not registered (an older plugin), the policy is ``warn``.
    """
    try:
        value = config.getini(UNRELIABLE_INI)
    except ValueError:
        return "warn"
    return check_policy(value or "warn", f"ini {UNRELIABLE_INI}")


def configure(config: pytest.Config) -> None:
    """Called at ``pytest_configure``: the twins now follow this session's ini."""
    _SESSIONS.append((config, unreliable_policy(config), clock_choice(config)))


def unconfigure(config: pytest.Config) -> None:
    """Called at ``pytest_unconfigure``: forget the session (pytester runs nest sessions)."""
    _SESSIONS[:] = [s for s in _SESSIONS if s[0] is not config]


def configured_policy() -> Policy:
    """The unreliable policy of the innermost running pytest session, else ``"warn"``."""
    return _SESSIONS[-1][1] if _SESSIONS else "warn"


def configured_clock() -> str:
    """The ``voice_latency_clock`` of the innermost running pytest session, else ``"real"``."""
    return _SESSIONS[-1][2] if _SESSIONS else "real"


def clock_choice(config: pytest.Config) -> str:
    """The ``voice_latency_clock`` ini value: ``real`` (default) or ``virtual``."""
    try:
        value = config.getini(CLOCK_INI)
    except ValueError:
        return "real"
    text = str(value or "real").strip().lower()
    if text not in CLOCK_CHOICES:
        raise ValueError(f"ini {CLOCK_INI} = {value!r}: use {' or '.join(CLOCK_CHOICES)}")
    return text
