"""The phone media route and leg against a real in-process gateway (StaticDirectory, 127.0.0.1),
with
the simulator's provider messages (control.simulate.Wire) and no control plane: stream tokens,
a second start, the start deadline (virtual clock), gap concealment, Exotel URL credentials,
the stream-auth helpers."""
from __future__ import annotations

import base64
import json

import pytest
import trio

from control.simulate import CallResult, CallSpec, Wire, _stream
from gateway import media, streamauth, transport
from gateway.directory import AgentInfo, ChannelInfo, StaticDirectory
from gateway.limits import Limits
from gateway.server import GatewayServer

SECRET = b"phone-leg-test-secret"


def _directory():
    agents = [AgentInfo(id="echo", name="echo", kind="echo", config={"mode": "stream"})]
    channels = [ChannelInfo(id=f"{p}1", type="voice", provider=p, status="active",
                            agent_id="echo") for p in ("twilio", "plivo", "exotel")]
    channels.append(ChannelInfo(id="off", type="voice", provider="twilio", status="inactive",
                                agent_id="echo"))
    return StaticDirectory(channels=channels, agents=agents)


async def _gateway(nursery, limits=None) -> GatewayServer:
    server = GatewayServer(_directory(), SECRET, limits or Limits())
    media.install(server)
    await nursery.start(server.serve, "127.0.0.1", 0)
    return server


def _url(server, provider, channel, query=""):
    return f"ws://127.0.0.1:{server.port}/media/{provider}/{channel}{query}"


def _params(provider: str, call_id: str) -> dict:
    token = streamauth.issue_stream_token(SECRET, provider, f"{provider}1", call_id)
    return {"token": streamauth.plivo_escape(token) if provider == "plivo" else token}


async def _closed_code(ws) -> int:
    with trio.fail_after(10):
        try:
            while True:
                await ws.receive()
        except transport.ConnectionClosed as closed:
            return closed.code


def _tone(seconds: float) -> bytes:
    import numpy as np
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * 300 * t) * 6000).astype("<i2").tobytes()


@pytest.mark.parametrize("provider", ["twilio", "plivo"])
async def test_stream_echo_and_token_checks(nursery, provider):
    server = await _gateway(nursery)
    spec = CallSpec(provider=provider, channel_id=f"{provider}1", pcm8k=_tone(0.6),
                    control_url="", tail_s=0.3)
    result = CallResult(call_id="call-ok")
    ws = await transport.connect(_url(server, provider, f"{provider}1"))
    await _stream(spec, ws, Wire(provider, "call-ok", _params(provider, "call-ok"), spec, {}),
                  result)
    await ws.aclose()
    assert len(result.heard) > 0.5 * 16000 and any(result.heard)

    # a token for another call, a forged one, none: closed with 1008 after start
    for params in (_params(provider, "other-call"), {"token": "abc.def"}, {}):
        ws = await transport.connect(_url(server, provider, f"{provider}1"))
        await ws.send_many(Wire(provider, "call-x", params, spec, {}).opening())
        assert await _closed_code(ws) == 1008
    # the same token twice: the second stream is refused (replay)
    params = _params(provider, "call-twice")
    for expected in (None, 1008):
        ws = await transport.connect(_url(server, provider, f"{provider}1"))
        await ws.send_many(Wire(provider, "call-twice", params, spec, {}).opening())
        if expected is None:
            with trio.move_on_after(0.3):
                assert await _closed_code(ws) is None
            await ws.aclose()
        else:
            assert await _closed_code(ws) == expected


async def test_second_start_is_rejected(nursery):
    server = await _gateway(nursery)
    spec = CallSpec(provider="twilio", channel_id="twilio1", pcm8k=b"", control_url="")
    wire = Wire("twilio", "call-2", _params("twilio", "call-2"), spec, {})
    ws = await transport.connect(_url(server, "twilio", "twilio1"))
    opening = wire.opening()
    await ws.send_many(opening)
    await ws.send(opening[1])                       # start again on a live stream
    assert await _closed_code(ws) == 1008


