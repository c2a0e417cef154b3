"""Agent connectors through the real server: the external WebSocket agent (examples/agent_server.py
on 127.0.0.1), a dead or vanishing agent, and the HTTP text agent against a real HTTP server."""
from __future__ import annotations

import importlib.util
import pathlib

import h11
import msgspec
import trio

from fixtures_gateway import make_directory, open_session, receive_json, start_gateway
from gateway import transport
from gateway.directory import AgentInfo, ChannelInfo
from gateway.protocols import canonical
from gateway.protocols.canonical import Text

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _example_agent():
    spec = importlib.util.spec_from_file_location("agent_server", ROOT / "examples/agent_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def directory_for(kind: str, config: dict):
    return make_directory(
        extra_agents=[AgentInfo(id="ext", name="External", kind=kind, config=config)],
        extra_channels=[ChannelInfo(id="web-ext", type="web", status="active", agent_id="ext",
                                    allowed_origins=("http://localhost:8000",))])


async def test_websocket_agent_relays_both_ways(nursery, autojump_clock):
    example = _example_agent()
    listeners = await nursery.start(example.serve, "127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    server = await start_gateway(nursery, directory_for("websocket",
                                                        {"url": f"ws://127.0.0.1:{port}/"}))
    ws = await open_session(server, "/ws/agent/ext")
    assert (await receive_json(ws, "transcript")).text == "Hello from the example agent."
    await ws.send_text(canonical.encode(Text(text="ping")))
    assert (await receive_json(ws, "transcript")).text == "Agent heard: ping"
    await ws.send_text(canonical.encode(Text(text="/tone 0.5")))
    audio = bytearray()
    with trio.move_on_after(3):
        while len(audio) < 24000:
            message = await ws.receive()
            if type(message) is bytes:
                audio += message
    assert len(audio) == 24000                      # 0.5 s of 24 kHz PCM16, relayed and paced
    await ws.send_text(canonical.encode(Text(text="/bye")))
    end = await receive_json(ws, "end")
    assert end.reason == "agent said goodbye"
    server.shutdown()


