"""The flow engine: a pure state machine. Events in, actions out; no I/O, no clock, no randomness.

The host (a voice/web session or the messaging worker) creates ``FlowEngine(flow, context)``, calls
``start(now)`` and then ``feed(event)`` for everything that happens, and performs the returned
actions in order. Waiting happens only in four places: ``dtmf_menu``, ``collect`` and ``classify``
(``input: "next"``) wait for the caller, ``api_call`` (and ``classify`` with a ``url``) wait for the
host's result. Everything else moves on at once; at most :data:`MAX_STEPS_PER_FEED` automatic moves
per call (and :data:`MAX_TOTAL_STEPS` per conversation) before the engine ends with reason "loop".

Decisions worth knowing (the package docstring has the full contract):

* Output: on a voice-capable channel (``voice``, ``web``) text is ``Speak``; otherwise ``SendText``.
  A retry/invalid notice and the repeated prompt go out as one Speak/SendText.
* Timers: a waiting node's no-input timer starts when its prompt has been heard
  (``SpeechFinished``), or at once when nothing was said; while the prompt plays, the timer runs
  with a generous allowance for its length (so a host that never reports cannot hang a call). Text channels get no input timers at all
  (a chat reply may come hours later), so ``timeout`` branches only fire on voice. ``api_call``
  and the external classifier always get a backstop timer (their ``timeout_s`` + 2 s): a host that
  never answers cannot hang the flow.
* Stale ids: a TimerFired, ApiResult, ClassifierResult or SpeechFinished whose id is not the one
  the engine waits for is ignored, as is input the current node does not wait for.
* Terminal actions (HandOff, Transfer, End) come last in their list; the host plays any queued
  speech before performing them. After one, ``done`` is True and ``feed`` returns ``[]``.
"""
from __future__ import annotations

import datetime as dt
import urllib.parse
import zoneinfo
from typing import Any, Callable

import msgspec

from . import classify as classifier
from . import conditions, jsonpath, template, values
from .events import (Action, ApiResult, CallApi, CancelTimer, Classify, ClassifierResult,
                     DigitReceived, End, Event, HandOff, SendSms, SendText, Speak,
                     SpeechFinished, StartTimer, TextReceived, TimerFired, Transfer,
                     UtteranceReceived)
from .model import (AgentNode, ApiCallNode, ClassifyNode, CollectNode, ConditionNode,
                    DtmfMenuNode, EndNode, EntryNode, Flow, Node, SmsNode, SpeakNode,
                    TransferNode)
from .validate import TRANSFER_PROVIDERS

MAX_STEPS_PER_FEED = 100
MAX_TOTAL_STEPS = 10_000
MAX_INPUT_CHARS = 2000          # longer caller input is cut (bounds regex work and snapshot size)
MAX_DIGITS = 64
MAX_VALUE_BYTES = 8192          # an extracted API value larger than this (as JSON) is dropped
BACKSTOP_S = 2.0
SNAPSHOT_VERSION = 1
_DTMF_KEYS = frozenset("0123456789*#")


class FlowSnapshotError(ValueError):
    """A snapshot that cannot be resumed with this flow (corrupt, or the flow changed under it)."""


class FlowContext(msgspec.Struct, frozen=True, kw_only=True):
    """Where the flow runs. ``variables`` may carry ``last_input``: on text channels, the message
    that opened the conversation (a ``classify`` with ``input: "last"`` reads it); the host does
    not feed that message as an event."""

    channel_id: str = ""
    channel_type: str = "web"              # voice | web | whatsapp | sms
    caller: str = ""                       # E.164 number, WhatsApp id, or "" on the web
    provider: str | None = None            # twilio | plivo | exotel | meta | None
    variables: dict[str, Any] = {}         # initial variables (override the flow's defaults)
    voice: bool | None = None              # output as speech; None: channel_type voice or web
    speech_input: bool = False             # a recogniser feeds UtteranceReceived
    can_transfer: bool | None = None       # None: a voice channel on a provider that can

    @property
    def speaks(self) -> bool:
        return self.voice if self.voice is not None else self.channel_type in ("voice", "web")

    @property
    def transfers(self) -> bool:
        if self.can_transfer is not None:
            return self.can_transfer
        return self.channel_type == "voice" and (self.provider is None
                                                 or self.provider in TRANSFER_PROVIDERS)