async def test_refused_before_upgrade(nursery):
    server = await _gateway(nursery)
    for path, status in (("/media/twilio/nope", 404), ("/media/skype/twilio1", 404),
                         ("/media/plivo/twilio1", 404), ("/media/twilio/off", 403),
                         ("/media/exotel/exotel1", 403), ("/media/exotel/exotel1?key=wrong", 403)):
        with pytest.raises(transport.HandshakeError) as refused:
            await transport.connect(f"ws://127.0.0.1:{server.port}{path}")
        assert refused.value.status == status, path


async def test_start_deadline(nursery, autojump_clock):
    server = await _gateway(nursery, Limits(start_timeout_s=3.0))
    ws = await transport.connect(_url(server, "twilio", "twilio1"))
    await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    t0 = trio.current_time()
    assert await _closed_code(ws) == 1008
    assert 3.0 <= trio.current_time() - t0 < 4.0


async def test_twilio_gap_is_concealed(nursery):
    """Twilio drops 3 frames (timestamps jump by 80 ms): the agent gets 3 concealment frames, so
    its timeline stays the call's; the counters say so."""
    server = await _gateway(nursery)
    sessions = []
    orig = server.run_session

    async def capture(session):
        sessions.append(session)
        return await orig(session)
    server.run_session = capture
    spec = CallSpec(provider="twilio", channel_id="twilio1", pcm8k=b"", control_url="")
    wire = Wire("twilio", "call-gap", _params("twilio", "call-gap"), spec, {})
    ws = await transport.connect(_url(server, "twilio", "twilio1"))
    await ws.send_many(wire.opening())
    frame = _tone(0.02)
    for t_ms in (0, 20, 40, 120, 140):               # 60, 80, 100 never arrive
        await ws.send(wire.media(frame, t_ms))
    await ws.send(wire.stop())
    await _closed_code(ws)
    with trio.fail_after(5):
        while not sessions or sessions[0].stats.end_reason == "":
            await trio.sleep(0.01)
    stats = sessions[0].stats
    assert (stats.frames_in, stats.gaps_in, stats.concealed_frames) == (8, 1, 3)


async def test_exotel_url_credentials(nursery):
    """Exotel: the stream token from the HTTPS answer (?token=), or the channel media key as ?key=
    or as the password of Basic auth (wss://user:KEY@host, what Exotel sends)."""
    server = await _gateway(nursery)
    key = streamauth.exotel_media_key(SECRET, "exotel1")
    token = streamauth.issue_stream_token(SECRET, "exotel", "exotel1", "CA-ex")
    basic = "Basic " + base64.b64encode(f"converse:{key}".encode()).decode()
    spec = CallSpec(provider="exotel", channel_id="exotel1", pcm8k=_tone(0.4), control_url="",
                    tail_s=0.5)
    ways = ((f"?token={token}", {}), (f"?key={key}", {}), ("", {"Authorization": basic}))
    for query, headers in ways:
        ws = await transport.connect(_url(server, "exotel", "exotel1", query), headers)
        result = CallResult(call_id="CA-ex")
        await _stream(spec, ws, Wire("exotel", "CA-ex", {}, spec, {}), result)
        await ws.aclose()
        sizes = [n for _, n in result.media_messages]
        assert sizes and all(n % 320 == 0 and 3200 <= n <= 100_000 for n in sizes), sizes
    # the token is bound to the call named in start
    token = streamauth.issue_stream_token(SECRET, "exotel", "exotel1", "CA-other")
    ws = await transport.connect(_url(server, "exotel", "exotel1", f"?token={token}"))
    await ws.send_many(Wire("exotel", "CA-ex2", {}, spec, {}).opening())
    assert await _closed_code(ws) == 1008


