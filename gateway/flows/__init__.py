"""Flows: structured routing (menus, data collection, lookups, branching) before an agent.

Usage::

    flow = validate(definition, channel_type="voice", provider="twilio")   # or FlowValidationError
    engine = FlowEngine(flow, FlowContext(channel_id="ch1", channel_type="voice", caller="+44..."))
    actions = engine.start(now)              # perform them in order
    actions = engine.feed(DigitReceived("2", now=now))
    state = engine.snapshot()                # JSON-able; FlowEngine.restore(flow, context, state)

The engine is a pure state machine (no I/O, no clock): the host performs actions and feeds results.

Format
------
``{"name"?, "start": "<entry id>", "nodes": {"<id>": {"type": ..., ...}}, "timezone"?: IANA,
"variables"?: {name: default}, "description"?}``. ``name`` defaults to "flow" (the control plane
keeps it beside the definition; merge it in if ``{{flow}}`` should say it). Node ids: 1-64 of
``[A-Za-z0-9_-]``; at most 500 nodes; texts at most 2000 characters. Any node may carry ``label``
and ``ui`` (editor data). ``json_schema()`` gives the shape as JSON Schema.

=========== ================================================================================
entry       ``next``. Exactly one; ``start`` names it; no edge may lead back to it.
speak       ``text``, ``next``, ``interruptible`` (true).
dtmf_menu   ``prompt``, ``options`` {key 0-9*# -> node}, ``timeout_s`` (5, max 60), ``retries``
            (2, max 5), ``invalid``, ``timeout`` (falls back to ``invalid``; neither: End
            "invalid_input"/"no_input"), ``invalid_prompt``, ``timeout_prompt``,
            ``interruptible``. Text channels accept the key typed as a message ("2", "2.", "two").
collect     ``values`` [{``name``, ``prompt``, ``validation`` any|digits|email|regex, ``pattern``,
            ``min_length`` (1), ``max_length``, ``retry_prompt``}], ``next``, ``mode``
            auto|dtmf|speech|text, ``timeout_s`` (8), ``max_retries`` (2), ``failure`` (none: End
            "collect_failed"), ``retry_prompt``. Text channels: the next message is the value.
            Voice: keys accumulate until ``#`` (``*`` restarts; reaching ``max_length`` submits;
            a timeout after some keys submits them, after none is a retry); utterances count when
            the mode allows speech and the host has a recogniser (``speech_input``), else keypad.
            ``auto`` = speech unless the value is ``digits``. Typed text always counts.
condition   ``rules`` [{``op``, ``var``, ``value``, ``next``, ``ignore_case``, ``negate``}],
            ``default``. ops: equals, not_equals, in (list), regex (search), exists, lt/le/gt/ge
            (numeric), time_between (``from``/``to`` "HH:MM", ``days`` ["mon",...], local time
            in the flow's timezone, may cross midnight). First matching rule wins.
api_call    ``method``, ``url`` (literal http(s) scheme and host), ``headers``, ``body`` (JSON; its
            strings are templates), ``timeout_s`` (5, max 30), ``extract`` {var: "$.a.b[0]"},
            ``success`` (2xx), ``error`` (anything else, transport error or timeout). Sets
            ``api_status``/``api_error``; a path that is missing sets its variable to "".
classify    ``categories`` [{``name``, ``keywords``, ``regex``, ``next``}], ``default``, ``input``
            next (prompt, wait for a message/utterance/key) | last (use ``last_input`` now),
            ``prompt``, ``url`` (external classifier: the host POSTs the text, feeds the category;
            error or unknown category falls back to keywords), ``timeout_s``,
            ``classifier_timeout_s``. Sets ``category``.
agent       ``agent_id``, ``variables`` (names to pass; default all). Terminal: HandOff.
transfer    ``number`` (E.164 / sip:), ``message``. Voice on Twilio/Plivo: Transfer. Elsewhere
            (text, web, Exotel): End("transfer", message or "You can reach us at ...").
sms         ``channel_id`` (an SMS channel), ``to`` ("{{caller}}"), ``text``, ``next``.
end         ``message``, ``reason`` ("completed"). Terminal: End(reason, message).
=========== ================================================================================

Variables and templates
-----------------------
``{{name}}``, ``{{a.b.0}}`` (dict keys / list indices only; missing renders ""). Builtins:
``caller``, ``channel``, ``channel_type``, ``flow``, ``last_input`` (the caller's last message,
utterance or key), ``category``, ``api_status``, ``api_error``, and from the latest event time in
the flow's timezone: ``now`` ("YYYY-MM-DD HH:MM"), ``now_date``, ``now_time`` ("HH:MM"),
``now_hour``, ``now_minute``, ``now_weekday`` ("mon"...). Other names must be declared in
``variables`` or be set by a ``collect`` value or an ``api_call`` ``extract`` (validation rejects
the rest). Values inserted into an api_call URL are percent-encoded.

Events (host -> engine; each may carry ``now=``)
------------------------------------------------
TextReceived(text), DigitReceived(digit), UtteranceReceived(text), ApiResult(request_id, status,
body, error), ClassifierResult(request_id, category, error), TimerFired(timer_id),
SpeechFinished(speech_id). Stale ids and input a node does not wait for are ignored.

Actions (engine -> host, in order)
----------------------------------
Speak(text, interruptible, speech_id) on voice/web, SendText(text) on text channels,
StartTimer(timer_id, seconds), CancelTimer(timer_id), CallApi(request_id, method, url, headers,
body, timeout_s), Classify(request_id, url, text, timeout_s), SendSms(channel_id, to, text), and the
terminal HandOff(agent_id, variables), Transfer(number), End(reason, message). Input timers only
run on voice (a text conversation waits); api/classifier requests always get a backstop timer.
Guards: 100 automatic moves per feed, 10,000 per conversation, then End("loop").

Host contract: perform actions in order; play queued speech before a terminal action; feed
SpeechFinished for every Speak once heard *or* cleared/failed (input timers start from it); a
key or utterance during an ``interruptible`` prompt is the host's cue to clear the audio; pass
``now`` with events on long-lived (text) conversations so time-of-day rules see the real time.

Hosts on Trio: :mod:`gateway.flows.host` performs CallApi/Classify with httpx (bounded, never
raising) and runs StartTimer/CancelTimer as tasks delivering TimerFired (not imported here, to
keep this package pure).

Simulation: ``simulate(flow, inputs, context=..., now=...)`` (module :mod:`.simulate`) runs a
scripted list of inputs (text, digits, utterance, timeout, api answer, category) and returns the
transcript of actions, for ``POST /api/v1/flows/{id}/simulate``.

Persistence: ``snapshot()`` is a JSON-able dict; ``FlowEngine.restore(flow, context, snapshot)``
resumes it or raises FlowSnapshotError when the flow changed so that the position is gone.
"""
from .engine import (FlowContext, FlowEngine, FlowSnapshotError, MAX_STEPS_PER_FEED,
                     MAX_TOTAL_STEPS)
