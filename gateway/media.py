"""``/media/{provider}/{channel_id}``: provider media streams (Twilio, Plivo, Exotel) into sessions.

``install(server)`` registers the route. Per connection, one deadline per phase:

1. before the upgrade (``limits.auth_timeout_s``): the provider is known, the channel exists, is a
   voice channel of that provider and active (else 404/403 with a reason); Exotel's URL
   credential (stream token or per-channel media key) is checked here too;
2. upgrade, and at once start connecting the agent (:class:`Preconnect`) while waiting for the
   provider's ``start``;
3. ``start`` within ``limits.start_timeout_s`` (1008 otherwise); its stream token (Twilio
   ``customParameters.token``, Plivo ``extra_headers`` token, Exotel URL) must be valid, for this
   channel, provider and call, and unused (1008 otherwise);
4. the session runs with a :class:`~gateway.legs.phone.PhoneLeg` until the provider stops, the
   socket closes or the agent ends.

A second ``start`` is the codec's business (close 1008).
"""
from __future__ import annotations

import logging
import secrets
import time

import trio

from gateway import streamauth
from gateway.agents.websocket import WebSocketAgent
from gateway.directory import ChannelInfo
from gateway.legs.phone import PhoneLeg
from gateway.metrics import SessionStats
from gateway.protocols import (
    CODECS, MediaFormat, ProtocolErrorEvent, StreamClosed, StreamStarted, StreamStopped,
)
from gateway.protocols.canonical import Caller, Start
from gateway.server import GatewayServer, Refused
from gateway.session import Session
from gateway.transport import ConnectionClosed, Handshake, WebSocket

log = logging.getLogger("converse.media")

PREFIX = "/media/"
# Per-provider pacing lead towards the caller: what a barge-in can lose at most. Exotel plays
# 3.2 KB chunks, so it holds one chunk plus this.
EXOTEL_LEAD_S = 0.020


def install(server: GatewayServer) -> None:
    server.add_route(PREFIX, media_route)
    server.stream_replays = streamauth.ReplayGuard()


def make_codec(provider: str, channel: ChannelInfo):
    cls = CODECS[provider]
    if provider == "plivo":
        return cls(default_format=MediaFormat("mulaw", 8000))
    if provider == "exotel":
        rate = int((channel.media or {}).get("sample_rate", 8000))
        rate = rate if rate in (8000, 16000, 24000) else 8000
        return cls(default_format=MediaFormat("l16", rate))
    return cls()


async def media_route(server: GatewayServer, hs: Handshake, rest: str) -> None:
    provider, _, channel_id = rest.partition("/")
    if provider not in CODECS or not channel_id or "/" in channel_id:
        raise Refused(404, "no such media endpoint")
    with trio.fail_after(server.limits.auth_timeout_s):
        channel = await server.directory.get_channel(channel_id)
    if channel is None or channel.type != "voice" or channel.provider != provider:
        raise Refused(404, f"no {provider} voice channel {channel_id}")
    # An Exotel channel goes active on its applet's first authenticated fetch; this node's
    # directory may not have seen that yet, but the stream token says the control plane did.
    fresh_exotel = provider == "exotel" and channel.status == "setup" and "token" in hs.query
    if channel.status != "active" and not fresh_exotel:
        raise Refused(403, f"channel is {channel.status}, not active")
    url_claims = _exotel_url_auth(server, hs, channel) if provider == "exotel" else None
    kind, target = ("agent", channel.agent_id) if channel.agent_id else ("flow", channel.flow_id)
    agent_info, agent = await server.agent_for(kind, target)
    ws = await hs.accept()
    codec = make_codec(provider, channel)
    async with trio.open_nursery() as nursery:
        pre = Preconnect(agent, server.limits)
        nursery.start_soon(pre.connect)
        try:
            started = await _wait_start(server, ws, codec)
            _check_stream_token(server, provider, channel, started, url_claims)
        except _Reject as rej:
            pre.cancel()
            await ws.close(rej.code, rej.reason)
            log.info("%s stream on %s refused: %s", provider, channel_id, rej.reason)
            return
        except BaseException:
            pre.cancel()
            raise
        stats = SessionStats(provider)
        leg = PhoneLeg(ws, codec, stats, server.limits.ping_interval_s)
        limits = server.limits
        if provider == "exotel":
            limits = limits.replace(pacing_lead_s=EXOTEL_LEAD_S)
        start = _canonical_start(channel, agent_info.id, kind, target, started)
        session = Session(start.session_id, leg, pre.agent(), start, limits, stats)
        await server.run_session(session)


