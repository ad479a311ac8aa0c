"""A scripted backend for an agent's tools: each request answers after an injected latency, with
an injected fault, on the call's clock; every commit is recorded with its instant and whether
its caller was still waiting.

Why: the bug users ship in a tool is a write that commits after its caller gave up — a client
timeout, a retry, a barge-in — and is then committed again (the duplicate booking). A tool that
calls this backend instead of the real one can be property-tested on virtual time: hypothesis
draws the latencies and faults (``pytest_voicelatency.strategies.backend_profiles``), the call
runs in milliseconds, and :meth:`ScriptedBackend.duplicates` says whether a key was committed
twice, with :meth:`ScriptedBackend.timeline` rows to print beside the call's own timeline.

The server side runs on loop timers (``loop.call_later``), not on the caller's task: a caller
that stops waiting (``asyncio.wait_for`` timing out, its task cancelled) does not stop the
commit, as with a real server. Faults (:data:`FAULTS`):

* ``"none"`` — commits after ``latency_ms`` and replies with the :class:`Commit`;
* ``"error"`` — replies :class:`BackendError` after ``latency_ms``; nothing is committed;
* ``"commit_error"`` — commits, then replies :class:`BackendError` (a 5xx after the write);
* ``"lost_reply"`` — commits; the reply never arrives (the caller must time out);
* ``"hang"`` — neither commits nor replies.

A latency longer than the caller's timeout is the slow commit after a timeout. With an
``idempotency_key`` the backend commits a key once: a later request with the same key gets the
first commit back (``deduplicated``), as an idempotent API does.

>>> import asyncio
>>> from pytest_voicelatency.vclock import VirtualClock
>>> backend = ScriptedBackend(BackendProfile((BackendCall(300.0),), then=BackendCall(50.0)))
>>> async def tool() -> None:
...     try:
...         await asyncio.wait_for(backend.commit("table 19:00"), timeout=0.2)
...     except TimeoutError:
...         await backend.commit("table 19:00")          # the retry
...     await asyncio.sleep(1.0)
>>> VirtualClock().run(tool())
>>> [(c.request, c.caller_waiting) for c in backend.commits], len(backend.duplicates())
([(1, True), (0, False)], 1)
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_voicelatency.errors import VoiceLatencyUsageError

__all__ = ["ScriptedBackend", "BackendProfile", "BackendCall", "BackendError", "Commit",
           "BackendFault", "FAULTS", "merge_timelines"]

BackendFault = Literal["none", "error", "commit_error", "lost_reply", "hang"]
FAULTS: tuple[BackendFault, ...] = ("none", "error", "commit_error", "lost_reply", "hang")
_COMMITS: frozenset[str] = frozenset({"none", "commit_error", "lost_reply"})
_REPLIES: frozenset[str] = frozenset({"none", "error", "commit_error"})


class BackendError(Exception):
    """The scripted backend replied with an error (fault ``"error"`` or ``"commit_error"``)."""


@dataclass(frozen=True)
class BackendCall:
    """What the backend does with one request: answers after ``latency_ms`` with ``fault``."""

    latency_ms: float = 50.0
    fault: BackendFault = "none"

    def __post_init__(self) -> None:
        if not (isinstance(self.latency_ms, (int, float)) and 0 <= self.latency_ms < math.inf):
            raise VoiceLatencyUsageError(f"BackendCall latency_ms must be a finite number >= 0, "
                                         f"got {self.latency_ms!r}")
        if self.fault not in FAULTS:
            raise VoiceLatencyUsageError(f"BackendCall fault must be one of {FAULTS}, "
                                         f"got {self.fault!r}")

    def describe(self) -> str:
        return f"{self.latency_ms:g} ms" + ("" if self.fault == "none" else f", {self.fault}")


@dataclass(frozen=True)
class BackendProfile:
    """The backend's script: request ``n`` (0-based, in arrival order) is ``calls[n]``; every
    request after those is ``then``. JSON round trip: :meth:`to_json` / :meth:`from_json` (the
    form a replay file's agent knobs carry)."""

    calls: tuple[BackendCall, ...] = ()
    then: BackendCall = BackendCall()

    def call(self, n: int) -> BackendCall:
        return self.calls[n] if n < len(self.calls) else self.then

    def describe(self) -> str:
        shown = [f"#{i} {c.describe()}" for i, c in enumerate(self.calls)]
        return ", ".join([*shown, f"then {self.then.describe()}"])

    def to_json(self) -> dict[str, Any]:
        return {"calls": [[c.latency_ms, c.fault] for c in self.calls],
                "then": [self.then.latency_ms, self.then.fault]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BackendProfile:
        """The profile back from :meth:`to_json`; anything else is a usage error naming it."""
        try:
            calls = tuple(BackendCall(float(ms), fault) for ms, fault in data["calls"])
            ms, fault = data.get("then", (50.0, "none"))
            return cls(calls, BackendCall(float(ms), fault))
        except (KeyError, TypeError, ValueError) as exc:
            raise VoiceLatencyUsageError(
                f"a backend profile is {{'calls': [[latency_ms, fault], ...], 'then': "
                f"[latency_ms, fault]}}, got {data!r} ({exc})") from None


@dataclass(frozen=True)
class Commit:
    """One write that landed: its ``key``, instant (ns of the call's clock), the request that
    made it, and whether that request's caller was still waiting for the reply."""

    key: str
    at_ns: int
    request: int
    caller_waiting: bool
    idempotency_key: str | None = None


@dataclass
class _Request:
    index: int
    key: str
    idempotency_key: str | None
    call: BackendCall
    sent_ns: int
    reply: asyncio.Future[Commit]
    gave_up_ns: int | None = None
    done: bool = False


def _loop_ns() -> int:
    return round(asyncio.get_running_loop().time() * 1e9)


class ScriptedBackend:
    """A backend with scripted latency and faults (module doc). Use one per call.

    ``now_ns`` reads the instant to record (default: the running loop's time in ns, which on a
    ``VirtualClock`` is the call's clock: subtract ``CallLog.origin_ns`` for the call's ms).
    ``commits`` and ``events`` (``(ns, text)``) grow as the call runs."""

    def __init__(self, profile: BackendProfile | None = None, *, name: str = "backend",
                 now_ns: Callable[[], int] = _loop_ns) -> None:
        self.profile = profile or BackendProfile()
        self.name = name
        self.now_ns = now_ns
        self.commits: list[Commit] = []
        self.events: list[tuple[int, str]] = []
        self._requests: list[_Request] = []
        self._by_idempotency: dict[str, Commit] = {}

    def __repr__(self) -> str:
        return (f"ScriptedBackend({self.profile.describe()}: {self.requests} requests, "
                f"{len(self.commits)} commits)")

    async def commit(self, key: str, *, idempotency_key: str | None = None) -> Commit:
        """Ask the backend to commit ``key``; the :class:`Commit` (or, deduplicated, the first
        one with this ``idempotency_key``) once it replies. Raises :class:`BackendError` on an
        error reply; never returns on ``lost_reply`` / ``hang`` (time out the call)."""
        loop = asyncio.get_running_loop()
        index = len(self._requests)
        request = _Request(index, key, idempotency_key, self.profile.call(index), self.now_ns(),
                           loop.create_future())
        self._requests.append(request)
        self._event(f"request #{index} {key!r} sent ({request.call.describe()})")
        loop.call_later(request.call.latency_ms / 1000, self._serve, request)
        try:
            return await request.reply
        except asyncio.CancelledError:
            if not request.done:
                request.gave_up_ns = self.now_ns()
                self._event(f"the caller of #{index} gives up waiting")
            raise
        finally:
            request.done = True

    def _serve(self, request: _Request) -> None:
        fault = request.call.fault
        receipt: Commit | None = None
        if fault in _COMMITS:
            receipt = self._commit(request)
        if request.reply.done() or fault not in _REPLIES:
            return
        if fault == "none" and receipt is not None:
            request.reply.set_result(receipt)
        else:
            self._event(f"#{request.index} replies an error ({fault})")
            request.reply.set_exception(BackendError(f"{self.name}: request #{request.index} "
                                                     f"{request.key!r} failed ({fault})"))

    def _commit(self, request: _Request) -> Commit:
        waiting = not request.done
        key = request.idempotency_key
        if key is not None and key in self._by_idempotency:
            first = self._by_idempotency[key]
            self._event(f"#{request.index} deduplicated: {request.key!r} already committed "
                        f"by #{first.request}")
            return first
        commit = Commit(request.key, self.now_ns(), request.index, waiting, key)
        self.commits.append(commit)
        if key is not None:
            self._by_idempotency[key] = commit
        gone = "" if waiting else f" (its caller gave up {self._ago(request)})"
        self._event(f"{self.name} commits {request.key!r} (#{request.index}){gone}")
        return commit

    def _ago(self, request: _Request) -> str:
        if request.gave_up_ns is None:
            return "before"
        return f"{(self.now_ns() - request.gave_up_ns) / 1e6:g} ms before"

    def _event(self, text: str) -> None:
        self.events.append((self.now_ns(), text))

    def duplicates(self) -> tuple[Commit, ...]:
        """Every commit of a key that was already committed (the duplicate bookings)."""
        seen: set[str] = set()
        out: list[Commit] = []
        for commit in self.commits:
            if commit.key in seen:
                out.append(commit)
            seen.add(commit.key)
        return tuple(out)

    def gave_up_ns(self, request: int) -> int | None:
        """When the caller of request ``request`` stopped waiting for its reply (None: it got
        the reply, or is still waiting)."""
        return self._requests[request].gave_up_ns

    @property
    def requests(self) -> int:
        """How many requests reached the backend."""
        return len(self._requests)

    def timeline(self, origin_ns: int = 0) -> str:
        """The backend's events, one row each, as ``timeline()`` rows: ms from ``origin_ns``
        (the call's ``result.log.origin_ns``)."""
        return "\n".join(f"{(at - origin_ns) / 1e6:>11.3f} ms  {text}"
                         for at, text in self.events)


def merge_timelines(*texts: str | Sequence[str]) -> str:
    """Rows of several timelines (``"   123.456 ms  what"``), in time order."""
    rows = [row for text in texts
            for row in (text.splitlines() if isinstance(text, str) else text) if row.strip()]
    return "\n".join(sorted(rows, key=lambda row: float(row.split(" ms", 1)[0])))