from .events import (Action, ApiResult, CallApi, CancelTimer, Classify, ClassifierResult,
                     DigitReceived, End, Event, FlowAction, FlowEvent, HandOff, SendSms, SendText,
                     Speak, SpeechFinished, StartTimer, TERMINAL, TextReceived, TimerFired,
                     Transfer, UtteranceReceived)
from .model import Flow, Node, NODE_TYPES, json_schema
from .simulate import SimulationError, SimulationResult, simulate
from .validate import (BUILTIN_VARIABLES, TRANSFER_PROVIDERS, FlowError, FlowValidationError,
                       errors_as_json, validate)

__all__ = [
    "validate", "FlowValidationError", "FlowError", "errors_as_json", "BUILTIN_VARIABLES",
    "TRANSFER_PROVIDERS", "Flow", "Node", "NODE_TYPES", "json_schema",
    "FlowEngine", "FlowContext", "FlowSnapshotError", "MAX_STEPS_PER_FEED", "MAX_TOTAL_STEPS",
    "Event", "FlowEvent", "TextReceived", "DigitReceived", "UtteranceReceived", "ApiResult",
    "ClassifierResult", "TimerFired", "SpeechFinished",
    "Action", "FlowAction", "TERMINAL", "Speak", "SendText", "StartTimer", "CancelTimer",
    "CallApi", "Classify", "HandOff", "Transfer", "SendSms", "End",
    "simulate", "SimulationResult", "SimulationError",
]
