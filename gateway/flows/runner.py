"""The flow runner: a :class:`FlowEngine` inside a live voice/web session, as an agent connector.

A session runs ``connector.run(start, inbox, outbox)`` for its agent side; for a channel whose
target is a flow, that connector is a :class:`FlowRunner`. It turns what the caller sends (keys,
typed text, mark acknowledgements) into flow events, performs the engine's actions, and when the
flow hands over it runs the chosen agent's connector on the *same* inbox and outbox, so the
session (caller leg, pacing, stats) simply continues with the agent:

=============  ===================================================================================
Speak          text-to-speech (:mod:`gateway.tts`) as 24 kHz audio towards the caller, preceded by a
               ``transcript`` event and followed by a mark; the mark coming back (played, or
               ``cleared`` by a barge-in) is the engine's SpeechFinished. No TTS, or TTS failing:
               the transcript alone (the mark then comes back at once). A key or typed text while
               only interruptible prompts are queued clears them first.
SendText       a ``transcript`` event (text channels do not reach this host; kept for safety).
Start/Cancel   :class:`~gateway.flows.host.FlowTimers`.
CallApi        :func:`gateway.flows.host.call_api` in a task; the ApiResult is fed back.
Classify       :func:`gateway.flows.host.classify` likewise.
SendSms        ``services.send_sms(channel_id, to, text)`` (the durable outbox) in a task; the flow
               goes on; without the seam it is logged and skipped.
HandOff        queued speech is played, then ``services.agent(agent_id)`` gives the connector; its
               ``start`` is the session's with the flow variables merged into ``variables`` (the
               gateway's own keys — call/stream ids, provider, session — win) and ``flow_variables``
               holding the collected ones alone.
Transfer       queued speech is played, then ``services.transfer(start, number)`` (provider REST
               in the control plane: Twilio ``<Dial>``, Plivo transfer); without the seam, or when it
               fails, an apology and End("transfer_failed").
End            its message is spoken, queued speech played, then ``end`` with the flow's reason.
=============  ===================================================================================

Everything towards the caller goes through one writer task (:class:`_Speaker`) so audio, marks,
clears and events keep their order; it keeps at most ``AHEAD_S`` of audio queued ahead of real
time, so a long prompt never overflows the session's bounded playout buffer. Waits are bounded:
speech before a terminal action by its playing time, the agent lookup and the transfer by their
own deadlines, and an idle flow by the session's idle timeout (the inbox closes).

Caller audio is not recognised (no speech recogniser is configured: ``speech_input`` is False, so
validation keeps speech-only nodes away and menus/collect use the keypad or typed text).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import msgspec
import trio

from gateway.protocols.canonical import Clear, Dtmf, End as EndEvent, Mark, Start, Text, Transcript

from . import host
from .engine import FlowContext, FlowEngine
from .events import (ApiResult, CallApi, CancelTimer, Classify, ClassifierResult, DigitReceived,
                     End, Event, HandOff, SendSms, SendText, Speak, SpeechFinished, StartTimer,
                     TextReceived, Transfer)
from .model import Flow

log = logging.getLogger("converse.flows")

MARK_PREFIX = "flow:"
CHUNK_BYTES = 4800                 # 100 ms of 24 kHz PCM16 per outbox item
AHEAD_S = 10.0                     # audio queued ahead of real time, at most
BYTES_PER_S = 48_000.0
AGENT_LOOKUP_S = 5.0
TRANSFER_S = 15.0                  # the provider's own REST deadline is 10 s
SMS_S = 10.0
SEND_ALL_S = 180.0                 # synthesising + sending what is queued (2000 characters ~ 130 s)
SPEECH_SLACK_S = 5.0               # beyond a prompt's playing time, when waiting for its mark
# Keys of the session's start that a flow variable may not overwrite in the agent's start.
PROTECTED = frozenset({"provider", "call_id", "stream_id", "from", "to", "agent_id", "flow_id",
                       "origin", "user_agent", "session_id"})

AgentLookup = Callable[[str], Awaitable[Any]]          # agent_id -> connector or None
TransferFn = Callable[[Start, str], Awaitable[None]]   # raises on failure
SmsFn = Callable[[str, str, str], Awaitable[None]]     # channel_id, to, text


@dataclass
class FlowServices:
    """What a runner needs from its surroundings (all optional but ``agent``)."""
    agent: AgentLookup
    tts: Any = None                        # gateway.tts backend (CachedTts), or None
    voice: str | None = None               # TTS voice override
    transfer: TransferFn | None = None
    send_sms: SmsFn | None = None
    http_client: Callable[[], Any] = host.client


class _Gone(Exception):
    """The caller left (the inbox closed)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def agent_start(start: Start, agent_id: str, variables: dict[str, Any]) -> Start:
    """The agent's ``start``: the session's, with the flow's variables merged in (see module doc)."""
    merged = {k: v for k, v in variables.items() if k not in PROTECTED}
    merged.update({k: v for k, v in start.variables.items() if k in PROTECTED})
    merged["agent_id"] = agent_id
    merged["flow_variables"] = dict(variables)
    return msgspec.structs.replace(start, variables=merged)


