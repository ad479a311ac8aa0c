"""The tasks one call created, on an event loop the call does not own.

Why: ``Caller.run`` owns its loop, so after the calls it may cancel every task left on it. The
async entry points (``await caller.call(...)``) run on the *user's* loop (pytest-asyncio, anyio,
``asyncio.run``), next to the user's own tasks: only the tasks *the call* created (the agent's,
and the tasks those spawned) may be cancelled there, yet a task that ignores its cancellation
would hang the loop's teardown (``asyncio.run``'s final cancel-all waits for it forever).

How a task is known to be the call's: a :class:`~contextvars.ContextVar` holds the call's
:class:`Scope` while the call runs, and every task copies its creator's context, so the agent's
tasks and theirs all carry it. Python 3.11's C tasks do not expose their context, so the scope is
read when a task is *created*: while any call runs on a loop, a task factory is installed on it
that records each new task in the scope of the context it is created in, then defers to the
factory it replaced (or builds a plain :class:`asyncio.Task`). Concurrent calls on one loop share
the factory (counted); the last one out restores the previous factory, on failure too, unless
someone else replaced it meanwhile (theirs is left alone). A task the user creates outside the
call carries no scope and is never touched.

:func:`settle` then cancels the scope's tasks still running, gives them ``grace_s`` of real time
(:func:`~pytest_voicelatency.call.runner.outlast`) and abandons the stubborn ones
(:func:`~pytest_voicelatency.call.runner.abandon`), as the sync path does for its whole loop.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, cast

from pytest_voicelatency.call.runner import abandon, outlast, task_name

__all__ = ["Scope", "call_scope", "settle"]

_Factory = Callable[..., "asyncio.Future[Any]"]


class Scope:
    """The tasks created inside one call that have not finished yet."""

    __slots__ = ("tasks",)

    def __init__(self) -> None:
        self.tasks: set[asyncio.Future[Any]] = set()

    def add(self, task: asyncio.Future[Any]) -> None:
        if not task.done():
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def pending(self) -> list[asyncio.Future[Any]]:
        me = asyncio.current_task()
        return [t for t in self.tasks if t is not me and not t.done()]


_SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "pytest_voicelatency_call_scope", default=None)


class _Hook:
    """The task factory installed on one loop while calls run on it."""

    def __init__(self, previous: _Factory | None) -> None:
        self.previous = previous
        self.users = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                 **kwargs: Any) -> asyncio.Future[Any]:
        if self.previous is not None:
            task = self.previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        context = kwargs.get("context")
        scope = context.get(_SCOPE) if context is not None else _SCOPE.get()
        if scope is not None:
            scope.add(task)
        return task


def _install(loop: asyncio.AbstractEventLoop) -> _Hook:
    current = cast("_Factory | None", loop.get_task_factory())
    hook = current if isinstance(current, _Hook) else _Hook(current)  # one per loop
    if hook is not current:
        loop.set_task_factory(cast(Any, hook))
    hook.users += 1
    return hook


def _uninstall(loop: asyncio.AbstractEventLoop, hook: _Hook) -> None:
    hook.users -= 1
    current: object = loop.get_task_factory()
    if hook.users == 0 and current is hook and not loop.is_closed():
        loop.set_task_factory(cast(Any, hook.previous))


@contextmanager
def call_scope() -> Iterator[Scope]:
    """Record, for the duration of the block, every task created in it (and in those tasks) on
    the running loop; yields the :class:`Scope`. The loop's task factory is restored after."""
    loop = asyncio.get_running_loop()
    hook = _install(loop)
    scope = Scope()
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)
        _uninstall(loop, hook)


async def settle(scope: Scope, grace_s: float) -> tuple[list[str], list[str]]:
    """Cancel the scope's tasks still running; abandon those that ignore it for ``grace_s``.

    Returns the reprs of the tasks found running and the names
    (:func:`~pytest_voicelatency.call.runner.task_name`) of the abandoned ones, like
    :func:`~pytest_voicelatency.call.runner.sweep`. A task spawned while the others were being
    cancelled (cleanup work in an ``except`` clause) is swept in a second round.
    """
    for _ in range(3):  # let tasks that are finishing finish before calling the rest leaks
        await asyncio.sleep(0)
    found: list[str] = []
    stubborn: list[str] = []
    for _ in range(2):
        left = scope.pending()
        if not left:
            break
        found += [repr(t) for t in left]
        for task in left:
            task.cancel()
        await outlast(left, grace_s)
        for task in left:
            if not task.done():
                stubborn.append(task_name(task))
                abandon(task)
    return found, stubborn
