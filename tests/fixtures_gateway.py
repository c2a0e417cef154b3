"""Fixtures for gateway-level tests: a real GatewayServer on 127.0.0.1 (ephemeral port) over a
StaticDirectory, and a real WebSocket client (our transport's). Registered in conftest's
``pytest_plugins``."""
from __future__ import annotations

import wave

import pytest
import trio

from gateway import tokens, transport
from gateway.protocols import canonical
from gateway.directory import AgentInfo, ChannelInfo, FlowInfo, StaticDirectory
from gateway.limits import Limits
from gateway.server import GatewayServer

SECRET = b"test-secret-for-gateway-tests"
ORIGIN = "http://localhost:8000"


def make_directory(extra_agents=(), extra_channels=()) -> StaticDirectory:
    agents = [AgentInfo(id="echo", name="Echo", kind="echo"),
              AgentInfo(id="stream", name="Stream echo", kind="echo", config={"mode": "stream"}),
              AgentInfo(id="off", name="Echo behind an inactive channel", kind="echo"),
              *extra_agents]
    channels = [ChannelInfo(id="web1", type="web", status="active", agent_id="echo",
                            allowed_origins=(ORIGIN,)),
                ChannelInfo(id="web-stream", type="web", status="active", agent_id="stream",
                            allowed_origins=(ORIGIN,)),
                ChannelInfo(id="web-off", type="web", status="inactive", agent_id="off",
                            allowed_origins=(ORIGIN,)),
                ChannelInfo(id="web-flow", type="web", status="active", flow_id="f1",
                            allowed_origins=(ORIGIN,)),
                *extra_channels]
    flows = [FlowInfo(id="f1", name="Flow")]
    return StaticDirectory(channels=channels, agents=agents, flows=flows)


def web_token(channel: str, target: str, ttl: float = 60.0, now: float | None = None) -> str:
    return tokens.issue(SECRET, "web", ttl, now=now, ch=channel, target=target)


async def start_gateway(nursery, directory=None, limits: Limits | None = None,
                        **kwargs) -> GatewayServer:
    server = GatewayServer(directory or make_directory(), SECRET, limits or Limits(), **kwargs)
    await nursery.start(server.serve, "127.0.0.1", 0)
    return server


def url(server: GatewayServer, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def open_session(server, path="/ws/agent/echo", origin=ORIGIN, **kw) -> transport.WebSocket:
    headers = {"Origin": origin} if origin else {}
    return await transport.connect(url(server, path), headers, **kw)


async def receive_json(ws, want: str | None = None, limit: int = 10_000):
    """The next JSON event (of type ``want`` if given), skipping audio frames."""
    for _ in range(limit):
        message = await ws.receive()
        if type(message) is str:
            event = canonical.decode(message)
            if want is None or type(event).__name__.lower() == want:
                return event
    raise AssertionError(f"no {want} event")


def read_wav(path) -> tuple[bytes, int]:
    with wave.open(str(path)) as w:
        return w.readframes(w.getnframes()), w.getframerate()


@pytest.fixture
async def gateway(nursery):
    server = await start_gateway(nursery)
    yield server
    server.shutdown()