class _State(msgspec.Struct, kw_only=True):
    """Everything that changes while a flow runs: what ``snapshot()`` saves."""
    version: int = SNAPSHOT_VERSION
    flow: str = ""
    node: str | None = None
    done: bool = False
    end_reason: str | None = None
    attempts: int = 0              # failed tries at the current menu / value
    value_index: int = 0           # which value of a collect node is being asked for
    digits: str = ""               # DTMF digits typed so far for a collect value
    timer_id: str | None = None    # the one timer the engine waits for
    request_id: str | None = None  # the API / classifier request it waits for
    speech_id: str | None = None   # the prompt whose end starts the no-input timer
    seq: int = 0
    steps: int = 0
    now: dt.datetime | None = None
    variables: dict[str, Any] = {}


def _text(value: Any) -> str:
    """Caller input as bounded text; anything that is not a string counts as empty."""
    return value[:MAX_INPUT_CHARS] if isinstance(value, str) else ""


def _key(digit: Any) -> str | None:
    """A DTMF key, or None for anything else (events are not type-checked on construction)."""
    return digit if isinstance(digit, str) and digit in _DTMF_KEYS else None


def _utc(now: Any) -> dt.datetime | None:
    if not isinstance(now, dt.datetime):
        return None
    return now.replace(tzinfo=dt.timezone.utc) if now.tzinfo is None else now


def _playing_time_allowance(text: str) -> float:
    """A generous bound on how long a prompt takes to play (TTS speaks ~15 characters/s)."""
    return 10.0 + len(text) / 8.0


def _menu_key(text: str) -> str | None:
    """A typed or spoken menu choice: "2", " 2. ", "two"; None when it is not one key."""
    stripped = text.strip().rstrip(".)!").strip()
    if len(stripped) == 1 and stripped in _DTMF_KEYS:
        return stripped
    spoken = values.spoken_digits(stripped) if stripped else None
    return spoken if spoken is not None and len(spoken) == 1 else None


def _decode_body(body: Any) -> Any:
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            return msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError):     # not JSON, or hostile nesting
            return body
    return body


def _bounded(value: Any) -> Any:
    """An extracted value, kept only when it is small JSON (snapshots and agents get it)."""
    if isinstance(value, str):
        return value[:MAX_VALUE_BYTES]
    try:
        return value if len(msgspec.json.encode(value)) <= MAX_VALUE_BYTES else None
    except (TypeError, ValueError, OverflowError, RecursionError):
        return None


