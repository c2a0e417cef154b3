"""What the host feeds the engine (events) and what the engine asks the host to do (actions).

Both are frozen msgspec Structs tagged by ``type`` so a host can log them, a simulator can return
them as JSON (``msgspec.to_builtins(actions)``) and tests can compare them by value.

Every event may carry ``now`` (an aware datetime; naive means UTC): the engine has no clock, so the
host passes the time with any event after which a time-of-day condition or ``{{now}}`` may be used.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Union

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True):
    now: dt.datetime | None = None


class TextReceived(Event, frozen=True, tag="text"):
    """A chat message (WhatsApp, SMS, web widget text)."""
    text: str


class DigitReceived(Event, frozen=True, tag="digit"):
    """One keypad press on a call: 0-9, * or #."""
    digit: str


class UtteranceReceived(Event, frozen=True, tag="utterance"):
    """What a speech recogniser heard the caller say (final result)."""
    text: str


class ApiResult(Event, frozen=True, tag="api_result"):
    """Outcome of a CallApi: ``status`` 0 and ``error`` set when no HTTP answer came back.

    ``body`` is the response body: text (decoded as JSON when it parses) or an already parsed value.
    """
    request_id: str
    status: int = 0
    body: Any = None
    error: str | None = None


class ClassifierResult(Event, frozen=True, tag="classifier_result"):
    request_id: str
    category: str | None = None
    error: str | None = None


class TimerFired(Event, frozen=True, tag="timer"):
    timer_id: str


class SpeechFinished(Event, frozen=True, tag="speech_finished"):
    """The caller has heard (or barged into) the Speak with this id."""
    speech_id: str


FlowEvent = Union[TextReceived, DigitReceived, UtteranceReceived, ApiResult, ClassifierResult,
                  TimerFired, SpeechFinished]


class Action(msgspec.Struct, frozen=True, tag_field="type"):
    pass


class Speak(Action, tag="speak"):
    """Voice: synthesise and play ``text``; feed SpeechFinished(speech_id) once it was heard."""
    text: str
    interruptible: bool
    speech_id: str


class SendText(Action, tag="send_text"):
    """Text channels: send ``text`` as a message."""
    text: str


class StartTimer(Action, tag="start_timer"):
    timer_id: str
    seconds: float


class CancelTimer(Action, tag="cancel_timer"):
    timer_id: str


class CallApi(Action, tag="call_api"):
    """Perform an HTTP request (bounded by ``timeout_s``) and feed ApiResult(request_id, ...)."""
    request_id: str
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    timeout_s: float


class Classify(Action, tag="classify"):
    """POST ``text`` to an external classifier and feed ClassifierResult(request_id, ...)."""
    request_id: str
    url: str
    text: str
    timeout_s: float


class HandOff(Action, tag="hand_off"):
    """Terminal: give the conversation to agent ``agent_id`` with ``variables`` in its start."""
    agent_id: str
    variables: dict[str, Any]


class Transfer(Action, tag="transfer"):
    """Terminal (voice): transfer the live call to ``number``."""
    number: str


class SendSms(Action, tag="send_sms"):
    """Queue an SMS through SMS channel ``channel_id`` (the durable outbox); the flow goes on."""
    channel_id: str
    to: str
    text: str


class End(Action, tag="end"):
    """Terminal: say/send ``message`` (when not None), then end the call or conversation."""
    reason: str
    message: str | None = None


FlowAction = Union[Speak, SendText, StartTimer, CancelTimer, CallApi, Classify, HandOff, Transfer,
                   SendSms, End]
TERMINAL = (HandOff, Transfer, End)