async def test_dead_agent_gives_error_and_clean_end(nursery, autojump_clock):
    listeners = await transport.open_listeners("127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()                     # nobody listens
    server = await start_gateway(nursery, directory_for("websocket",
                                                        {"url": f"ws://127.0.0.1:{port}/"}))
    ws = await open_session(server, "/ws/agent/ext")
    start = trio.current_time()
    error = await receive_json(ws, "error")
    assert error.code == "agent_unavailable"
    assert (await receive_json(ws, "end")).reason == "agent_unavailable"
    try:
        await ws.receive()
    except transport.ConnectionClosed as closed:
        assert closed.code == 1000
    assert trio.current_time() - start <= server.limits.agent_connect_timeout_s + 1


async def test_hanging_agent_times_out(nursery, autojump_clock):
    silent = await transport.open_listeners("127.0.0.1", 0)   # accepts TCP, never answers
    port = silent[0].socket.getsockname()[1]
    server = await start_gateway(nursery, directory_for("websocket",
                                                        {"url": f"ws://127.0.0.1:{port}/"}))
    ws = await open_session(server, "/ws/agent/ext")
    assert (await receive_json(ws, "error")).code == "agent_unavailable"
    assert (await receive_json(ws, "end")).reason == "agent_unavailable"
    await silent[0].aclose()


async def test_agent_vanishing_mid_call_ends_session(nursery, autojump_clock):
    accepted = []

    async def flaky_agent(hs):
        agent_ws = await hs.accept()
        accepted.append(agent_ws)
        await agent_ws.receive()                    # the start message
        await trio.aclose_forcefully(agent_ws._stream)   # then the agent process "dies"

    listeners = await transport.open_listeners("127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(transport.serve, flaky_agent, listeners, server_limits())
    server = await start_gateway(nursery, directory_for("websocket",
                                                        {"url": f"ws://127.0.0.1:{port}/"}))
    ws = await open_session(server, "/ws/agent/ext")
    error = await receive_json(ws, "error")
    assert error.code == "agent_disconnected"
    assert (await receive_json(ws, "end")).reason == "agent_disconnected"


def server_limits():
    from gateway.limits import Limits
    return Limits()


async def http_agent_server(task_status=trio.TASK_STATUS_IGNORED):
    """A real HTTP/1.1 server (h11) answering POSTs like an HTTP text agent would."""
    seen = []

    async def handle(stream):
        conn = h11.Connection(h11.SERVER)
        body = b""
        with trio.move_on_after(10):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            request = msgspec.json.decode(body)
            seen.append(request)
            if request["text"] == "fail":
                status, reply, ctype = 500, b"oops", b"text/plain"
            elif request["text"] == "slow":
                await trio.sleep(3600)
            else:
                status, ctype = 200, b"application/json"
                reply = msgspec.json.encode({"text": f"HTTP agent says: {request['text']}"})
            await stream.send_all(conn.send(h11.Response(status_code=status, headers=[
                (b"content-type", ctype), (b"content-length", str(len(reply)).encode())])))
            await stream.send_all(conn.send(h11.Data(data=reply)) + conn.send(h11.EndOfMessage()))
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started((listeners[0].socket.getsockname()[1], seen))
    await trio.serve_listeners(handle, listeners)


async def test_http_agent_text_round_trip_and_failures(nursery, autojump_clock):
    port, seen = await nursery.start(http_agent_server)
    server = await start_gateway(nursery, directory_for("http",
                                                        {"url": f"http://127.0.0.1:{port}/chat"}))
    ws = await open_session(server, "/ws/agent/ext")
    await ws.send_text(canonical.encode(Text(text="hello")))
    assert (await receive_json(ws, "transcript")).text == "HTTP agent says: hello"
    assert seen[0]["text"] == "hello" and seen[0]["conversation_id"] and seen[0]["channel_id"]
    await ws.send_text(canonical.encode(Text(text="fail")))
    assert (await receive_json(ws, "error")).code == "agent_error"
    await ws.send_text(canonical.encode(Text(text="slow")))
    assert (await receive_json(ws, "error")).code == "agent_unavailable"      # deadline
    await ws.send(bytes(640))
    assert (await receive_json(ws, "error")).code == "text_only"
    await ws.send_text(canonical.encode(Text(text="still there")))
    assert (await receive_json(ws, "transcript")).text == "HTTP agent says: still there"
    await ws.aclose()
    server.shutdown()


async def test_external_agent_stalling_10s_keeps_the_session(nursery,
                                                                            autojump_clock):
    from gateway.limits import Limits
    seen = []

    async def stalling_agent(hs):
        # (No tiny receive buffer here: a zero TCP window recovers on the kernel's persist timer,
        # in real time, which the virtual clock outruns. The caller-side test covers blocking.)
        agent_ws = await hs.accept()
        await agent_ws.receive()                     # start
        await trio.sleep(10)                         # reads nothing, answers no ping for 10 s
        while True:
            message = await agent_ws.receive()
            if type(message) is str:
                seen.append(message)
                await agent_ws.send_text(b'{"type":"transcript","role":"assistant","text":"back"}')

    listeners = await transport.open_listeners("127.0.0.1", 0)
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(transport.serve, stalling_agent, listeners, Limits())
    server = await start_gateway(nursery, directory_for("websocket",
                                                        {"url": f"ws://127.0.0.1:{port}/"}),
                                 Limits(agent_queue=16))
    ws = await open_session(server, "/ws/agent/ext")
    for _ in range(600):                             # 12 s of audio while the agent stalls
        await ws.send(bytes(640))
        await trio.sleep(0.02)
    session = next(iter(server.sessions))
    assert len(session.inbox) <= 16
    await ws.send_text(canonical.encode(Text(text="still there?")))
    assert (await receive_json(ws, "transcript")).text == "back"
    assert session.stats.close_code is None
    await ws.aclose()
    server.shutdown()


async def test_http_agent_posts_the_caller_as_json(nursery):
    """Phone calls carry a caller Struct in ``start``; it must reach the agent as plain JSON."""
    from gateway.agents.http import HttpAgent
    from gateway.protocols.canonical import Caller, Start

    port, seen = await nursery.start(http_agent_server)
    agent = HttpAgent({"url": f"http://127.0.0.1:{port}/chat"}, server_limits())
    start = Start(session_id="s1", channel_id="c1", channel_type="voice",
                  caller=Caller(number="+14155550100", name="Ada"))
    import httpx
    async with httpx.AsyncClient() as client:
        reply = await agent._ask(client, start, "hi")
    assert reply.text == "HTTP agent says: hi"
    assert seen[0]["caller"] == {"number": "+14155550100", "name": "Ada"}


async def test_http_agent_honours_its_configured_timeout(nursery):
    """``config.timeout_s`` (validated by the control plane) bounds each request; missing or
    invalid values fall back to the gateway's limit."""
    import httpx

    from gateway.agents.http import HttpAgent
    from gateway.protocols.canonical import Start

    port, _ = await nursery.start(http_agent_server)
    limits = server_limits()
    agent = HttpAgent({"url": f"http://127.0.0.1:{port}/chat", "timeout_s": 0.3}, limits)
    assert agent.timeout_s == 0.3
    start = Start(session_id="s1", channel_id="c1", channel_type="web")
    async with httpx.AsyncClient() as client:
        with trio.fail_after(10):             # far below the gateway default if 0.3 were ignored
            reply = await agent._ask(client, start, "slow")
    assert reply.code == "agent_unavailable"
    for bad in (None, 0, -1, 500, "5", True):
        assert HttpAgent({"url": "http://x/", "timeout_s": bad}, limits).timeout_s == \
            limits.agent_request_timeout_s
