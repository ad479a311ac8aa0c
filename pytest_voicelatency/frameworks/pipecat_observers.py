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
from typing import Any

from loguru import logger
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


#: Pipecat's own observers that the worker adds for turn tracking and tracing: each only reads
#: the frames it is told about and keeps state (timers it needs run in tasks of their own), so
#: calling it in the pushing task changes nothing it records. Exact types: a subclass may wait.
INLINE_OBSERVERS: tuple[type[BaseObserver], ...] = (
    TurnTrackingObserver, UserBotLatencyObserver, TurnTraceObserver)


class _CallNow:
    """Stands in for an observer's proxy queue: ``put`` tells the observer at once, in the
    pushing task, what the proxy task would have told it a moment later (at the same instant
    on virtual time: no time passes while a task is ready). An observer that raises is logged,
    as Pipecat logs its proxy task dying, and told nothing more."""

    def __init__(self, observer: BaseObserver) -> None:
        self._observer: BaseObserver | None = observer
        #: False when the observer keeps the base class's no-op: each hop costs no call then
        self._processed = type(observer).on_process_frame is not BaseObserver.on_process_frame

    async def put(self, data: Any) -> None:
        observer = self._observer
        if observer is None:
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
    """Pipecat's ``WorkerObserver``, calling :data:`INLINE_OBSERVERS` in the pushing task.

    Pipecat gives every observer a queue and a task, so each hop of each frame wakes one task
    per observer: with tracing on (three observers) that was about a quarter of a call's CPU.
    Any other observer (RTVI's, yours) keeps its queue and task."""

    async def on_push_frame(self, data: FramePushed) -> None:
        """Pipecat's own, over a copy of the proxies: an inline observer's synchronous event
        handler may add or remove an observer while they are being told."""
        if not self._proxies:
            return
        frame = data.frame
        data.first_push = frame.id not in self._frames_pushed
        if data.first_push:
            self._frames_pushed[frame.id] = frame
        for proxy in tuple(self._proxies.values()):
            if data.first_push or proxy.observer.observe_every_push:
                await proxy.queue.put(data)

    async def _send_to_proxy(self, data: Any) -> None:
        for proxy in tuple(self._proxies.values()) if self._proxies else ():
            await proxy.queue.put(data)

    def _create_proxy(self, observer: BaseObserver) -> Proxy:
        if type(observer) not in INLINE_OBSERVERS:
            return super()._create_proxy(observer)
        return Proxy(queue=_CallNow(observer),  # type: ignore[arg-type,unused-ignore]
                     task=self.create_task(_parked(), "inline"),
                     observer=observer)


def inline_observers(worker: PipelineWorker) -> bool:
    """Make ``worker`` call Pipecat's own observers inline; False when this Pipecat's worker
    keeps its observers elsewhere (the adapter then leaves them as they are)."""
    observer = getattr(worker, "_observer", None)
    if type(observer) is not WorkerObserver:
        return False
    observer.__class__ = _InlineWorkerObserver
    return True
