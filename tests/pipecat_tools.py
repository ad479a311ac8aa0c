"""A Pipecat 1.14 pipeline whose LLM calls a booking tool, through Pipecat's own function calling.

:class:`BookingLLM` is an ``LLMService`` that does what a real one (``BaseOpenAILLMService``)
does with a tool call in the model's reply: it pushes the reply's text, then hands the call to
``LLMService.run_function_calls`` as a ``FunctionCallFromLLM``. Pipecat does the rest: it
broadcasts ``FunctionCallsStartedFrame`` / ``FunctionCallInProgressFrame``, runs the handler
registered with ``register_function`` in a task of its own, puts the handler's
``result_callback`` result into the context as a ``FunctionCallResultFrame`` (or "CANCELLED"
when it cancels the call) and asks the model again with the result in the context.

:func:`make_booking_handler` is the handler: it commits the booking to a
:class:`ScriptedBackend`, waiting :data:`TOOL_TIMEOUT_S` per request and retrying once on a
timeout or an error — without an idempotency key (the duplicate booking) or with one. It is
registered with Pipecat's default options: ``cancel_on_interruption=True``, so a barge-in while
it runs cancels it. :func:`make_booking_pipeline` is the replay factory; the backend of each
call it builds is kept in :data:`BACKENDS`. STT, TTS and VAD are those of
tests/pipecat_services.py (read-only here).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pipecat.frames.frames import (
    LLMTextFrame,
)
from pipecat.processors.aggregators import async_tool_messages
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.llm_service import FunctionCallFromLLM, FunctionCallParams
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.utils.tracing.service_decorators import traced_llm
from pipecat_services import LLM_DELAY_S, DelayedLLM, DelayedSTT, DelayedTTS, EnergyVAD

from pytest_voicelatency.agents import BackendError, BackendProfile, ScriptedBackend
from pytest_voicelatency.frameworks.pipecat import PipecatAgent

__all__ = ["BookingLLM", "make_booking_handler", "build_booking_pipeline",
           "make_booking_pipeline", "BACKENDS", "LLMS", "TOOL_TIMEOUT_S", "TOOL_ATTEMPTS",
           "PREAMBLE", "BOOKING"]

#: the tool's client-side timeout per backend request, and how many requests it makes at most
TOOL_TIMEOUT_S = 0.4
TOOL_ATTEMPTS = 2
#: what the model says before it calls the tool (28 characters: 1680 ms of DelayedTTS audio)
PREAMBLE = "One moment, I am booking it."
#: what the tool books (the backend's key, and the idempotency key when there is one)
BOOKING = "table for 2 at 19:00"


class BookingLLM(DelayedLLM):  # type: ignore[misc]
    """A model that books: to a user turn it says :data:`PREAMBLE` and calls
    ``book_table(party=2, at="19:00")`` — unless the context holds a ``book_table`` result
    that booked, or a call still running; to the tool's output it says whether the
    table is booked. A call Pipecat cancelled ("CANCELLED" in the context) was not booked as far
    as the model can tell, so the next user turn calls the tool again, as a model does. Call ids
    are ``call_1``, ``call_2`` ... (deterministic); ``calls`` counts them, ``seen`` keeps the
    calls' states at each inference."""

    def __init__(self, *, delay_s: float = LLM_DELAY_S, **kwargs: Any) -> None:
        super().__init__(delay_s=delay_s, **kwargs)
        self.calls = 0
        #: the tool calls' states the model saw, one tuple per inference
        self.seen: list[tuple[str, ...]] = []

    @traced_llm  # type: ignore[untyped-decorator]
    async def _process_context(self, context: LLMContext) -> None:
        await self.start_ttfb_metrics()
        await asyncio.sleep(self.delay_s)
        await self.stop_ttfb_metrics()
        states = _tool_states(context)
        self.seen.append(tuple(states.values()))
        last = _last_tool_state(context)
        if last is not None and last not in ("running", "cancelled"):
            await self._say("Your table for two at seven is booked." if _booked(last)
                            else "Sorry, I could not book the table.")
        elif any(_booked(state) for state in states.values()):
            await self._say("Your table is already booked.")
        elif "running" in states.values():
            await self._say("I am still booking your table.")
        else:
            await self._say(PREAMBLE)
            self.calls += 1
            # as BaseOpenAILLMService does once the streamed reply names a tool
            await self.run_function_calls([FunctionCallFromLLM(
                function_name="book_table", tool_call_id=f"call_{self.calls}",
                arguments={"party": 2, "at": "19:00"}, context=context)])

    async def _say(self, text: str) -> None:
        for i, word in enumerate(text.split(" ")):
            await self.push_frame(LLMTextFrame(word if i == 0 else " " + word))
            await asyncio.sleep(0.005)