class _Speaker:
    """The single writer towards the caller: speech (synthesised here, in order), events, clears.
    ``barge_in()`` drops queued speech and clears what the caller has buffered."""

    def __init__(self, outbox, services: FlowServices):
        self._outbox = outbox
        self._services = services
        self._queue: deque[tuple] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._abort = False
        self._queued_until = 0.0            # when the audio sent so far will have played
        self.idle = trio.Event()
        self.idle.set()

    def say(self, speech_id: str, text: str) -> None:
        self._put(("say", speech_id, text))

    def event(self, event) -> None:
        self._put(("event", event))

    def _put(self, item: tuple) -> None:
        self._queue.append(item)
        if self.idle.is_set():
            self.idle = trio.Event()
        self._lot.unpark()

    def barge_in(self) -> list[str]:
        """Drop queued speech (returns its ids: never to be heard) and the one being sent."""
        dropped = [item[1] for item in self._queue if item[0] == "say"]
        self._queue = deque(item for item in self._queue if item[0] != "say")
        self._abort = True
        self._put(("clear",))
        return dropped

    async def run(self) -> None:
        while True:
            if not self._queue:
                self.idle.set()
                await self._lot.park()
                continue
            item = self._queue.popleft()
            if item[0] == "say":
                self._abort = False
                await self._say(item[1], item[2])
            elif item[0] == "event":
                await self._outbox.send(item[1])
            else:
                await self._outbox.send(Clear())
                self._queued_until = trio.current_time()

    async def _say(self, speech_id: str, text: str) -> None:
        await self._outbox.send(Transcript(role="assistant", text=text[:4096]))
        pcm = await self._synthesize(text)
        for i in range(0, len(pcm), CHUNK_BYTES):
            if self._abort:
                break
            chunk = pcm[i:i + CHUNK_BYTES]
            now = trio.current_time()
            self._queued_until = max(self._queued_until, now)
            if self._queued_until - now > AHEAD_S:
                await trio.sleep_until(self._queued_until - AHEAD_S)
                if self._abort:
                    break
            await self._outbox.send(chunk)
            self._queued_until += len(chunk) / BYTES_PER_S
        await self._outbox.send(Mark(name=MARK_PREFIX + speech_id))

    async def _synthesize(self, text: str) -> bytes:
        tts = self._services.tts
        if tts is None or not tts.available:
            return b""
        from gateway.tts import TtsError
        try:
            return await tts.synthesize(text, self._services.voice)
        except TtsError as exc:
            log.warning("flow prompt not spoken (transcript only): %s", exc)
            return b""


class _Tagged:
    """FlowTimers' channel: its TimerFired events as (event, None) pairs."""

    def __init__(self, send):
        self._send = send

    async def send(self, event) -> None:
        await self._send.send((event, None))


class _Inbox:
    """The agent's inbox after a hand-off: caller input the flow read but did not use, then the
    session's inbox."""

    def __init__(self, first: list, rest):
        self._first = deque(first)
        self._rest = rest.__aiter__()

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._first:
            return self._first.popleft()
        return await self._rest.__anext__()