def test_streamauth_helpers():
    token = streamauth.issue_stream_token(SECRET, "plivo", "ch1", "uuid-1")
    escaped = streamauth.plivo_escape(token)
    assert escaped.isalnum() and streamauth.plivo_unescape(escaped) == token
    with pytest.raises(streamauth.StreamAuthError):
        streamauth.plivo_unescape("abcZ")
    claims = streamauth.verify_stream_token(SECRET, token, "plivo", "ch1", "uuid-1")
    for args in (("twilio", "ch1", "uuid-1"), ("plivo", "ch2", "uuid-1"),
                 ("plivo", "ch1", "uuid-2")):
        with pytest.raises(streamauth.StreamAuthError):
            streamauth.verify_stream_token(SECRET, token, *args)
    guard = streamauth.ReplayGuard(max_entries=2)
    guard.use(claims, 0)
    with pytest.raises(streamauth.StreamAuthError):
        guard.use(claims, 0)
    key = streamauth.exotel_media_key(SECRET, "ch1")
    streamauth.check_media_key(SECRET, "ch1", key)
    for bad in (None, "", key[:-1] + "x", streamauth.exotel_media_key(SECRET, "ch2")):
        with pytest.raises(streamauth.StreamAuthError):
            streamauth.check_media_key(SECRET, "ch1", bad)
    import hashlib
    streamauth.check_media_key(SECRET, "ch1", "pinned", hashlib.sha256(b"pinned").hexdigest())
    assert streamauth.key_from_basic_auth("Basic " + base64.b64encode(b"u:pw").decode()) == "pw"
    assert streamauth.key_from_basic_auth("Basic !!!") is None
    assert streamauth.key_from_basic_auth("Bearer x") is None