class FlowEngine:
    def __init__(self, flow: Flow, context: FlowContext | None = None):
        if not isinstance(flow, Flow):
            raise TypeError("FlowEngine takes a Flow from validate(), not "
                            f"{type(flow).__name__}")
        self.flow = flow
        self.context = context or FlowContext()
        self._tz = zoneinfo.ZoneInfo(flow.timezone) if flow.timezone else dt.timezone.utc
        self._s = _State(flow=flow.name)
        self._enter: dict[type, Callable[[Any, list], str | None]] = {
            EntryNode: lambda n, out: n.next,
            SpeakNode: self._enter_speak,
            DtmfMenuNode: self._enter_menu,
            CollectNode: self._enter_collect,
            ConditionNode: lambda n, out: conditions.choose(n, self._resolve, self._local_now()),
            ApiCallNode: self._enter_api,
            ClassifyNode: self._enter_classify,
            AgentNode: self._enter_agent,
            TransferNode: self._enter_transfer,
            SmsNode: self._enter_sms,
            EndNode: self._enter_end,
        }
        self._on_event: dict[type, Callable[[Any, Event, list], str | None]] = {
            DtmfMenuNode: self._menu_event,
            CollectNode: self._collect_event,
            ApiCallNode: self._api_event,
            ClassifyNode: self._classify_event,
        }

    # -- public surface -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._s.done

    @property
    def end_reason(self) -> str | None:
        return self._s.end_reason

    @property
    def node_id(self) -> str | None:
        return self._s.node

    @property
    def variables(self) -> dict[str, Any]:
        return dict(self._s.variables)

    def start(self, now: dt.datetime) -> list[Action]:
        """Begin at the flow's start node; ``now`` is the current time (naive means UTC)."""
        if self._s.node is not None or self._s.done:
            raise RuntimeError("this flow engine has already started")
        self._s.now = _utc(now)
        if self._s.now is None:
            raise TypeError("start(now) takes the current time as a datetime")
        try:
            initial = msgspec.json.decode(msgspec.json.encode(self.context.variables))
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise ValueError(f"initial variables must be JSON values: {exc}") from None
        ctx = self.context
        self._s.variables = {**self.flow.variables, "last_input": "", **initial,
                             "caller": ctx.caller, "channel": ctx.channel_id,
                             "channel_type": ctx.channel_type, "flow": self.flow.name}
        out: list[Action] = []
        self._run(self.flow.start, out)
        return out

    def feed(self, event: Event) -> list[Action]:
        """Apply one event; returns the actions to perform (``[]`` when the event is ignored)."""
        if not isinstance(event, Event):
            raise TypeError(f"feed() takes a flow event, not {type(event).__name__}")
        if self._s.node is None or self._s.done:
            return []
        now = _utc(event.now)
        if now is not None:
            self._s.now = now
        node = self.flow.nodes.get(self._s.node)
        out: list[Action] = []
        if isinstance(event, SpeechFinished):
            self._speech_finished(node, event, out)
            return out
        handler = self._on_event.get(type(node))
        target = handler(node, event, out) if handler else None
        if target is not None:
            self._run(target, out)
        return out

    def snapshot(self) -> dict:
        """JSON-able state (position, variables, retries, pending ids) for :meth:`restore`."""
        return msgspec.to_builtins(self._s)

    @classmethod
    def restore(cls, flow: Flow, context: FlowContext | None, snapshot: Any) -> "FlowEngine":
        """Resume from :meth:`snapshot`; :class:`FlowSnapshotError` if it does not fit ``flow``."""
        try:
            state = msgspec.convert(snapshot, _State)
        except msgspec.ValidationError as exc:
            raise FlowSnapshotError(f"corrupt flow snapshot: {exc}") from None
        if state.version != SNAPSHOT_VERSION:
            raise FlowSnapshotError(f"snapshot version {state.version} is not {SNAPSHOT_VERSION}")
        node = flow.nodes.get(state.node) if state.node is not None else None
        if state.node is not None and node is None:
            raise FlowSnapshotError(f"the flow no longer has node {state.node!r}")
        if isinstance(node, CollectNode) and not 0 <= state.value_index < len(node.values):
            raise FlowSnapshotError(f"node {state.node!r} changed: no value #{state.value_index}")
        engine = cls(flow, context)
        if node is not None and not state.done and type(node) not in engine._on_event:
            raise FlowSnapshotError(f"node {state.node!r} changed: it no longer waits for input")
        state.flow = flow.name
        engine._s = state
        return engine

    # -- running --------------------------------------------------------------------------------

    def _run(self, node_id: str | None, out: list[Action]) -> None:
        """Enter ``node_id`` and keep moving until a node waits or the flow ends."""
        s = self._s
        steps = 0
        while node_id is not None and not s.done:
            steps += 1
            s.steps += 1
            if steps > MAX_STEPS_PER_FEED or s.steps > MAX_TOTAL_STEPS:
                self._finish(End("loop"), out)
                return
            node = self.flow.nodes.get(node_id)
            if node is None:                 # only possible with a flow that skipped validate()
                self._finish(End("invalid_flow"), out)
                return
            self._leave(out)
            s.node = node_id
            node_id = self._enter[type(node)](node, out)

    def _leave(self, out: list[Action]) -> None:
        self._disarm(out)
        s = self._s
        s.attempts = s.value_index = 0
        s.digits = ""
        s.request_id = s.speech_id = None

    def _finish(self, action: Action, out: list[Action]) -> None:
        self._disarm(out)
        out.append(action)
        s = self._s
        s.done = True
        s.request_id = s.speech_id = None
        s.end_reason = action.reason if isinstance(action, End) else \
            "hand_off" if isinstance(action, HandOff) else "transfer"

    def _new_id(self, prefix: str) -> str:
        self._s.seq += 1
        return f"{prefix}{self._s.seq}"

    def _arm(self, seconds: float, out: list[Action]) -> None:
        self._disarm(out)
        self._s.timer_id = self._new_id("t")
        out.append(StartTimer(self._s.timer_id, seconds))

    def _disarm(self, out: list[Action]) -> None:
        if self._s.timer_id is not None:
            out.append(CancelTimer(self._s.timer_id))
            self._s.timer_id = None

    def _timer_is_ours(self, event: Event) -> bool:
        if isinstance(event, TimerFired) and event.timer_id == self._s.timer_id \
                and self._s.timer_id is not None:
            self._s.timer_id = None
            return True
        return False

    # -- variables ------------------------------------------------------------------------------

    def _local_now(self) -> dt.datetime:
        now = self._s.now or dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return now.astimezone(self._tz)

    def _resolve(self, path: str) -> Any:
        root, *keys = path.split(".")
        if root.startswith("now"):
            local = self._local_now()
            computed = {
                "now": local.strftime("%Y-%m-%d %H:%M"), "now_date": local.strftime("%Y-%m-%d"),
                "now_time": local.strftime("%H:%M"), "now_hour": local.hour,
                "now_minute": local.minute, "now_weekday": conditions.WEEKDAYS[local.weekday()],
            }
            if root in computed:
                return computed[root] if not keys else template.MISSING
        value = self._s.variables.get(root, template.MISSING)
        return template.lookup_path(value, keys) if keys and value is not template.MISSING \
            else value

    def _render(self, text: str) -> str:
        return template.render(text, self._resolve)

    def _set(self, name: str, value: Any) -> None:
        self._s.variables[name] = value

    # -- output ---------------------------------------------------------------------------------

    def _say(self, text: str, interruptible: bool, out: list[Action], *, track: bool) -> None:
        """Speak or send ``text`` (already rendered); ``track`` makes its end start the timer."""
        if not text:
            return
        if self.context.speaks:
            speech_id = self._new_id("s")
            out.append(Speak(text, interruptible, speech_id))
            if track:
                self._s.speech_id = speech_id
        else:
            out.append(SendText(text))

    def _prompt(self, parts: list[str], interruptible: bool, timeout_s: float,
                out: list[Action]) -> None:
        """Say a prompt (notice + question, joined) and arrange the no-input timer (voice only)."""
        self._disarm(out)
        self._s.speech_id = None
        sep = " " if self.context.speaks else "\n"
        text = sep.join(p for p in (self._render(x).strip() for x in parts) if p)
        self._say(text, interruptible, out, track=True)
        if self.context.speaks:
            # The no-input timer really starts when the prompt has been heard (SpeechFinished
            # re-arms it); until then it also allows for the prompt's playing time, so a host
            # that never reports SpeechFinished cannot leave the call waiting forever.
            allowance = _playing_time_allowance(text) if self._s.speech_id else 0.0
            self._arm(timeout_s + allowance, out)

    def _speech_finished(self, node: Node | None, event: SpeechFinished, out: list) -> None:
        if event.speech_id != self._s.speech_id or self._s.speech_id is None:
            return
        self._s.speech_id = None
        timeout = getattr(node, "timeout_s", None)
        if isinstance(node, (DtmfMenuNode, CollectNode, ClassifyNode)) and timeout:
            self._arm(timeout, out)

    # -- automatic nodes ------------------------------------------------------------------------

    def _enter_speak(self, node: SpeakNode, out: list[Action]) -> str:
        self._say(self._render(node.text), node.interruptible, out, track=False)
        return node.next

    def _enter_sms(self, node: SmsNode, out: list[Action]) -> str:
        to = self._render(node.to).strip()
        if to:
            out.append(SendSms(node.channel_id, to, self._render(node.text)))
        return node.next

    def _enter_agent(self, node: AgentNode, out: list[Action]) -> None:
        variables = self._s.variables
        if node.variables is not None:
            variables = {k: variables[k] for k in node.variables if k in variables}
        self._finish(HandOff(node.agent_id, dict(variables)), out)

    def _enter_transfer(self, node: TransferNode, out: list[Action]) -> None:
        number = self._render(node.number).strip()
        message = self._render(node.message).strip()
        if self.context.transfers and number:
            self._say(message, False, out, track=False)
            self._finish(Transfer(number), out)
        elif self.context.transfers:
            self._finish(End("transfer_failed", message or None), out)
        else:                                  # text channel (or no way to move the call)
            fallback = f"You can reach us at {number}." if number else ""
            self._finish(End("transfer", message or fallback or None), out)

    def _enter_end(self, node: EndNode, out: list[Action]) -> None:
        self._finish(End(node.reason, self._render(node.message).strip() or None), out)

    # -- dtmf_menu ------------------------------------------------------------------------------

    def _enter_menu(self, node: DtmfMenuNode, out: list[Action]) -> None:
        self._prompt([node.prompt], node.interruptible, node.timeout_s, out)

    def _menu_event(self, node: DtmfMenuNode, event: Event, out: list) -> str | None:
        if isinstance(event, DigitReceived):
            key = _key(event.digit)
            if key is None:
                return None                   # not a key at all: ignore, do not count it
        elif isinstance(event, (TextReceived, UtteranceReceived)):
            key = _menu_key(_text(event.text))
            self._set("last_input", _text(event.text).strip())
        elif self._timer_is_ours(event):
            return self._menu_retry(node, "timeout", out)
        else:
            return None
        if key is not None and key in node.options:
            self._set("last_input", key)
            return node.options[key]
        return self._menu_retry(node, "invalid", out)

    def _menu_retry(self, node: DtmfMenuNode, why: str, out: list[Action]) -> str | None:
        self._s.attempts += 1
        if self._s.attempts > node.retries:
            target = (node.timeout or node.invalid) if why == "timeout" else node.invalid
            if target is None:
                self._finish(End("no_input" if why == "timeout" else "invalid_input"), out)
            return target
        notice = node.timeout_prompt if why == "timeout" else node.invalid_prompt
        self._prompt([notice, node.prompt], node.interruptible, node.timeout_s, out)
        return None

    # -- collect --------------------------------------------------------------------------------

    def _enter_collect(self, node: CollectNode, out: list[Action]) -> None:
        self._prompt([node.values[0].prompt], node.interruptible, node.timeout_s, out)

    def _takes_utterances(self, node: CollectNode) -> bool:
        if not self.context.speaks:
            return True                        # no recogniser on text channels: treat as text
        spec = node.values[self._s.value_index]
        if not self.context.speech_input or node.mode == "dtmf":
            return False
        return not (node.mode == "auto" and spec.validation == "digits")

    def _collect_event(self, node: CollectNode, event: Event, out: list) -> str | None:
        s = self._s
        if isinstance(event, DigitReceived):
            return self._collect_digit(node, event.digit, out)
        if isinstance(event, TextReceived) or (isinstance(event, UtteranceReceived)
                                               and self._takes_utterances(node)):
            return self._submit(node, _text(event.text), out)
        if self._timer_is_ours(event):
            if s.digits:                       # keys typed then a pause: take what was typed
                return self._submit(node, s.digits, out)
            return self._collect_retry(node, out)
        return None

    def _collect_digit(self, node: CollectNode, digit: Any, out: list) -> str | None:
        s = self._s
        if digit == "#":
            return self._submit(node, s.digits, out)
        if digit == "*":                       # start the entry again
            s.digits = ""
        elif isinstance(digit, str) and len(digit) == 1 and digit.isdigit() and digit.isascii():
            s.digits += digit
        else:
            return None
        s.speech_id = None                     # typing ahead: the caller is past the prompt
        spec = node.values[s.value_index]
        if len(s.digits) >= (spec.max_length or MAX_DIGITS):
            return self._submit(node, s.digits, out)
        if self.context.speaks:
            self._arm(node.timeout_s, out)     # the inter-digit timeout
        return None

    def _submit(self, node: CollectNode, raw: str, out: list[Action]) -> str | None:
        s = self._s
        spec = node.values[s.value_index]
        s.digits = ""
        self._set("last_input", raw.strip())
        value = values.normalise(spec, raw)
        if value is None:
            return self._collect_retry(node, out)
        self._set(spec.name, value)
        s.value_index += 1
        s.attempts = 0
        if s.value_index >= len(node.values):
            return node.next
        self._prompt([node.values[s.value_index].prompt], node.interruptible, node.timeout_s,
                     out)
        return None

    def _collect_retry(self, node: CollectNode, out: list[Action]) -> str | None:
        s = self._s
        s.attempts += 1
        s.digits = ""
        if s.attempts > node.max_retries:
            if node.failure is None:
                self._finish(End("collect_failed"), out)
            return node.failure
        spec = node.values[s.value_index]
        retry = spec.retry_prompt or node.retry_prompt
        parts = [retry] if retry else ["Sorry, I didn't get that.", spec.prompt]
        self._prompt(parts, node.interruptible, node.timeout_s, out)
        return None

    # -- api_call -------------------------------------------------------------------------------

    def _enter_api(self, node: ApiCallNode, out: list[Action]) -> None:
        def url_part(path: str) -> Any:      # values inside a URL are percent-encoded
            value = self._resolve(path)
            return urllib.parse.quote(template.to_text(value), safe="")

        url = template.render(node.url, url_part)
        # One line, no outer whitespace: HTTP forbids both ("Bearer {{token}}" with no token).
        headers = {k: " ".join(self._render(v).splitlines()).strip()
                   for k, v in node.headers.items()}
        body = None
        if isinstance(node.body, str):
            body = self._render(node.body)
        elif node.body is not None:
            body = msgspec.json.encode(template.render_json(node.body, self._resolve)).decode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        self._s.request_id = self._new_id("r")
        out.append(CallApi(self._s.request_id, node.method, url, headers, body, node.timeout_s))
        self._arm(node.timeout_s + BACKSTOP_S, out)

    def _api_event(self, node: ApiCallNode, event: Event, out: list) -> str | None:
        s = self._s
        if self._timer_is_ours(event):
            s.request_id = None
            self._set("api_status", "")
            self._set("api_error", "timeout")
            return node.error
        if not isinstance(event, ApiResult) or event.request_id != s.request_id \
                or s.request_id is None:
            return None
        s.request_id = None
        self._disarm(out)
        status = event.status if isinstance(event.status, int) else 0
        self._set("api_status", str(status) if status else "")
        if event.error is not None or not 200 <= status < 300:
            error = event.error if isinstance(event.error, str) else f"HTTP {status}"
            self._set("api_error", error[:200] or "error")
            return node.error
        self._set("api_error", "")
        document = _decode_body(event.body)
        for name, path in node.extract.items():
            found = jsonpath.extract(document, jsonpath.parse(path))
            self._set(name, "" if found is template.MISSING else _bounded(found))
        return node.success

    # -- classify -------------------------------------------------------------------------------

    def _enter_classify(self, node: ClassifyNode, out: list[Action]) -> str | None:
        if node.input == "last":
            return self._classify(node, template.to_text(self._s.variables.get("last_input")),
                                  out)
        self._prompt([node.prompt], node.interruptible, node.timeout_s, out)
        return None

    def _classify(self, node: ClassifyNode, text: str, out: list[Action]) -> str | None:
        self._disarm(out)
        self._s.speech_id = None
        self._set("last_input", text)
        if node.url is None:
            return self._category(node, classifier.classify(node, text))
        self._s.request_id = self._new_id("r")
        out.append(Classify(self._s.request_id, node.url, text, node.classifier_timeout_s))
        self._arm(node.classifier_timeout_s + BACKSTOP_S, out)
        return None

    def _category(self, node: ClassifyNode, category) -> str:
        self._set("category", category.name if category else "")
        return category.next if category else node.default

    def _classify_event(self, node: ClassifyNode, event: Event, out: list) -> str | None:
        s = self._s
        if s.request_id is not None:           # waiting for the external classifier
            text = template.to_text(s.variables.get("last_input"))
            if self._timer_is_ours(event):
                s.request_id = None
                return self._category(node, classifier.classify(node, text))
            if isinstance(event, ClassifierResult) and event.request_id == s.request_id:
                s.request_id = None
                self._disarm(out)
                named = None if event.error else classifier.by_name(
                    node, event.category if isinstance(event.category, str) else None)
                return self._category(node, named or classifier.classify(node, text))
            return None
        if isinstance(event, (TextReceived, UtteranceReceived)):
            return self._classify(node, _text(event.text).strip(), out)
        if isinstance(event, DigitReceived) and _key(event.digit):
            return self._classify(node, event.digit, out)
        if self._timer_is_ours(event):
            self._set("last_input", "")
            return self._category(node, None)
        return None
