"""A tiny external agent speaking the canonical protocol — point a `websocket` agent at it.

    python examples/agent_server.py --port 9000
    # then create an agent of kind "websocket" with config {"url": "ws://127.0.0.1:9000/"}

What it does (a parrot with a few commands, to show every message of the protocol):
- receives ``start`` first (session, channel, caller metadata, audio rates) and greets the caller;
- caller audio (PCM16 16 kHz) -> after 600 ms of silence, plays the utterance back as PCM16 24 kHz
  followed by a ``mark``; the gateway sends the mark back once the caller has heard the audio;
- caller text -> a transcript; the texts ``/tone N`` (N seconds of a 440 Hz tone + a mark),
  ``/clear`` (barge-in: drop what the caller has not heard yet) and ``/bye`` (``end``) are commands;
- logs marks coming back, DTMF digits and the end of the session.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys

import numpy as np
import trio

from gateway import transport
from gateway.audio import Resampler
from gateway.endpointer import Endpointer
from gateway.limits import Limits
from gateway.protocols import canonical
from gateway.protocols.canonical import Clear, Dtmf, End, Mark, Start, Text, Transcript

log = logging.getLogger("agent_server")


def tone(seconds: float, rate: int = 24000, hz: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * math.pi * hz * t) * 8000).astype("<i2").tobytes()


async def say(ws, event) -> None:
    await ws.send_text(canonical.encode(event))


async def conversation(ws: transport.WebSocket) -> None:
    endpointer = Endpointer(16000)
    marks = 0
    while True:
        message = await ws.receive()
        if type(message) is bytes:
            for utterance in endpointer.feed(message):
                resampler = Resampler(16000, 24000)
                pcm = resampler.process(utterance) + resampler.flush()
                for i in range(0, len(pcm), 9600):            # 200 ms per binary frame
                    await ws.send(pcm[i:i + 9600])
                marks += 1
                await say(ws, Mark(name=f"utterance-{marks}"))
            continue
        try:
            event = canonical.decode(message)
        except canonical.ProtocolError as exc:
            await say(ws, exc.to_event())
            continue
        if isinstance(event, Start):
            log.info("session %s on channel %s", event.session_id, event.channel_id)
            await say(ws, Transcript(role="assistant", text="Hello from the example agent."))
        elif isinstance(event, Text):
            await command(ws, event.text)
        elif isinstance(event, Mark):
            log.info("mark %s %s", event.name, "cleared" if event.cleared else "heard")
        elif isinstance(event, Dtmf):
            await say(ws, Transcript(role="assistant", text=f"You pressed {event.digit}."))
        elif isinstance(event, End):
            log.info("session ended: %s", event.reason)
            return


async def command(ws, text: str) -> None:
    if text.startswith("/tone"):
        try:
            seconds = min(30.0, float(text.split()[1]))
        except (IndexError, ValueError):
            seconds = 1.0
        pcm = tone(seconds)
        for i in range(0, len(pcm), 9600):
            await ws.send(pcm[i:i + 9600])
        await say(ws, Mark(name=f"tone-{seconds:g}"))
    elif text == "/clear":
        await say(ws, Clear())
    elif text == "/bye":
        await say(ws, End(reason="agent said goodbye"))
    else:
        await say(ws, Transcript(role="assistant", text=f"Agent heard: {text}"))


async def handler(handshake: transport.Handshake) -> None:
    ws = await handshake.accept()
    try:
        await conversation(ws)
    except transport.ConnectionClosed as closed:
        log.info("connection closed: %s", closed)


async def serve(host: str, port: int, task_status=trio.TASK_STATUS_IGNORED) -> None:
    listeners = await transport.open_listeners(host, port)
    await transport.serve(handler, listeners, Limits(), task_status=task_status)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(f"example agent listening on ws://{args.host}:{args.port}/", flush=True)
    try:
        trio.run(serve, args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