class FlowRunner:
    """Agent connector running ``flow`` (from ``validate()``), then whatever it hands over to."""

    def __init__(self, flow: Flow, services: FlowServices, *, flow_id: str = ""):
        self.flow = flow
        self.flow_id = flow_id
        self.services = services
        self.engine: FlowEngine | None = None
        self.handed_to: str | None = None          # agent id after a HandOff
        self.outcome: str | None = None            # "hand_off" | "transfer" | end reason | "gone"

    async def run(self, start: Start, inbox, outbox) -> None:
        context = FlowContext(
            channel_id=start.channel_id, channel_type=start.channel_type,
            caller=(start.caller.number or "") if start.caller else "",
            provider=start.variables.get("provider") if start.channel_type == "voice" else None,
            speech_input=False,
            can_transfer=None if self.services.transfer is not None else False)
        self.engine = FlowEngine(self.flow, context)
        self._start = start
        tts = self.services.tts
        if start.channel_type == "voice" and (tts is None or not tts.available):
            log.warning("flow %s on a voice call but no text-to-speech on this gateway: the "
                        "caller hears no prompts (install espeak-ng or configure CONVERSE_TTS_*)",
                        self.flow_id)
        terminal = None
        try:
            terminal = await self._run_flow(inbox, outbox)
        except* _Gone:              # raised inside the nursery: it arrives in an ExceptionGroup
            self.outcome = "gone"
        if isinstance(terminal, HandOff):
            await self._hand_off(terminal, start, inbox, outbox)

    # -- the flow part ----------------------------------------------------------------------
    async def _run_flow(self, inbox, outbox):
        """Run the engine until a terminal action; HandOff is returned for :meth:`run` (the
        agent must run outside this nursery, which reads the inbox)."""
        engine = self.engine
        send, receive = trio.open_memory_channel[tuple](64)
        self._pending: dict[str, bool] = {}        # speech id -> interruptible, until heard
        self._leftover: list = []                  # caller input the flow did not use
        self._in_hand = None                       # the item the pump is delivering
        speaker = _Speaker(outbox, self.services)
        async with self.services.http_client() as http, trio.open_nursery() as nursery:
            self._nursery, self._http, self._events, self._speaker = nursery, http, send, speaker
            self._timers = host.FlowTimers(nursery, _Tagged(send))
            nursery.start_soon(self._pump, inbox, send)
            nursery.start_soon(speaker.run)
            terminal = await self._perform(engine.start(_now()))
            while terminal is None:
                event, _ = await receive.receive()
                if event is None:
                    raise _Gone
                terminal = await self._perform(self._feed(event))
            self._timers.cancel_all()
            terminal = await self._finish(terminal, receive)
            nursery.cancel_scope.cancel()
        self._keep_unread(receive)
        return terminal

    def _keep_unread(self, receive) -> None:
        """Caller input read from the inbox but not used by the flow goes to the agent."""
        while True:
            try:
                _, raw = receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if raw is not None:
                self._leftover.append(raw)
        if self._in_hand is not None:
            self._leftover.append(self._in_hand)

    async def _pump(self, inbox, send) -> None:
        """Caller items -> (flow event, the item) pairs; (None, None) when the caller is gone.
        Audio is not recognised (dropped while the flow runs)."""
        async for item in inbox:
            if isinstance(item, Dtmf):
                event = DigitReceived(item.digit, now=_now())
            elif isinstance(item, Text):
                event = TextReceived(item.text, now=_now())
            elif isinstance(item, Mark) and item.name.startswith(MARK_PREFIX):
                event, item = SpeechFinished(item.name[len(MARK_PREFIX):]), None
            elif isinstance(item, EndEvent):
                break
            else:
                continue
            self._in_hand = item
            await send.send((event, item))
            self._in_hand = None
        await send.send((None, None))

    def _feed(self, event: Event) -> list:
        if isinstance(event, SpeechFinished):
            self._pending.pop(event.speech_id, None)
            return self.engine.feed(event)
        actions = []
        if isinstance(event, (DigitReceived, TextReceived)) and self._pending \
                and all(self._pending.values()):
            for speech_id in self._speaker.barge_in():        # never to be heard
                self._pending.pop(speech_id, None)
                actions += self.engine.feed(SpeechFinished(speech_id))
        return actions + self.engine.feed(event)

    async def _perform(self, actions: list):
        """Perform non-terminal actions in order; return the terminal one, if any."""
        for action in actions:
            if isinstance(action, Speak):
                self._pending[action.speech_id] = action.interruptible
                self._speaker.say(action.speech_id, action.text)
            elif isinstance(action, SendText):
                self._speaker.event(Transcript(role="assistant", text=action.text[:4096]))
            elif isinstance(action, StartTimer):
                self._timers.start(action.timer_id, action.seconds)
            elif isinstance(action, CancelTimer):
                self._timers.cancel(action.timer_id)
            elif isinstance(action, (CallApi, Classify)):
                self._nursery.start_soon(self._request, action)
            elif isinstance(action, SendSms):
                self._nursery.start_soon(self._send_sms, action)
            elif isinstance(action, (HandOff, Transfer, End)):
                return action
        return None

    async def _request(self, action) -> None:
        if isinstance(action, CallApi):
            result: ApiResult | ClassifierResult = await host.call_api(self._http, action)
        else:
            result = await host.classify(self._http, action)
        await self._events.send((result, None))

    async def _send_sms(self, action: SendSms) -> None:
        if self.services.send_sms is None:
            log.warning("flow sms node skipped: no SMS outbox on this gateway")
            return
        try:
            with trio.fail_after(SMS_S):
                await self.services.send_sms(action.channel_id, action.to, action.text)
        except Exception as exc:                      # the flow goes on; say why in the log
            log.warning("flow sms via %s not queued: %s", action.channel_id,
                        type(exc).__name__)

    # -- terminal actions -------------------------------------------------------------------
    async def _finish(self, terminal, receive):
        """Say End's message, play queued speech, then perform Transfer/End (HandOff returns)."""
        if isinstance(terminal, End) and terminal.message:
            self._pending["end"] = False
            self._speaker.say("end", terminal.message)
        await self._drain(receive)
        if isinstance(terminal, Transfer):
            terminal = await self._transfer(terminal, receive)
        if isinstance(terminal, End):
            self.outcome = terminal.reason
            self._speaker.event(EndEvent(reason=terminal.reason[:256]))
            with trio.move_on_after(SPEECH_SLACK_S):
                await self._speaker.idle.wait()
        return terminal

    async def _drain(self, receive) -> None:
        """Wait until every queued prompt has been heard (or cleared): the speaker sends for at
        most a long prompt's time, then at most ``AHEAD_S`` of audio is still to play."""
        with trio.move_on_after(SEND_ALL_S):
            await self._speaker.idle.wait()
        with trio.move_on_after(AHEAD_S + SPEECH_SLACK_S):
            while self._pending:
                event, raw = await receive.receive()
                if event is None:
                    raise _Gone
                if isinstance(event, SpeechFinished):
                    self._pending.pop(event.speech_id, None)
                elif raw is not None:
                    self._leftover.append(raw)

    async def _transfer(self, action: Transfer, receive):
        start = self._start
        try:
            if self.services.transfer is None:
                raise RuntimeError("no transfer seam on this gateway")
            with trio.fail_after(TRANSFER_S):
                await self.services.transfer(start, action.number)
        except Exception as exc:
            log.warning("flow transfer failed: %s", exc)
            self._pending["transfer"] = False
            self._speaker.say("transfer", "Sorry, we could not transfer your call. Goodbye.")
            await self._drain(receive)
            return End("transfer_failed")
        self.outcome = "transfer"
        return End("transferred")

    async def _hand_off(self, action: HandOff, start: Start, inbox, outbox) -> None:
        """Run the agent on the session's inbox/outbox; a missing agent ends the call politely."""
        agent = None
        try:
            with trio.fail_after(AGENT_LOOKUP_S):
                agent = await self.services.agent(action.agent_id)
        except Exception as exc:
            log.warning("flow hand-off to %s: agent lookup failed (%s)", action.agent_id,
                        type(exc).__name__)
        if agent is None:
            self.outcome = "agent_unavailable"
            await outbox.send(Transcript(role="assistant",
                                         text="Sorry, nobody can take your call right now."))
            await outbox.send(EndEvent(reason="agent_unavailable"))
            return
        self.outcome = "hand_off"
        self.handed_to = action.agent_id
        log.info("flow %s handed the session to agent %s", self.flow_id, action.agent_id)
        await agent.run(agent_start(start, action.agent_id, action.variables),
                        _Inbox(self._leftover, inbox), outbox)


