"""RELIABILITY 1 for the agent side's other codec: the HTTP text agent's reply parser. Whatever an
HTTP agent answers (any bytes, any content type, hostile nesting), the reply is text or "no text"
(an ``agent_error`` for the caller), never an exception; and through a real session on 127.0.0.1
a hostile reply costs one error event while the conversation goes on. (The canonical codec that
WebSocket agents speak is fuzzed in test_protocols_canonical.py.)"""
from __future__ import annotations

import h11
import httpx
import msgspec
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures_gateway import make_directory, open_session, receive_json, start_gateway
from gateway.agents.http import _reply_text
from gateway.directory import AgentInfo, ChannelInfo
from gateway.protocols import canonical
from gateway.protocols.canonical import Text

FUZZ = settings(max_examples=1000, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
HOSTILE = {"nested-list": b"[" * 100_000, "nested-object": b'{"a":' * 100_000,
           "deep-but-closed": b"[" * 5000 + b"]" * 5000, "huge-number": b"1e999999",
           "lone-surrogate": b'{"text": "\\ud800"}', "not-utf8": b"\xff\xfe{"}


def _response(body: bytes, ctype: str) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": ctype})


def _text_or_none(response: httpx.Response) -> None:
    reply = _reply_text(response)
    assert reply is None or isinstance(reply, str)


def test_hostile_json_replies_are_no_text_not_exceptions():
    for name, body in HOSTILE.items():
        _text_or_none(_response(body, "application/json"))


@FUZZ
@given(body=st.binary(max_size=300),
       ctype=st.sampled_from(["application/json", "application/json; charset=utf-8",
                              "text/plain", "text/plain; charset=bogus", "", "application/xml"]))
def test_fuzz_any_body_any_content_type(body, ctype):
    _text_or_none(_response(body, ctype))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["text", "reply", "x"]) | st.text(max_size=4), inner, max_size=3),
    max_leaves=10)


@FUZZ
@given(doc=JSONISH, depth=st.integers(0, 3000))
def test_fuzz_json_shapes_and_depths(doc, depth):
    body = b"[" * depth + msgspec.json.encode(doc) + b"]" * depth
    _text_or_none(_response(body, "application/json"))


async def _hostile_agent(task_status=trio.TASK_STATUS_IGNORED):
    """An HTTP agent on 127.0.0.1 answering "evil" with 100,000 open brackets, else JSON text."""
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
            text = msgspec.json.decode(body)["text"]
            reply = HOSTILE["nested-list"] if text == "evil" else msgspec.json.encode(
                {"text": f"ok: {text}"})
            await stream.send_all(conn.send(h11.Response(status_code=200, headers=[
                (b"content-type", b"application/json"),
                (b"content-length", str(len(reply)).encode())])))
            await stream.send_all(conn.send(h11.Data(data=reply)) + conn.send(h11.EndOfMessage()))
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def test_hostile_reply_is_an_error_event_and_the_session_goes_on(nursery, autojump_clock):
    port = await nursery.start(_hostile_agent)
    directory = make_directory(
        extra_agents=[AgentInfo(id="ext", name="HTTP", kind="http",
                                config={"url": f"http://127.0.0.1:{port}/chat"})],
        extra_channels=[ChannelInfo(id="web-ext", type="web", status="active", agent_id="ext",
                                    allowed_origins=("http://localhost:8000",))])
    server = await start_gateway(nursery, directory)
    ws = await open_session(server, "/ws/agent/ext")
    with trio.fail_after(60):
        await ws.send_text(canonical.encode(Text(text="evil")))
        assert (await receive_json(ws, "error")).code == "agent_error"
        await ws.send_text(canonical.encode(Text(text="still there?")))
        assert (await receive_json(ws, "transcript")).text == "ok: still there?"
    await ws.aclose()
    server.shutdown()
