"""The built-in echo agent: a parrot, so a newcomer can hear the whole path.

- text -> a transcript ``You said: …``; a keypad digit -> ``You pressed 5.``;
- audio -> an energy endpointer; after ~600 ms of silence the caller's utterance is played back at
  24 kHz through the native resampler, followed by a transcript describing it and a mark;
- config ``{"mode": "stream"}`` echoes every frame at once instead (latency benchmarks).
"""
from __future__ import annotations

import trio

from gateway.endpointer import Endpointer, dbfs, duration_s
from gateway.protocols.canonical import Dtmf, End, Mark, Start, Text, Transcript
from gateway.limits import Limits

CHUNK_BYTES = 9600          # 200 ms at 24 kHz: how the utterance is handed to the session


def _resampler():
    from gateway.audio import Resampler       # the native core (imported late: optional in tests)
    return Resampler(16000, 24000)


class EchoAgent:
    def __init__(self, config: dict, limits: Limits):
        self.stream = config.get("mode") == "stream"
        self.silence_ms = int(config.get("silence_ms", 600))
        self.limits = limits

    async def run(self, start: Start, inbox, outbox: trio.MemorySendChannel) -> None:
        endpointer = Endpointer(16000, silence_ms=self.silence_ms)
        resampler = _resampler()
        count = 0
        async for item in inbox:
            if type(item) is bytes:
                if self.stream:
                    out = resampler.process(item)
                    if out:
                        await outbox.send(out)
                    continue
                for utterance in endpointer.feed(item):
                    count += 1
                    await self._play(utterance, count, outbox)
            elif isinstance(item, Text):
                await outbox.send(Transcript(role="assistant", text=f"You said: {item.text}"))
            elif isinstance(item, Dtmf):
                await outbox.send(Transcript(role="assistant", text=f"You pressed {item.digit}."))
            elif isinstance(item, End):
                break

    async def _play(self, utterance: bytes, n: int, outbox) -> None:
        resampler = _resampler()                 # fresh state per utterance: no tail of the last
        pcm = resampler.process(utterance) + resampler.flush()
        for i in range(0, len(pcm), CHUNK_BYTES):
            await outbox.send(pcm[i:i + CHUNK_BYTES])
        speech_s = max(0.0, duration_s(utterance, 16000) - self.silence_ms / 1000)
        await outbox.send(Transcript(role="assistant", text=(
            f"I heard {speech_s:.1f} s of speech at {dbfs(utterance):.0f} dBFS; playing it back.")))
        await outbox.send(Mark(name=f"echo-{n}"))