def install(server, *, tts=None, voice: str | None = None, transfer: TransferFn | None = None,
            send_sms: SmsFn | None = None) -> None:
    """Let ``server`` (a GatewayServer) run flows: every ``/ws/flow/{id}`` widget session and every
    phone call on a channel whose target is a flow gets a :class:`FlowRunner`."""
    from gateway.agents import UnknownAgentKind, make_agent
    from gateway.directory import AgentInfo
    from gateway.server import Refused

    from .validate import FlowValidationError, validate

    async def agent(agent_id: str):
        info = await server.directory.get_agent(agent_id)
        if info is None:
            return None
        try:
            return make_agent(info, server.limits)
        except UnknownAgentKind:
            return None

    services = FlowServices(agent=agent, tts=tts, voice=voice, transfer=transfer,
                            send_sms=send_sms)

    async def flow_runner(flow_id: str):
        with trio.fail_after(server.limits.auth_timeout_s):
            info = await server.directory.get_flow(flow_id)
        if info is None:
            raise Refused(404, "unknown flow")
        try:
            flow = validate(dict(info.definition, name=info.name))
        except FlowValidationError as exc:
            log.warning("flow %s cannot run: %s", flow_id, exc)
            raise Refused(503, "the flow is not valid; fix it in the control plane") from None
        return AgentInfo(id=info.id, name=info.name, kind="flow"), \
            FlowRunner(flow, services, flow_id=info.id)

    server.flow_runner = flow_runner
