"""The phone caller leg: one provider media stream (Twilio, Plivo, Exotel) as a ``CallerLeg``.

Up (caller -> agent): each provider ``media`` message is decoded by the sans-IO codec and turned
into PCM16 16 kHz by ONE native call (base64 + G.711/L16 decode + resample), then handed to the
session at once: no buffering delay. The provider's media timestamps (else chunk numbers) number
the 20 ms frames; the native jitter buffer in zero-delay mode returns an in-order frame straight
away and puts concealment of the right length in front of a frame that follows a gap, so the
agent's timeline stays aligned with the call. Gaps, late/duplicate frames and concealed frames
are counted in the session stats.

Down (agent -> caller): the session's pacer hands us 20 ms of PCM16 24 kHz at a time (200 ms for
Exotel); one native call makes the provider's payload (resample + encode + base64). Exotel needs
chunks that are multiples of 320 bytes and at least 3.2 KB: audio is re-chunked, and a partial
chunk left when the agent pauses is padded with silence to a legal size.

Marks go to the provider (Twilio ``mark``, Plivo ``checkpoint``, Exotel ``mark``) and come back up
through ``receive()`` as ``Mark`` when the provider reports them played. A clear sends the
provider's clear; marks it drops come back as ``Mark(cleared=True)`` with the next ``receive()``
(providers stream caller audio continuously, so within one inbound frame).
"""
from __future__ import annotations

import base64
import logging
from collections import deque

import trio

from gateway.audio import JitterBuffer, Transcoder
from gateway.metrics import SessionStats
from gateway.protocols import (
    DtmfReceived, ExotelChunker, LocalProtocolError, MarkPlayed, MediaReceived,
    MediaStreamConnection,
    ProtocolErrorEvent, SendMark, SendMedia, StreamClosed, StreamStopped,
)
from gateway.protocols.canonical import Clear, Dtmf, End, Event, Mark
from gateway.transport import ConnectionClosed, WebSocket

log = logging.getLogger("converse.legs.phone")

FRAME_MS = 20
EXOTEL_TAIL_S = 0.300           # agent pause after which a partial Exotel chunk is padded and sent
UP_FRAME_BYTES = 640            # 20 ms of PCM16 at 16 kHz
_CODEC_NAMES = {"mulaw": "ulaw", "alaw": "alaw", "l16": "l16"}


def transcoders(conn: MediaStreamConnection) -> tuple[Transcoder, Transcoder]:
    """(inbound, outbound) native transcoders for a started stream."""
    fin, fout = conn.stream.media_format, conn.outbound_format
    return (Transcoder.inbound(_CODEC_NAMES[fin.encoding], fin.sample_rate),
            Transcoder.outbound(_CODEC_NAMES[fout.encoding], fout.sample_rate))


