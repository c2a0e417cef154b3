"""Run a flow against a scripted list of inputs and return the transcript: how an operator tests a
flow without a phone (``POST /api/v1/flows/{id}/simulate``). Pure: no HTTP, no clock.

Each input is one object with exactly one of:
``{"text": "..."}``, ``{"digits": "12#"}`` (one DigitReceived per key), ``{"utterance": "..."}``,
``{"timeout": true}`` (the running timer fires), ``{"api": {"status": 200, "body": ..., "error":
null}}`` (answers the pending api_call), ``{"category": "billing"}`` (answers the pending external
classifier); optionally ``"at": "2026-01-05T09:30:00Z"`` sets the time from then on.

The simulator plays a host that hears every Speak at once (SpeechFinished follows each), so input
timers start as on a real call. A request left pending when the next input is not its answer is
answered with the error "not simulated" (the flow takes its error/fallback path), so a script never
stalls. Simulation stops at the end of the script, when the flow ends, or after ``max_events``.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from .engine import FlowContext, FlowEngine
from .events import (Action, ApiResult, CallApi, Classify, ClassifierResult, DigitReceived,
                     Event, Speak, SpeechFinished, StartTimer, CancelTimer, TextReceived,
                     TimerFired, UtteranceReceived)
from .model import Flow
from .validate import _too_deep

MAX_INPUTS = 200


class ApiAnswer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: int = 200
    body: Any = None
    error: str | None = None


_Said = Annotated[str, msgspec.Meta(max_length=4000)]


class SimInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    text: _Said | None = None
    digits: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    utterance: _Said | None = None
    timeout: bool = False
    api: ApiAnswer | None = None
    category: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    at: dt.datetime | None = None


class SimulationResult(msgspec.Struct, frozen=True):
    transcript: list[dict]        # {"input": {...}} and {"action": {...}} entries, in order
    done: bool
    end_reason: str | None
    node: str | None
    variables: dict[str, Any]


class SimulationError(ValueError):
    """The script itself is malformed (the message says which input and why)."""


def parse_inputs(inputs: Any) -> list[SimInput]:
    if not isinstance(inputs, list) or len(inputs) > MAX_INPUTS:
        raise SimulationError(f"inputs is a list of at most {MAX_INPUTS} objects")
    parsed = []
    for i, raw in enumerate(inputs):
        if _too_deep(raw):
            raise SimulationError(f"inputs[{i}] nests too deeply")
        try:
            item = msgspec.convert(raw, SimInput)
        except msgspec.ValidationError as exc:
            raise SimulationError(f"inputs[{i}]: {exc}") from None
        given = [item.text, item.digits, item.utterance, item.api, item.category]
        if sum(v is not None for v in given) + item.timeout != 1:
            raise SimulationError(f"inputs[{i}]: give exactly one of text, digits, utterance, "
                                  "timeout, api, category")
        parsed.append(item)
    return parsed


class _Host:
    def __init__(self, engine: FlowEngine, transcript: list[dict], max_events: int,
                 include_timers: bool):
        self.engine = engine
        self.include_timers = include_timers
        self.transcript = transcript
        self.timer: str | None = None
        self.request: tuple[type, str] | None = None
        self.budget = max_events

    def perform(self, actions: list[Action], now: dt.datetime | None) -> None:
        """Record actions; hear every Speak (which may start a timer: recorded in turn)."""
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            if self.include_timers or not isinstance(action, (StartTimer, CancelTimer)):
                self.transcript.append({"action": msgspec.to_builtins(action)})
            if isinstance(action, StartTimer):
                self.timer = action.timer_id
            elif isinstance(action, CancelTimer) and action.timer_id == self.timer:
                self.timer = None
            elif isinstance(action, CallApi):
                self.request = (ApiResult, action.request_id)
            elif isinstance(action, Classify):
                self.request = (ClassifierResult, action.request_id)
            elif isinstance(action, Speak):
                queue += self.feed(SpeechFinished(action.speech_id, now=now))

    def feed(self, event: Event) -> list[Action]:
        if self.budget <= 0:
            return []
        self.budget -= 1
        if isinstance(event, (ApiResult, ClassifierResult)):
            self.request = None
        if isinstance(event, TimerFired) and event.timer_id == self.timer:
            self.timer = None
        return self.engine.feed(event)

    def unanswered(self, now) -> None:
        """Answer a pending request the script does not answer, so the flow moves on."""
        if self.request is None:
            return
        kind, request_id = self.request
        event = kind(request_id, error="not simulated", now=now)
        self.perform(self.feed(event), now)


def _events(item: SimInput, host: _Host, now) -> list[Event]:
    if item.text is not None:
        return [TextReceived(item.text, now=now)]
    if item.utterance is not None:
        return [UtteranceReceived(item.utterance, now=now)]
    if item.digits is not None:
        return [DigitReceived(d, now=now) for d in item.digits]
    if item.timeout:
        return [TimerFired(host.timer, now=now)] if host.timer else []
    request_id = host.request[1] if host.request else "none"
    if item.api is not None:
        return [ApiResult(request_id, item.api.status, item.api.body, item.api.error, now=now)]
    return [ClassifierResult(request_id, category=item.category, now=now)]


def simulate(flow: Flow, inputs: Any, *, context: FlowContext | None = None,
             now: dt.datetime, max_events: int = 2000,
             include_timers: bool = False) -> SimulationResult:
    """Run ``flow`` (from validate()) against ``inputs`` (see the module docstring); timer
    actions are left out of the transcript unless ``include_timers``."""
    script = parse_inputs(inputs)
    engine = FlowEngine(flow, context or FlowContext(channel_type="web", voice=False))
    transcript: list[dict] = []
    host = _Host(engine, transcript, max_events, include_timers)
    host.perform(engine.start(now), now)
    for item in script:
        if engine.done or host.budget <= 0:
            break
        now = item.at or now
        answers_request = item.api is not None or item.category is not None
        if not answers_request:
            host.unanswered(now)
            if engine.done:
                break
        transcript.append({"input": msgspec.to_builtins(item)})
        for event in _events(item, host, now):
            host.perform(host.feed(event), now)
    return SimulationResult(transcript, engine.done, engine.end_reason, engine.node_id,
                            engine.variables)
