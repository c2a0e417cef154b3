"""The web widget's leg: the canonical protocol as-is over a browser WebSocket.

Binary up = PCM16LE mono 16 kHz (any even length), binary down = PCM16LE mono 24 kHz, JSON text
frames both ways. Bad input (odd byte count, malformed JSON, unknown type) is answered with an
``error`` event naming the problem and the session goes on.
"""
from __future__ import annotations

from gateway.protocols import canonical
from gateway.protocols.canonical import Clear, Event, Mark
from gateway.metrics import SessionStats
from gateway.transport import WebSocket

_CLEAR = canonical.encode(Clear())


class WidgetLeg:
    kind = "web"
    down_frame_bytes = 960          # 20 ms at 24 kHz, PCM16

    def __init__(self, ws: WebSocket, stats: SessionStats, ping_interval: float):
        self.ws = ws
        self.stats = stats
        self.ping_interval = ping_interval

    async def receive(self) -> bytes | Event:
        ws = self.ws
        while True:
            message = await ws.receive()
            try:
                if type(message) is bytes:
                    canonical.check_audio_frame(message)
                    return message
                event = canonical.decode(message, sender="caller")
                if type(event) is Mark:
                    # the session acknowledges marks for the widget (at play time); a mark from
                    # the browser would be a forged "heard" for the agent
                    raise canonical.ProtocolError("not_allowed", "marks are acknowledged by the "
                                                                 "gateway on this channel")
                return event
            except canonical.ProtocolError as exc:
                self.stats.bad_messages += 1
                await self.send_event(exc.to_event())

    async def send_audio(self, pcm24: bytes) -> None:
        await self.ws.send(pcm24)

    async def send_event(self, event: Event) -> None:
        await self.ws.send_text(canonical.encode(event))

    async def clear(self) -> None:
        await self.ws.send_text(_CLEAR)

    async def mark(self, name: str) -> bool:
        return True                 # our pacer sent everything before it: that is "heard" here

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    async def keepalive(self) -> None:
        await self.ws.keepalive(self.ping_interval)
