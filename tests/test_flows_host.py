"""The host-side helpers against a real HTTP server on 127.0.0.1 (slow, 500, good JSON, huge,
redirect), an engine driven end to end through them, and the Trio timers on the virtual clock."""
import datetime as dt
import functools
import json

import pytest
import trio

from gateway.flows import (CallApi, CancelTimer, Classify, End, FlowContext, FlowEngine,
                           HandOff, StartTimer, TimerFired, validate)
from gateway.flows.host import MAX_RESPONSE_BYTES, FlowTimers, call_api, classify, client

NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)


async def _respond(stream, status: int, body: bytes, extra: str = "") -> None:
    head = (f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode()
    await stream.send_all(head + body)


async def _handle(stream) -> None:
    """A deliberately small HTTP/1.1 server: one request per connection, routed by path."""
    async with stream:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        while len(body) < int(headers.get("content-length", 0)):
            body += await stream.receive_some(65536)
        path = target.split("?")[0]
        if path == "/json":
            await _respond(stream, 200, b'{"customer": {"name": "Ada", "tier": "gold"}}')
        elif path == "/500":
            await _respond(stream, 500, b'{"error": "boom"}')
        elif path == "/slow":
            await trio.sleep_forever()
        elif path == "/big":
            await _respond(stream, 200, b"x" * (MAX_RESPONSE_BYTES + 1))
        elif path == "/redirect":
            await _respond(stream, 302, b"", "Location: http://127.0.0.1:9/json\r\n")
        elif path == "/echo":
            echo = {"method": method, "target": target, "headers": headers,
                    "body": body.decode()}
            await _respond(stream, 200, json.dumps(echo).encode())
        elif path == "/classify":
            text = json.loads(body)["text"]
            answer = {"category": "billing" if "bill" in text else "tech"}
            await _respond(stream, 200, json.dumps(answer).encode())
        elif path == "/classify-garbage":
            await _respond(stream, 200, b"[1, 2]")
        elif path == "/classify-deep":
            await _respond(stream, 200, b"[" * 100_000 + b"]" * 100_000)
        else:
            await _respond(stream, 404, b"{}")


@pytest.fixture
async def base(nursery):
    listeners = await nursery.start(functools.partial(trio.serve_tcp, _handle, 0,
                                                      host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def api(request_id, url, method="GET", body=None, headers=None, timeout_s=2.0):
    return CallApi(request_id, method, url, headers or {}, body, timeout_s)


async def test_call_api_outcomes(base):
    async with client() as http:
        good = await call_api(http, api("r1", f"{base}/json"))
        assert good.status == 200 and json.loads(good.body)["customer"]["name"] == "Ada"
        bad = await call_api(http, api("r2", f"{base}/500"))
        assert (bad.status, bad.error) == (500, None)
        slow = await call_api(http, api("r3", f"{base}/slow", timeout_s=0.3))
        assert (slow.status, slow.error) == (0, "timeout")
        big = await call_api(http, api("r4", f"{base}/big"))
        assert big.error == "response too large"
        moved = await call_api(http, api("r5", f"{base}/redirect"))
        assert moved.status == 302                       # not followed
        refused = await call_api(http, api("r6", "http://127.0.0.1:9/json", timeout_s=1))
        assert refused.status == 0 and refused.error
        garbage = await call_api(http, api("r7", "http://[::1"))
        assert garbage.error


async def test_call_api_sends_what_the_engine_rendered(base):
    async with client() as http:
        result = await call_api(http, api("r1", f"{base}/echo?q=a%20b", "POST", '{"a": 1}',
                                          {"X-Key": "k", "Content-Type": "application/json"}))
    echo = json.loads(result.body)
    assert echo["method"] == "POST" and echo["target"] == "/echo?q=a%20b"
    assert echo["headers"]["x-key"] == "k" and echo["body"] == '{"a": 1}'


async def test_classify_outcomes(base):
    async with client() as http:
        ok = await classify(http, Classify("c1", f"{base}/classify", "my bill", 2.0))
        assert ok.category == "billing" and ok.error is None
        for url in (f"{base}/classify-garbage", f"{base}/classify-deep", f"{base}/500",
                    f"{base}/slow"):
            failed = await classify(http, Classify("c2", url, "x", 0.3))
            assert failed.category is None and failed.error


def lookup_flow(url: str):
    return validate({
        "name": "lookup", "start": "entry",
        "nodes": {
            "entry": {"type": "entry", "next": "call"},
            "call": {"type": "api_call", "url": url + "?phone={{caller}}", "timeout_s": 0.5,
                     "extract": {"who": "$.customer.name", "tier": "$.customer.tier"},
                     "success": "agent", "error": "sorry"},
            "agent": {"type": "agent", "agent_id": "a"},
            "sorry": {"type": "end", "message": "Lookup failed ({{api_error}} {{api_status}})"},
        }})


async def run_until_done(engine: FlowEngine, http) -> list:
    """A minimal text host: perform CallApi actions and feed the results back."""
    actions = engine.start(NOW)
    seen = list(actions)
    while not engine.done:
        (request,) = [a for a in actions if isinstance(a, CallApi)]
        actions = engine.feed(await call_api(http, request))
        seen += actions
    return seen


@pytest.mark.parametrize("path,expected", [
    ("/json", HandOff), ("/500", "Lookup failed (HTTP 500 500)"),
    ("/slow", "Lookup failed (timeout )"),
])
async def test_api_call_flow_end_to_end(base, path, expected):
    engine = FlowEngine(lookup_flow(base + path),
                        FlowContext(channel_type="whatsapp", caller="+447700900123"))
    async with client() as http:
        actions = await run_until_done(engine, http)
    if expected is HandOff:
        assert actions[-1].variables["who"] == "Ada" and actions[-1].variables["tier"] == "gold"
    else:
        assert actions[-1] == End("completed", expected)


async def test_timers_fire_once_and_cancel(autojump_clock):
    send, receive = trio.open_memory_channel(4)
    async with trio.open_nursery() as nursery:
        timers = FlowTimers(nursery, send)
        timers.start("t1", 5)
        timers.start("t2", 3)
        timers.start("t3", 1)
        timers.cancel("t3")
        timers.cancel("nope")
        start = trio.current_time()
        assert await receive.receive() == TimerFired("t2")
        assert trio.current_time() - start == pytest.approx(3)     # virtual clock
        timers.start("t1", 10)                                      # restart replaces
        assert timers.pending == 1
        assert await receive.receive() == TimerFired("t1")
        assert trio.current_time() - start == pytest.approx(13)
        timers.start("t4", 1)
        timers.cancel_all()
        assert timers.pending == 0
    with pytest.raises(trio.WouldBlock):
        receive.receive_nowait()


async def test_a_voice_menu_times_out_through_real_timers(autojump_clock):
    flow = validate({"name": "m", "start": "e", "nodes": {
        "e": {"type": "entry", "next": "menu"},
        "menu": {"type": "dtmf_menu", "prompt": "Press 1", "options": {"1": "x"}, "retries": 0,
                 "timeout_s": 4},
        "x": {"type": "end"}}})
    engine = FlowEngine(flow, FlowContext(channel_type="voice", provider="twilio"))
    send, receive = trio.open_memory_channel(4)
    async with trio.open_nursery() as nursery:
        timers = FlowTimers(nursery, send)

        def perform(actions):
            for action in actions:
                if isinstance(action, StartTimer):
                    timers.start(action.timer_id, action.seconds)
                elif isinstance(action, CancelTimer):
                    timers.cancel(action.timer_id)

        perform(engine.start(NOW))
        while not engine.done:
            perform(engine.feed(await receive.receive()))
    assert engine.end_reason == "no_input"
    # the menu's allowance timer, then 4 s after SpeechFinished... which this host never sends:
    # the allowance alone ended the wait (the no-input path still works without it).