def _state(message: dict[str, Any]) -> tuple[str, str] | None:
    """``(tool_call_id, state)`` of a message Pipecat's assistant aggregator wrote about a tool
    call — state "running", "cancelled" or the result's JSON — or None for any other message.
    A synchronous call (``cancel_on_interruption=True``) has one ``tool`` message: IN_PROGRESS,
    then the result or CANCELLED; an async one (``False``) has Pipecat's async-tool messages."""
    payload = async_tool_messages.parse_message(message)  # type: ignore[arg-type]
    if payload is not None:
        if payload.kind != "final":
            return payload.tool_call_id, "running"
        done = str(payload.result)
        return payload.tool_call_id, "cancelled" if done.startswith("CANCELLED") else done
    if message.get("role") != "tool":
        return None
    content = str(message.get("content"))
    state = {"IN_PROGRESS": "running", "CANCELLED": "cancelled"}.get(content, content)
    return str(message.get("tool_call_id")), state


def _tool_states(context: LLMContext) -> dict[str, str]:
    """Each tool call's latest state in the context, by call id (in order)."""
    states: dict[str, str] = {}
    for message in context.get_messages():
        found = _state(message) if isinstance(message, dict) else None
        if found is not None:
            states[found[0]] = found[1]
    return states


def _last_tool_state(context: LLMContext) -> str | None:
    """The state in the context's last message, if that is about a tool call."""
    messages = context.get_messages()
    found = _state(messages[-1]) if messages and isinstance(messages[-1], dict) else None
    return None if found is None else found[1]


def _booked(state: str) -> bool:
    """Whether a tool call's state is a ``book_table`` result that booked."""
    try:
        result = json.loads(state)
    except ValueError:
        return False
    return isinstance(result, dict) and "booked" in result


def make_booking_handler(backend: ScriptedBackend, *, idempotent: bool,
                         timeout_s: float = TOOL_TIMEOUT_S, attempts: int = TOOL_ATTEMPTS
                         ) -> Any:
    """The ``book_table`` handler for ``register_function``: commits the booking to
    ``backend``, waiting ``timeout_s`` per request and trying ``attempts`` times on a timeout or
    an error. ``idempotent``: every request carries the booking as its idempotency key."""

    async def book_table(params: FunctionCallParams) -> None:
        booking = f"table for {params.arguments['party']} at {params.arguments['at']}"
        for _ in range(attempts):
            try:
                await asyncio.wait_for(backend.commit(
                    booking, idempotency_key=booking if idempotent else None), timeout_s)
            except (TimeoutError, BackendError):
                continue  # the retry: without an idempotency key, a second booking
            await params.result_callback({"booked": booking})
            return
        await params.result_callback({"error": f"could not book the {booking}"})

    return book_table


#: the backend and the model of every pipeline :func:`make_booking_pipeline` built, last last
BACKENDS: list[ScriptedBackend] = []
LLMS: list[BookingLLM] = []


def build_booking_pipeline(backend: ScriptedBackend, *, idempotent: bool,
                           cancel_on_interruption: bool | None = None) -> list[FrameProcessor]:
    """A fresh VAD → STT → user aggregator → :class:`BookingLLM` → TTS → assistant aggregator,
    the user asking for a table, ``book_table`` registered on the model (Pipecat's default
    ``cancel_on_interruption`` unless given)."""
    context = LLMContext([{"role": "system", "content": "You book tables."}])
    aggregators = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(
        user_turn_strategies=UserTurnStrategies(
            stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.2)])))
    model = BookingLLM()
    model.register_function("book_table", make_booking_handler(backend, idempotent=idempotent),
                            cancel_on_interruption=cancel_on_interruption)
    LLMS.append(model)
    return [VADProcessor(vad_analyzer=EnergyVAD()),
            DelayedSTT(text="Book a table for two at seven."), aggregators.user(), model,
            DelayedTTS(), aggregators.assistant()]


def make_booking_pipeline(*, profile: dict[str, Any], idempotent: bool,
                          cancel_on_interruption: bool | None = None) -> PipecatAgent:
    """The replay factory: a ``PipecatAgent`` on a fresh backend scripted by ``profile``
    (``BackendProfile.to_json()``), kept in :data:`BACKENDS`."""
    backend = ScriptedBackend(BackendProfile.from_json(profile), name="bookings")
    BACKENDS.append(backend)
    return PipecatAgent(lambda: build_booking_pipeline(
        backend, idempotent=idempotent, cancel_on_interruption=cancel_on_interruption))
