"""Shared by the flow runner / e2e tests: a recording external agent on 127.0.0.1, a tiny TTS
backend for virtual-clock tests (no subprocess), and the example flows."""
from __future__ import annotations

import json
import pathlib

import trio

from gateway import transport
from gateway.limits import Limits
from gateway.protocols import canonical
from gateway.protocols.canonical import Start, Text, Transcript

ROOT = pathlib.Path(__file__).resolve().parent.parent


def example_flow(name: str) -> dict:
    return json.loads((ROOT / "examples" / "flows" / f"{name}.json").read_text())


class RecordingAgent:
    """An external WebSocket agent: records each session's ``start`` and the events it receives,
    greets with "support agent here" and echoes text as "agent heard: ..."."""

    def __init__(self):
        self.starts: list[Start] = []
        self.events: list = []
        self.started = trio.Event()
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def serve(self, port: int = 0, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await transport.open_listeners("127.0.0.1", port)
        self.port = listeners[0].socket.getsockname()[1]
        await transport.serve(self._handle, listeners, Limits(), task_status=task_status)

    async def _handle(self, hs: transport.Handshake) -> None:
        ws = await hs.accept()
        try:
            while True:
                message = await ws.receive()
                if type(message) is bytes:
                    continue
                event = canonical.decode(message)
                if isinstance(event, Start):
                    self.starts.append(event)
                    self.started.set()
                    await ws.send_text(canonical.encode(
                        Transcript(role="assistant", text="support agent here")))
                    continue
                self.events.append(event)
                if isinstance(event, Text):
                    await ws.send_text(canonical.encode(
                        Transcript(role="assistant", text=f"agent heard: {event.text}")))
        except transport.ConnectionClosed:
            pass


class ToneTts:
    """A TTS backend for tests: 0.5 s of a constant non-zero sample per prompt (no subprocess, so
    it is safe on the virtual clock). ``fail`` makes it raise TtsError."""

    name = "tone"
    available = True

    def __init__(self, seconds: float = 0.5, fail: bool = False):
        self.seconds = seconds
        self.fail = fail
        self.texts: list[str] = []

    async def synthesize(self, text: str, voice=None) -> bytes:
        from gateway.tts import TtsError
        self.texts.append(text)
        if self.fail:
            raise TtsError("test backend down")
        return b"\x00\x10" * int(24000 * self.seconds)
