"""Pipecat's own turn-tracking and tracing observers, told about frames in the pushing task.

Pipecat's ``WorkerObserver`` gives every observer a queue and a task, so each hop of each frame
wakes one task per observer. :func:`inline_observers` makes a worker call
:data:`INLINE_OBSERVERS` directly instead (on virtual time at the same instant: no time passes
while a task is ready), for about a quarter less CPU per call and the same spans; any other
observer keeps its queue and task. It reaches into ``pipecat.pipeline.worker_observer`` of the
pinned pipecat-ai 1.14: :mod:`~pytest_voicelatency.frameworks.pipecat` imports this module only
if that still works, and :func:`inline_observers` leaves a worker whose observer it does not
recognise as it is.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

from pipecat.observers.base_observer import (
    BaseObserver,
    FrameProcessed,
    FramePushed,
    ProcessorSetUp,
)
from pipecat.observers.turn_tracking_observer import TurnTrackingObserver
from pipecat.observers.user_bot_latency_observer import UserBotLatencyObserver
from pipecat.pipeline.worker import PipelineWorker
from pipecat.pipeline.worker_observer import Proxy, WorkerObserver, _PipelineStartedSignal
from pipecat.utils.tracing.turn_trace_observer import TurnTraceObserver

__all__ = ["INLINE_OBSERVERS", "inline_observers"]

# Pipecat's logger, imported after Pipecat: without the extra, importing this module fails
# on 'pipecat', the extra's name, not on loguru (Pipecat's dependency)
from loguru import logger  # noqa: E402

#: The types of the observers the worker itself adds for turn tracking and tracing: each only
#: reads the frames it is told about and keeps state (timers it needs run in tasks of their
#: own), so calling it in the pushing task changes nothing it records. Only the worker's own
#: instances are inlined: an observer you pass, even of one of these types, keeps its task.
INLINE_OBSERVERS: tuple[type[BaseObserver], ...] = (
    TurnTrackingObserver, UserBotLatencyObserver, TurnTraceObserver)

#: the Pipecat release whose ``WorkerObserver`` internals this module relies on (its proxy
#: record, what it queues, how it cancels a proxy's task): on any other, observers keep their
#: queues
PIPECAT_RELEASE = "1.14."


class _CallNow:
    """Stands in for an observer's proxy queue: ``put`` tells the observer at once, in the
    pushing task, what the proxy task would have told it a moment later (at the same instant
    on virtual time: no time passes while a task is ready; on real time, a moment earlier). An
    observer that raises is logged, as Pipecat logs its proxy task dying, and told nothing
    more; so is one whose worker has cleaned it up."""

    def __init__(self, observer: BaseObserver, parked: asyncio.Task[None]) -> None:
        self._observer: BaseObserver | None = observer
        #: the proxy record's task: cancelled by the worker's clean-up (or ``remove_observer``),
        #: after which the observer is told nothing, as its queue would no longer be read
        self._parked = parked
        #: False when the observer keeps the base class's no-op: each hop costs no call then
        self._processed = type(observer).on_process_frame is not BaseObserver.on_process_frame

    async def put(self, data: Any) -> None:
        observer = self._observer
        if observer is None or self._parked.done():
            return
        try:
            if isinstance(data, FramePushed):
                await observer.on_push_frame(data)
            elif isinstance(data, FrameProcessed):
                if self._processed:
                    await observer.on_process_frame(data)
            elif isinstance(data, ProcessorSetUp):
                await observer.on_processor_setup(data)
            elif isinstance(data, _PipelineStartedSignal):
                await observer.on_pipeline_started()  # type: ignore[no-untyped-call,unused-ignore]
        except Exception as error:  # noqa: BLE001 - Pipecat's proxy task logs and ends, too
            self._observer = None
            logger.error(f"{observer}: observer raised {error!r}; it is told nothing more")


async def _parked() -> None:
    """The task an inline observer's proxy record holds: it waits to be cancelled."""
    await asyncio.get_running_loop().create_future()


class _InlineWorkerObserver(WorkerObserver):  # type: ignore[misc,unused-ignore]
    """Pipecat's ``WorkerObserver``, calling the worker's own observers in the pushing task.

    Pipecat gives every observer a queue and a task, so each hop of each frame wakes one task
    per observer: with tracing on (three observers) that was about a quarter of a call's CPU.
    Any other observer (RTVI's, yours) keeps its queue and task."""

    #: ``id()`` of the observers to call inline (set by :func:`inline_observers`)
    _inline_ids: frozenset[int] = frozenset()

    def _create_proxy(self, observer: BaseObserver) -> Proxy:
        if id(observer) not in self._inline_ids:
            return super()._create_proxy(observer)
        parked = self.create_task(_parked(), "inline")
        return Proxy(queue=_CallNow(observer, parked),  # type: ignore[arg-type,unused-ignore]
                     task=parked, observer=observer)


def inline_observers(worker: PipelineWorker) -> bool:
    """Make ``worker`` call its own turn-tracking and tracing observers inline (before it is
    set up); False, leaving it as it is, on a Pipecat other than :data:`PIPECAT_RELEASE` or a
    worker whose observers are kept elsewhere."""
    observer = getattr(worker, "_observer", None)
    if type(observer) is not WorkerObserver or not _pipecat_release().startswith(PIPECAT_RELEASE):
        return False
    own = (getattr(worker, name, None) for name in (
        "_turn_tracking_observer", "_user_bot_latency_observer", "_turn_trace_observer"))
    observer.__class__ = _InlineWorkerObserver
    cast(_InlineWorkerObserver, observer)._inline_ids = frozenset(
        id(o) for o in own if type(o) in INLINE_OBSERVERS)
    return True


def _pipecat_release() -> str:
    try:
        return version("pipecat-ai")
    except PackageNotFoundError:  # run from a source tree
        return ""