async def test_agent_end_closes_the_stream_and_hangup_ends_the_agent(nursery):
    """The agent's ``end`` closes the provider stream (1000: Twilio then runs out of TwiML and
    hangs up); a provider ``stop`` ends the agent's leg with an ``end``."""
    from gateway.protocols import canonical
    from gateway.protocols.canonical import End
    seen = []

    async def agent(hs):
        ws = await hs.accept()
        start = canonical.decode(await ws.receive())
        seen.append(start)
        try:
            if start.variables["call_id"] == "call-agent-ends":
                await ws.send_text(canonical.encode(End(reason="goodbye")))
            while True:
                message = await ws.receive()
                if type(message) is str:
                    seen.append(canonical.decode(message))
        except transport.ConnectionClosed:
            pass
    listeners = await transport.open_listeners("127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(transport.serve, agent, listeners, Limits())
    directory = _directory()
    directory.agents["ext"] = AgentInfo(id="ext", name="ext", kind="websocket",
                                        config={"url": f"ws://127.0.0.1:{port}/"})
    directory.channels["twilio1"] = ChannelInfo(id="twilio1", type="voice", provider="twilio",
                                                status="active", agent_id="ext")
    server = GatewayServer(directory, SECRET, Limits())
    media.install(server)
    await nursery.start(server.serve, "127.0.0.1", 0)
    spec = CallSpec(provider="twilio", channel_id="twilio1", pcm8k=b"", control_url="")

    ws = await transport.connect(_url(server, "twilio", "twilio1"))
    await ws.send_many(Wire("twilio", "call-agent-ends", _params("twilio", "call-agent-ends"),
                            spec, {}).opening())
    assert await _closed_code(ws) == 1000

    ws = await transport.connect(_url(server, "twilio", "twilio1"))
    wire = Wire("twilio", "call-hangup", _params("twilio", "call-hangup"), spec, {})
    await ws.send_many(wire.opening())
    await ws.send(wire.media(_tone(0.02), 0))
    await ws.send(wire.stop())
    await _closed_code(ws)
    with trio.fail_after(5):
        while not any(isinstance(e, End) for e in seen):
            await trio.sleep(0.01)
    assert seen[-1] == End(reason="caller hung up")


async def test_unreachable_agent_ends_the_call_cleanly(nursery):
    """The agent connection (opened while the provider sends start) fails: the call is closed
    normally, promptly, and the gateway keeps serving."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]               # nothing listens here once closed
    directory = _directory()
    directory.agents["dead"] = AgentInfo(id="dead", name="dead", kind="websocket",
                                         config={"url": f"ws://127.0.0.1:{dead}/"})
    directory.channels["twilio1"] = ChannelInfo(id="twilio1", type="voice", provider="twilio",
                                                status="active", agent_id="dead")
    server = GatewayServer(directory, SECRET, Limits())
    media.install(server)
    await nursery.start(server.serve, "127.0.0.1", 0)
    spec = CallSpec(provider="twilio", channel_id="twilio1", pcm8k=b"", control_url="")
    ws = await transport.connect(_url(server, "twilio", "twilio1"))
    await ws.send_many(Wire("twilio", "call-dead", _params("twilio", "call-dead"), spec,
                            {}).opening())
    assert await _closed_code(ws) == 1000
    with trio.fail_after(5):
        while server.sessions:
            await trio.sleep(0.01)


@pytest.mark.parametrize("garbage, code", [
    ("{not json", 1007),
    ('{"event":"media","media":{"payload":"AAAA"}, "sequenceNumber":"x"}', 1007),
    ('{"event":"mark"}', 1007),
    ("[1, 2]", 1003),
    ('{"event":"dtmf","dtmf":{"digit":"Q"}}', 1007),
])
async def test_garbage_after_start_closes_with_the_codec_code(nursery, garbage, code):
    server = await _gateway(nursery)
    spec = CallSpec(provider="twilio", channel_id="twilio1", pcm8k=b"", control_url="")
    wire = Wire("twilio", "call-bad", _params("twilio", "call-bad"), spec, {})
    ws = await transport.connect(_url(server, "twilio", "twilio1"))
    await ws.send_many(wire.opening() + [wire.media(_tone(0.02), 0), garbage])
    assert await _closed_code(ws) == code
    # an undecodable payload in a well-formed message is counted and skipped, not fatal
    ws = await transport.connect(_url(server, "twilio", "twilio1"))
    wire = Wire("twilio", "call-bad2", _params("twilio", "call-bad2"), spec, {})
    bad_payload = wire.media(_tone(0.02), 0).replace('"payload":"', '"payload":"!!')
    await ws.send_many(wire.opening() + [bad_payload, wire.media(_tone(0.02), 20)])
    with trio.move_on_after(0.3):
        assert await _closed_code(ws) is None
    await ws.aclose()


@pytest.mark.parametrize("provider", ["twilio", "plivo"])
async def test_mark_pending_at_the_provider_comes_back_cleared_once(nursery, provider):
    """A mark the provider has not played yet when the agent clears: the agent gets it back
    once, ``cleared: true`` — although Twilio echoes it on clear (swallowed) and Plivo never
    acks it (synthesised)."""
    from gateway.protocols import canonical
    from gateway.protocols.canonical import Clear, Mark
    marks = []

    async def agent(hs):
        ws = await hs.accept()
        await ws.receive()                                       # start
        await ws.send(b"\x10\x00" * 2400)                        # 100 ms at 24 kHz
        await ws.send_text(canonical.encode(Mark(name="m")))
        await trio.sleep(0.5)                                     # the provider holds the mark
        await ws.send_text(canonical.encode(Clear()))
        try:
            while True:
                message = await ws.receive()
                if type(message) is str and isinstance(e := canonical.decode(message), Mark):
                    marks.append(e)
        except transport.ConnectionClosed:
            pass
    listeners = await transport.open_listeners("127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(transport.serve, agent, listeners, Limits())
    directory = _directory()
    directory.agents["ext"] = AgentInfo(id="ext", name="ext", kind="websocket",
                                        config={"url": f"ws://127.0.0.1:{port}/"})
    directory.channels[f"{provider}1"] = ChannelInfo(
        id=f"{provider}1", type="voice", provider=provider, status="active", agent_id="ext")
    server = GatewayServer(directory, SECRET, Limits())
    media.install(server)
    await nursery.start(server.serve, "127.0.0.1", 0)
    spec = CallSpec(provider=provider, channel_id=f"{provider}1", pcm8k=b"", control_url="")
    wire = Wire(provider, "call-m", _params(provider, "call-m"), spec, {})
    ws = await transport.connect(_url(server, provider, f"{provider}1"))
    await ws.send_many(wire.opening())
    seen = []
    with trio.fail_after(10):
        while "clear" not in seen:
            event = json.loads(await ws.receive())["event"]
            seen.append({"clearAudio": "clear", "checkpoint": "mark", "playAudio": "media"}
                        .get(event, event))
    assert "mark" in seen and seen.index("mark") < seen.index("clear")
    if provider == "twilio":
        await ws.send(wire.mark("m"))               # Twilio echoes pending marks on clear
    else:
        await ws.send(wire.cleared())               # Plivo acks the clear, not the checkpoint
    await ws.send(wire.media(_tone(0.02), 0))
    await trio.sleep(0.3)
    await ws.send(wire.stop() or wire.media(_tone(0.02), 20))
    await ws.aclose()
    with trio.fail_after(5):
        while not marks:
            await trio.sleep(0.01)
    await trio.sleep(0.2)
    assert marks == [Mark(name="m", cleared=True)]