class _Reject(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _exotel_url_auth(server: GatewayServer, hs: Handshake, channel: ChannelInfo) -> dict | None:
    """Exotel puts its credential in the URL: our stream token (``?token=``, from the HTTPS
    endpoint its applet fetched), or the channel's media key (``?key=`` or Basic auth) when the
    applet is configured with this wss URL directly. Refused(403) before the upgrade otherwise."""
    token = hs.query.get("token")
    try:
        if token is not None:
            return streamauth.verify_stream_token(server.token_secret, token, "exotel",
                                                  channel.id, None)
        key = hs.query.get("key") or streamauth.key_from_basic_auth(hs.header("Authorization"))
        streamauth.check_media_key(server.token_secret, channel.id, key, channel.media_key_sha256)
        return {}
    except streamauth.StreamAuthError as exc:
        raise Refused(403, f"stream credential rejected: {exc}") from None


async def _wait_start(server: GatewayServer, ws: WebSocket, codec) -> StreamStarted:
    """Read until the provider's ``start`` (1008 after ``limits.start_timeout_s``)."""
    with trio.move_on_after(server.limits.start_timeout_s):
        while True:
            try:
                message = await ws.receive()
            except ConnectionClosed:
                codec.receive(None)
                raise _Reject(1000, "closed before start") from None
            for event in codec.receive(message):
                if type(event) is StreamStarted:
                    return event
                if type(event) is ProtocolErrorEvent and event.fatal:
                    raise _Reject(event.code, event.reason)
                if type(event) in (StreamStopped, StreamClosed):
                    raise _Reject(1000, "stopped before start")
    raise _Reject(1008, "no start message in time")


def _check_stream_token(server, provider: str, channel: ChannelInfo, started: StreamStarted,
                        url_claims: dict | None) -> None:
    secret = server.token_secret
    try:
        if provider == "exotel":
            claims = url_claims
            if claims and claims.get("call") not in (None, "", started.call_id):
                raise streamauth.StreamAuthError("stream token is for another call")
        else:
            token = started.custom_parameters.get(streamauth.TOKEN_PARAM)
            if provider == "plivo" and token:
                token = streamauth.plivo_unescape(token)
            claims = streamauth.verify_stream_token(secret, token, provider, channel.id,
                                                    started.call_id)
        if claims:
            server.stream_replays.use(claims, time.time())
    except streamauth.StreamAuthError as exc:
        raise _Reject(1008, f"stream token rejected: {exc}") from None


def _canonical_start(channel: ChannelInfo, agent_id: str, kind: str, target: str,
                     started: StreamStarted) -> Start:
    params = started.custom_parameters
    number = started.from_number or params.get("from") or params.get("From")
    to = started.to_number or params.get("to") or params.get("To")
    variables = {"provider": channel.provider, "call_id": started.call_id,
                 "stream_id": started.stream_id, "from": number, "to": to, "agent_id": agent_id}
    if kind == "flow":
        variables["flow_id"] = target
    return Start(session_id=secrets.token_hex(8), channel_id=channel.id, channel_type="voice",
                 caller=Caller(number=(number or "")[:256] or None), variables=variables)


class Preconnect:
    """Connects an external WebSocket agent while the provider is still sending ``start``, so the
    first media frame does not wait for the agent's TCP + WebSocket handshake. Other agent kinds
    have nothing to open in advance and are passed through."""

    def __init__(self, agent, limits):
        self._agent = agent
        self._limits = limits
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self._ws: WebSocket | None = None
        self._error: Exception | None = None

    async def connect(self) -> None:
        if type(self._agent) is not WebSocketAgent or not isinstance(self._agent.url, str) \
                or not self._agent.url.startswith(("ws://", "wss://")):
            self._done.set()
            return
        from gateway import transport
        with self._scope:
            try:
                self._ws = await transport.connect(self._agent.url, self._agent.headers,
                                                   timeout=self._limits.agent_connect_timeout_s,
                                                   limits=self._limits)
            except transport.HandshakeError as exc:
                self._error = exc
        self._done.set()

    def cancel(self) -> None:
        self._scope.cancel()
        if self._ws is not None:
            ws, self._ws = self._ws, None
            trio.lowlevel.spawn_system_task(_quiet_close, ws)

    def agent(self):
        if type(self._agent) is not WebSocketAgent:
            return self._agent
        return _PreconnectedAgent(self._agent, self)


async def _quiet_close(ws: WebSocket) -> None:
    with trio.move_on_after(2):
        await ws.aclose(1000, "call not started")


class _PreconnectedAgent:
    """A WebSocketAgent whose connection is (being) opened by :class:`Preconnect`."""

    def __init__(self, agent: WebSocketAgent, pre: Preconnect):
        self.agent = agent
        self.pre = pre

    async def run(self, start, inbox, outbox) -> None:
        with trio.fail_after(self.agent.limits.agent_connect_timeout_s + 1):
            await self.pre._done.wait()
        ws = self.pre._ws
        if self.pre._error is not None:
            log.warning("agent %s unreachable: %s", self.agent.url.split("?")[0], self.pre._error)
            await self.agent._fail(outbox, "agent_unavailable", "the agent could not be reached")
            return
        if ws is None:
            await self.agent.run(start, inbox, outbox)    # not a WebSocket URL: its own path
            return
        await _run_connected(self.agent, ws, start, inbox, outbox)


async def _run_connected(agent: WebSocketAgent, ws, start, inbox, outbox) -> None:
    """``WebSocketAgent.run`` after its connect step (same relay, same failure handling)."""
    from gateway import transport
    from gateway.protocols import canonical
    agent._lost = None
    try:
        await ws.send_text(canonical.encode(start))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent._to_agent, ws, inbox, nursery.cancel_scope)
            nursery.start_soon(agent._from_agent, ws, outbox, nursery.cancel_scope)
            nursery.start_soon(agent._keepalive, ws)
    except transport.ConnectionClosed as closed:
        agent._lost = closed
    finally:
        with trio.CancelScope(shield=True):
            await ws.aclose(1000, "session ended")
    if agent._lost is not None and agent._lost.code not in (1000, 1001):
        await agent._fail(outbox, "agent_disconnected",
                          f"the agent connection was lost ({agent._lost.code})")