class GapFiller:
    """Keeps the agent's audio timeline aligned with the call: numbers each 20 ms frame from the
    provider's timestamp (or chunk counter) and lets the native jitter buffer (zero target delay)
    insert concealment for missing frames. Decoding, transcoding and gap filling are one native
    call per message. Audio that is not whole frames passes through untouched."""

    def __init__(self, stats: SessionStats, transcoder: Transcoder):
        # a jump over 2 s is a resync, not 2 s of invented audio (a provider whose timestamps
        # we misread must not flood the agent with concealment)
        self.jb = JitterBuffer(UP_FRAME_BYTES, capacity=64, min_delay=0, max_delay=0, max_gap=100)
        self.stats = stats
        self.transcoder = transcoder

    def frames(self, media: MediaReceived) -> list[bytes]:
        """The agent's frames for one provider media message (ValueError: bad payload)."""
        tc = self.transcoder
        ts = media.timestamp
        if ts is not None:
            # the nearest frame (as JitterBuffer.seq_from_ms): a timestamp wobbling by a few ms
            # is still the same frame
            pcm = tc.process_b64_fill(media.payload, self.jb, (ts + FRAME_MS // 2) // FRAME_MS)
        elif media.chunk is not None:
            pcm = tc.process_b64_fill(media.payload, self.jb, media.chunk, True)
        else:
            pcm = tc.process_b64(media.payload)
            return [pcm] if pcm else []
        tally = tc.tally
        if tally[0] or tally[1] or tally[2]:
            stats = self.stats
            stats.late_in += tally[0]
            stats.gaps_in += tally[1]
            stats.concealed_frames += tally[2]
        n = len(pcm)
        if n == UP_FRAME_BYTES or n % UP_FRAME_BYTES:
            return [pcm]
        return [pcm[i:i + UP_FRAME_BYTES] for i in range(0, n, UP_FRAME_BYTES)]


class PhoneLeg:
    """A started provider media stream (``conn`` has seen ``start``) as the session's caller."""

    def __init__(self, ws: WebSocket, conn: MediaStreamConnection, stats: SessionStats,
                 ping_interval: float):
        self.ws = ws
        self.conn = conn
        self.kind = conn.provider
        self.stats = stats
        self.ping_interval = ping_interval
        self.inbound, self.outbound = transcoders(conn)
        self.gaps = GapFiller(stats, self.inbound)
        self._pending: deque = deque()      # items to return before reading the socket again
        self._gone: tuple[int, str] | None = None
        self._closing: tuple[int, str] | None = None
        self._exotel = conn.provider == "exotel"
        if self._exotel:
            # one minimum chunk (3.2 KB of PCM16: 200 ms at 8 kHz) per paced frame
            rate = conn.outbound_format.sample_rate
            self.down_frame_bytes = 3200 * 24000 // rate
            self.chunker = ExotelChunker(3200)
            self._tail = trio.Event()
            self._last_audio = 0.0
            self._pushed = 0                # raw bytes given to the chunker
            self._marks_after: deque = deque()   # (position, name): marks waiting for audio
        else:
            self.down_frame_bytes = 960     # 20 ms at 24 kHz
            self.chunker = None

    # -- caller -> session ---------------------------------------------------------------------
    async def receive(self) -> bytes | Event:
        pending = self._pending
        while not pending:
            if self._gone is not None:
                raise ConnectionClosed(*self._gone)
            try:
                message = await self.ws.receive()
            except ConnectionClosed as closed:
                self._on_events(self.conn.receive(None))    # marks still owed, then the end
                if pending and type(pending[-1]) is _Gone:
                    pending[-1] = _Gone(closed.code, closed.reason)   # keep the real close code
                if not pending:
                    raise
                continue
            self._on_events(self.conn.receive(message))
            if self._closing is not None:
                code, reason = self._closing
                self._closing = None
                await self.ws.close(code, reason)
        item = pending.popleft()
        if type(item) is _Gone:
            self._gone = (item.code, item.reason)
            pending.clear()
            raise ConnectionClosed(item.code, item.reason)
        return item

    def _on_events(self, events) -> None:
        pending = self._pending
        for event in events:
            cls = type(event)
            if cls is MediaReceived:
                try:
                    pending.extend(self.gaps.frames(event))
                except ValueError:
                    self.stats.bad_messages += 1
            elif cls is DtmfReceived:
                pending.append(Dtmf(digit=event.digit))
            elif cls is MarkPlayed:
                pending.append(Mark(name=event.name, cleared=event.cleared))
            elif cls is StreamStopped or cls is StreamClosed:
                pending.append(_Gone(1000, f"{self.kind} stream stopped"))
            elif cls is ProtocolErrorEvent:
                self.stats.bad_messages += 1
                log.info("%s stream: %s (%d)", self.kind, event.reason, event.code)
                if event.fatal:
                    self._closing = (event.code, event.reason)
                    pending.append(_Gone(event.code, event.reason))
            # StreamConnected, AudioCleared: nothing to do

    # -- session -> caller ---------------------------------------------------------------------
    async def send_audio(self, pcm24: bytes) -> None:
        if self.chunker is None:
            try:
                message = self.conn.send_media_b64(self.outbound.process_to_b64_bytes(pcm24))
            except LocalProtocolError:
                raise ConnectionClosed(1006, f"{self.kind} stream is over") from None
            await self.ws.send_text(message)
            return
        raw = self.outbound.process(pcm24)
        self._pushed += len(raw)
        chunks = self.chunker.push(raw)
        self._last_audio = trio.current_time()
        if self.chunker.buffered:
            self._tail.set()            # the flusher pads and sends it if nothing follows
        await self._send_chunks(chunks)

    async def _send_chunks(self, chunks: list[bytes]) -> None:
        if not chunks:
            return
        messages = [self._render(SendMedia(_b64(c))) for c in chunks]
        sent = self._pushed - self.chunker.buffered       # audio bytes now on their way
        marks = self._marks_after
        while marks and marks[0][0] <= sent:
            messages.append(self._render(SendMark(marks.popleft()[1])))
        await self.ws.send_many(messages)

    async def _flush_tails(self) -> None:
        """Exotel: a partial chunk left when the agent's audio pauses (end of an utterance, or an
        agent streaming slower than real time) is padded with silence to a legal chunk and sent
        once no audio has followed for :data:`EXOTEL_TAIL_S`."""
        while True:
            await self._tail.wait()
            self._tail = trio.Event()
            while self.chunker.buffered:
                due = self._last_audio + EXOTEL_TAIL_S
                if trio.current_time() >= due:
                    await self._flush_chunker()
                    break
                await trio.sleep_until(due)

    async def _flush_chunker(self) -> None:
        tail = self.chunker.flush()
        if tail:
            await self._send_chunks([tail])

    async def send_event(self, event: Event) -> None:
        if type(event) is Clear:
            await self.clear()
        elif type(event) is End:
            pass                    # the close that follows ends the stream (and the call)
        else:
            log.debug("%s leg: %s not delivered to a phone caller", self.kind,
                      type(event).__name__)

    async def clear(self) -> None:
        if self.chunker is not None:
            self._pushed -= self.chunker.buffered
            self.chunker.reset()
            self._pending.extend(Mark(name=n, cleared=True) for _, n in self._marks_after)
            self._marks_after.clear()
        self.outbound.reset()
        try:
            wire, dropped = self.conn.clear()
        except LocalProtocolError:
            raise ConnectionClosed(1006, f"{self.kind} stream is over") from None
        self._pending.extend(Mark(name=m.name, cleared=True) for m in dropped)
        await self.ws.send(wire)

    async def mark(self, name: str) -> bool:
        if self.chunker is not None and self.chunker.buffered:
            # Exotel: the mark follows the chunk that completes the audio before it (padding
            # here would put silence into the middle of a stream)
            self._marks_after.append((self._pushed, name))
            return False
        await self.ws.send(self._render(SendMark(name)))
        return False                # the provider tells us when it has played

    def _render(self, event) -> str:
        """The provider's message for ``event``; once the stream is over (stop, socket gone, a
        fatal protocol error) the session sees what it sees for a closed socket."""
        try:
            return self.conn.send(event)
        except LocalProtocolError:
            raise ConnectionClosed(1006, f"{self.kind} stream is over") from None

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    async def keepalive(self) -> None:
        if self.chunker is None:
            await self.ws.keepalive(self.ping_interval)
            return
        async with trio.open_nursery() as nursery:      # lives as long as the session
            nursery.start_soon(self._flush_tails)
            await self.ws.keepalive(self.ping_interval)
            nursery.cancel_scope.cancel()


class _Gone:
    """Returned internally by ``_on_events``: the stream is over (raised as ConnectionClosed)."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str):
        self.code = code
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
