"""Live sessions through the real server: echo audio round trip (cross-correlation), pacing,
barge-in and marks, a stalled agent, agent-initiated end, graceful shutdown. Virtual clock."""
from __future__ import annotations

import numpy as np
import pytest
import trio

from conftest import require
from fixtures_gateway import make_directory, open_session, read_wav, receive_json, start_gateway
from gateway import agents, transport
from gateway.directory import AgentInfo, ChannelInfo
from gateway.limits import Limits
from gateway.protocols import canonical
from gateway.protocols.canonical import Clear, End, Mark, Text


def _have_resampler() -> bool:
    try:
        from gateway.audio import Resampler  # noqa: F401
    except ImportError:
        return False
    return True


def correlation(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Peak normalised cross-correlation of two signals and the lag where it peaks."""
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    c = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    i = int(np.argmax(c))
    return float(c[i] / (np.linalg.norm(a) * np.linalg.norm(b))), (i if i < n // 2 else i - n)


async def collect_audio(ws, quiet_s: float = 1.0, stop_after: float = 60.0, first_s: float = 0):
    """(audio bytes, events) until no audio arrived for ``quiet_s`` (virtual) seconds (after
    waiting up to ``first_s`` for the first audio)."""
    audio, events = bytearray(), []
    with trio.move_on_after(stop_after):
        while True:
            with trio.move_on_after(quiet_s if audio or not first_s else first_s) as quiet:
                message = await ws.receive()
            if quiet.cancelled_caught:
                break
            if type(message) is bytes:
                audio += message
            else:
                events.append(canonical.decode(message))
    return bytes(audio), events


async def send_paced(ws, pcm: bytes, frame: int = 640) -> None:
    for i in range(0, len(pcm), frame):
        await ws.send(pcm[i:i + frame])
        await trio.sleep(0.02)


async def test_echo_audio_round_trip_matches_input(nursery, autojump_clock, shared_audio):
    require(_have_resampler(), "gateway.audio.Resampler (native resampler) not built yet")
    server = await start_gateway(nursery)
    speech, rate = read_wav(shared_audio / "en_hello_16k.wav")
    reference, rate24 = read_wav(shared_audio / "en_hello_24k.wav")
    assert rate == 16000 and rate24 == 24000
    ws = await open_session(server)
    nursery.start_soon(send_paced, ws, speech + bytes(32000))      # speech, then 1 s of silence
    audio, events = await collect_audio(ws, quiet_s=2.0, first_s=30)
    got = np.frombuffer(audio, "<i2").astype(np.float64)
    ref = np.frombuffer(reference, "<i2").astype(np.float64)
    score, lag = correlation(got, ref)
    assert score >= 0.9, f"cross-correlation {score:.3f}"
    assert 0 <= lag < 24000 // 5                # the echo starts with the speech (<200 ms trim)
    transcripts = [e.text for e in events if type(e).__name__ == "Transcript"]
    assert any(t.startswith("I heard 8.") for t in transcripts), transcripts
    await ws.aclose()
    server.shutdown()


class ScriptAgent:
    """A scripted agent for session tests: plays ``script`` (bytes / events / ("wait", text)),
    and records everything it receives."""
    received: list = []
    script: list = []

    def __init__(self, config, limits):
        self.stall_s = config.get("stall_s", 0)

    async def run(self, start, inbox, outbox):
        ScriptAgent.received.append(start)
        await trio.sleep(self.stall_s)
        waiting = None

        async def read():
            async for item in inbox:
                if type(item) is not bytes:
                    ScriptAgent.received.append(item)
                    if waiting is not None and isinstance(item, Text) and item.text == waiting[0]:
                        waiting[1].set()

        async with trio.open_nursery() as n:
            n.start_soon(read)
            for step in ScriptAgent.script:
                if isinstance(step, tuple):
                    waiting = (step[1], trio.Event())
                    await waiting[1].wait()
                else:
                    await outbox.send(step)
            n.cancel_scope.deadline = trio.current_time() + 30


@pytest.fixture
def script_agent(monkeypatch):
    monkeypatch.setitem(agents.CONNECTORS, "script", ScriptAgent)
    ScriptAgent.received = []
    ScriptAgent.script = []
    return ScriptAgent


def directory_with(kind="script", config=None):
    return make_directory(
        extra_agents=[AgentInfo(id="s", name="Scripted", kind=kind, config=config or {})],
        extra_channels=[ChannelInfo(id="web-s", type="web", status="active", agent_id="s",
                                    allowed_origins=("http://localhost:8000",))])


def tone(seconds: float) -> bytes:
    t = np.arange(int(seconds * 24000)) / 24000
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


async def test_pacing_barge_in_and_marks(nursery, autojump_clock, script_agent):
    lead = 0.060
    server = await start_gateway(nursery, directory_with(), Limits(pacing_lead_s=lead))
    pcm = tone(2.0)
    script_agent.script = [pcm[i:i + 9600] for i in range(0, len(pcm), 9600)]
    script_agent.script += [Mark(name="a"), tone(2.0), Mark(name="b"), ("wait", "stop"), Clear()]
    ws = await open_session(server, "/ws/agent/s")
    received, start = 0, None
    while received < 48000 * 2.5:                       # 2.5 s of audio heard
        message = await ws.receive()
        now = trio.current_time()
        if type(message) is bytes:
            start = start if start is not None else now
            received += len(message)
            # never more than `lead` (plus the frame in hand) ahead of real time
            assert received <= ((now - start) + lead + 0.001) * 48000 + 960
    t_stop = trio.current_time()
    await ws.send_text(canonical.encode(Text(text="stop")))
    after = 0
    while True:
        message = await ws.receive()
        if type(message) is bytes:
            after += len(message)
        elif isinstance(canonical.decode(message), Clear):
            break
    assert received + after <= ((t_stop - start) + lead + 0.001) * 48000 + 960   # <= the lead
    audio, _ = await collect_audio(ws, quiet_s=1.0)
    assert audio == b""                                  # the rest was dropped
    marks = [e for e in script_agent.received if isinstance(e, Mark)]
    assert marks == [Mark(name="a"), Mark(name="b", cleared=True)]
    stats = next(iter(server.sessions)).stats
    assert stats.late_frames == 0 and stats.cleared_ms > 1000
    await ws.aclose()
    server.shutdown()


async def test_mark_without_audio_comes_back_at_once(nursery, autojump_clock, script_agent):
    server = await start_gateway(nursery, directory_with())
    script_agent.script = [Mark(name="now")]
    ws = await open_session(server, "/ws/agent/s")
    with trio.fail_after(5):
        while not any(isinstance(e, Mark) for e in script_agent.received):
            await trio.sleep(0.01)
    assert [e for e in script_agent.received if isinstance(e, Mark)] == [Mark(name="now")]
    await ws.aclose()
    server.shutdown()


async def test_stalled_agent_drops_oldest_and_session_survives(nursery, autojump_clock,
                                                               script_agent):
    limits = Limits(agent_queue=16)
    server = await start_gateway(nursery, directory_with(config={"stall_s": 10}), limits)
    ws = await open_session(server, "/ws/agent/s")
    session = None
    for i in range(500):                                 # 10 s of audio while the agent stalls
        await ws.send(bytes(640))
        await trio.sleep(0.02)
        session = session or next(iter(server.sessions))
        assert len(session.inbox) <= 16                  # bounded, whatever the caller does
    await ws.send_text(canonical.encode(Text(text="after the stall")))
    with trio.fail_after(30):
        while not any(isinstance(e, Text) for e in script_agent.received):
            await trio.sleep(0.05)
    assert session.stats.dropped_in > 400
    assert session.stats.frames_in == 500
    await ws.aclose()
    server.shutdown()


async def test_agent_end_plays_out_then_ends_session(nursery, autojump_clock, script_agent):
    server = await start_gateway(nursery, directory_with())
    script_agent.script = [tone(1.0), End(reason="goodbye")]
    ws = await open_session(server, "/ws/agent/s")
    audio, events = bytearray(), []
    with trio.fail_after(30):
        try:
            while True:
                message = await ws.receive()
                if type(message) is bytes:
                    audio += message
                else:
                    events.append(canonical.decode(message))
        except transport.ConnectionClosed as closed:
            assert closed.code == 1000
    assert len(audio) == 48000                           # all of it played before the end
    assert events[-1] == End(reason="goodbye")


async def test_graceful_shutdown_ends_every_session(autojump_clock):
    results = []
    async with trio.open_nursery() as outer:
        server = await start_gateway(outer, limits=Limits(drain_timeout_s=3))
        clients = [await open_session(server) for _ in range(5)]

        async def client(ws):
            end = await receive_json(ws, "end")
            try:
                await ws.receive()
            except transport.ConnectionClosed as closed:
                results.append((end.reason, closed.code))

        async with trio.open_nursery() as inner:
            for ws in clients:
                inner.start_soon(client, ws)
            await trio.sleep(0.1)
            server.shutdown()
        # serve() returns: the outer nursery can finish without cancelling anything
    assert results == [("shutdown", 1001)] * 5
    assert not server.sessions
    with pytest.raises(transport.HandshakeError):
        await open_session(server)


async def test_mark_comes_back_when_played_not_when_sent(nursery, autojump_clock, script_agent):
    server = await start_gateway(nursery, directory_with())
    script_agent.script = [tone(1.0), Mark(name="end-of-tone"), ("wait", "never")]
    ws = await open_session(server, "/ws/agent/s")
    first = None
    got = 0
    while got < 48000:
        message = await ws.receive()
        if type(message) is bytes:
            first = first if first is not None else trio.current_time()
            got += len(message)
    assert not any(isinstance(e, Mark) for e in script_agent.received)   # sent, not yet heard
    with trio.fail_after(5):
        while not any(isinstance(e, Mark) for e in script_agent.received):
            await trio.sleep(0.001)
    assert trio.current_time() - first >= 1.0 - 0.001        # acknowledged at its play time
    assert [e for e in script_agent.received if isinstance(e, Mark)] == [Mark(name="end-of-tone")]
    await ws.aclose()
    server.shutdown()


async def test_clear_after_the_last_frame_was_sent_still_clears_its_mark(nursery, autojump_clock,
                                                                          script_agent):
    server = await start_gateway(nursery, directory_with())
    script_agent.script = [tone(0.5), Mark(name="m"), ("wait", "stop"), Clear()]
    ws = await open_session(server, "/ws/agent/s")
    got = 0
    while got < 24000:                                 # everything sent (lead ahead of play)
        message = await ws.receive()
        if type(message) is bytes:
            got += len(message)
    await ws.send_text(canonical.encode(Text(text="stop")))   # arrives before the last 40 ms play
    await receive_json(ws, "clear")
    with trio.fail_after(5):
        while not any(isinstance(e, Mark) for e in script_agent.received):
            await trio.sleep(0.001)
    assert [e for e in script_agent.received if isinstance(e, Mark)] == [Mark(name="m", cleared=True)]
    await ws.aclose()
    server.shutdown()


class ProviderStyleLeg:
    """A caller leg shaped like a phone provider's: marks are forwarded to the caller side and
    acknowledged by it later (``mark`` returns False; the ack comes up through ``receive``).
    The template the phone media-stream legs follow."""
    kind = "test-provider"
    down_frame_bytes = 960

    def __init__(self, ws):
        self.ws = ws

    async def receive(self):
        while True:
            message = await self.ws.receive()
            if type(message) is bytes:
                return message
            return canonical.decode(message)

    async def send_audio(self, pcm24):
        await self.ws.send(pcm24)

    async def send_event(self, event):
        await self.ws.send_text(canonical.encode(event))

    async def clear(self):
        await self.ws.send_text(canonical.encode(Clear()))

    async def mark(self, name):
        await self.ws.send_text(canonical.encode(Mark(name=name)))
        return False                     # the provider tells us when it was played

    async def close(self, code, reason):
        await self.ws.close(code, reason)

    async def keepalive(self):
        await self.ws.keepalive(60)


async def test_a_new_route_and_leg_plug_into_server_and_session(nursery, autojump_clock,
                                                                script_agent):
    from gateway.protocols.canonical import Start
    from gateway.session import Session

    async def media_route(server, hs, rest):
        provider, channel_id = rest.split("/", 1)
        if provider != "fake":
            raise Refused(404, "unknown provider")
        info, agent = await server.agent_for("agent", "s")
        ws = await hs.accept()
        start = Start(session_id="call-1", channel_id=channel_id, channel_type="voice")
        await server.run_session(Session("call-1", ProviderStyleLeg(ws), agent, start,
                                         server.limits))

    from gateway.server import Refused
    server = await start_gateway(nursery, directory_with())
    server.add_route("/media/", media_route)
    script_agent.script = [tone(0.2), Mark(name="p1"), ("wait", "never")]
    ws = await transport.connect(f"ws://127.0.0.1:{server.port}/media/fake/ch-1")
    got, mark = 0, None
    while mark is None:
        message = await ws.receive()
        if type(message) is bytes:
            got += len(message)
        else:
            mark = canonical.decode(message)
    assert got == 9600 and mark == Mark(name="p1")
    await trio.sleep(1)
    assert not any(isinstance(e, Mark) for e in script_agent.received)   # not played yet
    await ws.send_text(canonical.encode(Mark(name="p1")))                 # "provider" acks
    with trio.fail_after(5):
        while not any(isinstance(e, Mark) for e in script_agent.received):
            await trio.sleep(0.01)
    start = script_agent.received[0]
    assert start.channel_id == "ch-1" and start.channel_type == "voice"
    with pytest.raises(transport.HandshakeError) as info:
        await transport.connect(f"ws://127.0.0.1:{server.port}/media/other/ch-1")
    assert info.value.status == 404
    await ws.aclose()
    server.shutdown()


class BurstyAgent:
    """Sends 40 ms of audio every 30 ms: faster than real time, with the buffer running empty
    between chunks (how streaming TTS often arrives)."""

    def __init__(self, config, limits):
        pass

    async def run(self, start, inbox, outbox):
        chunk = tone(0.040)
        for _ in range(100):
            await outbox.send(chunk)
            await trio.sleep(0.030)
        async for _ in inbox:
            pass


async def test_pacer_sends_two_frames_per_wake_keeping_the_lead_between_40_and_60_ms(
        nursery, autojump_clock, script_agent):
    """Agent audio far ahead of real time: the pacer wakes once per two frames (half the
    wake-ups), and the caller always holds between lead - one frame and lead of audio."""
    lead, frame_s = 0.060, 0.020
    server = await start_gateway(nursery, directory_with(), Limits(pacing_lead_s=lead))
    script_agent.script = [tone(2.0)]
    ws = await open_session(server, "/ws/agent/s")
    received, start, arrivals = 0, None, []
    while received < 48000 * 1.5:
        message = await ws.receive()
        if type(message) is bytes:
            now = trio.current_time()
            start = start if start is not None else now
            received += len(message)
            arrivals.append(now)
            ahead = received / 48000 - (now - start)           # audio held by the caller
            assert ahead <= lead + frame_s + 0.001
            if now - start > lead:                              # after the first lead's worth
                assert ahead >= lead - frame_s - 0.001
    wakes = len(set(round(t, 6) for t in arrivals if t - start > lead))
    frames = sum(1 for t in arrivals if t - start > lead)
    assert frames >= 60 and wakes <= frames // 2 + 1
    stats = next(iter(server.sessions)).stats
    assert stats.held_out >= wakes                   # each of those waited for its slot


async def test_lead_stays_bounded_when_the_agent_is_bursty(nursery, autojump_clock, monkeypatch):
    monkeypatch.setitem(agents.CONNECTORS, "script", BurstyAgent)
    lead = 0.060
    server = await start_gateway(nursery, directory_with(), Limits(pacing_lead_s=lead))
    ws = await open_session(server, "/ws/agent/s")
    received, start = 0, None
    while received < 100 * 1920:
        message = await ws.receive()
        if type(message) is bytes:
            now = trio.current_time()
            start = start if start is not None else now
            received += len(message)
            assert received <= ((now - start) + lead + 0.001) * 48000 + 960
    assert next(iter(server.sessions)).stats.late_frames == 0
    await ws.aclose()
    server.shutdown()
