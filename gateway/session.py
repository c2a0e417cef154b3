"""One live conversation: caller leg <-> agent leg, with pacing, barge-in, marks and stats.

Tasks, all in one nursery per session:

- uplink: caller leg -> ``Inbox`` (bounded; when the agent stalls the OLDEST audio is dropped and
  counted, so the reader keeps draining the socket and memory stays flat);
- agent: the connector's ``run(start, inbox, outbox)``;
- downlink: ``outbox`` (a bounded Trio memory channel: a fast agent waits) -> audio into the
  ``Playout`` buffer, marks into its timeline, ``clear`` drops it, other events to the caller;
- pacer: plays the ``Playout`` buffer to the caller in real time, at most ``pacing_lead_s`` ahead,
  so a ``clear`` drops at most that lead of audio already sent;
- keepalive (pings, half-open detection) and an idle watchdog.

The session ends when the caller is gone and the agent has returned, or when ``end(reason)`` is
called (agent ``end``, server shutdown, idle timeout): the caller gets ``{"type":"end"}`` and a close
frame, the agent's inbox is closed, and everything left is cancelled after ``close_timeout_s``.
"""
from __future__ import annotations

import logging
import math
from collections import deque

import trio

from gateway.legs.base import CallerLeg
from gateway.protocols.canonical import Clear, End, Error, Event, Mark, Start
from gateway.limits import Limits
from gateway.metrics import SessionStats
from gateway.timers import timers
from gateway.transport import ConnectionClosed

log = logging.getLogger("converse.session")

LATE_S = 0.020          # a frame sent more than one frame after its slot counts as late
DUE_S = 0.0001          # a frame due this close to now is due (play times are float sums)


class Inbox:
    """Bounded caller -> agent queue. Never blocks the producer: when full, the oldest audio item
    is dropped (counted in ``stats.dropped_in``); events are kept unless the queue is all events.
    ``get()`` records each item's queueing delay as gateway-added latency."""

    def __init__(self, size: int, stats: SessionStats):
        self._items: deque = deque()
        self._times: deque = deque()
        self._size = size
        self._stats = stats
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        # Set by a consumer that can take audio without a task switch (the WebSocket agent writes
        # it straight to its socket): ``direct(frame)`` is True when the frame is gone, False to
        # queue it as usual, or a token to queue in its place (e.g. "finish this write").
        self.direct = None

    def put(self, item, now: float | None = None) -> None:
        """Queue ``item`` (``now``: its arrival time, read from the clock when not given and
        needed: the direct path needs none)."""
        if self._closed:
            return
        items = self._items
        direct = self.direct
        if direct is not None and not items and type(item) is bytes:
            # only with nothing queued ahead of it, so the consumer still sees input in order
            taken = direct(item)
            if taken is True:
                self._stats.added_latency.record_zero()
                return
            if taken is not False:
                item = taken
        if len(items) >= self._size and not self._drop_oldest_audio():
            self._stats.dropped_in += 1           # all events: refuse the newest instead
            return
        items.append(item)
        self._times.append(trio.current_time() if now is None else now)
        if self._lot:
            self._lot.unpark()

    def _drop_oldest_audio(self) -> bool:
        for i, item in enumerate(self._items):
            if type(item) is bytes:
                del self._items[i]
                del self._times[i]
                self._stats.dropped_in += 1
                return True
        return False

    async def get(self) -> bytes | Event:
        """Next item; raises ``trio.EndOfChannel`` once closed and drained."""
        while not self._items:
            if self._closed:
                raise trio.EndOfChannel
            await self._lot.park()
        self._stats.added_latency.record(trio.current_time() - self._times.popleft())
        return self._items.popleft()

    def close(self) -> None:
        self._closed = True
        self._lot.unpark_all()

    def __len__(self) -> int:
        return len(self._items)

    # async iteration, like a memory channel
    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.get()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class Playout:
    """Audio waiting to be paced to the caller, with marks placed in its timeline.

    Positions are absolute byte offsets since the session began, so a mark is "reached" once the
    pacer has taken every byte before it. Bounded: past ``max_bytes`` the oldest audio is dropped
    (whole chunks; counted by the caller)."""

    def __init__(self, frame_bytes: int, max_bytes: int):
        self.frame_bytes = frame_bytes
        self.max_bytes = max_bytes
        self._chunks: deque[bytes] = deque()
        self._offset = 0            # bytes already taken from _chunks[0]
        self.size = 0               # bytes buffered
        self.taken = 0              # absolute position of the next byte to play
        self._marks: deque[tuple[int, str]] = deque()

    def push(self, data: bytes) -> int:
        """Append audio; return how many bytes of the oldest audio were dropped to stay bounded."""
        if not data:
            return 0
        self._chunks.append(data)
        self.size += len(data)
        dropped = 0
        while self.size > self.max_bytes and len(self._chunks) > 1:
            head = self._chunks.popleft()
            n = len(head) - self._offset
            self._offset = 0
            self.size -= n
            self.taken += n
            dropped += n
        return dropped

    def mark(self, name: str) -> None:
        self._marks.append((self.taken + self.size, name))

    def pop_frame(self) -> bytes:
        """Up to one frame of audio (a full frame whenever that much is buffered)."""
        want = self.frame_bytes
        chunks = self._chunks
        head = chunks[0]
        off = self._offset
        if len(head) - off >= want:                       # common case: one slice
            frame = head[off:off + want]
            off += want
            if off == len(head):
                chunks.popleft()
                off = 0
            self._offset = off
        else:
            parts = []
            need = want
            while need and chunks:
                head = chunks[0]
                piece = head[self._offset:self._offset + need]
                parts.append(piece)
                need -= len(piece)
                self._offset += len(piece)
                if self._offset == len(head):
                    chunks.popleft()
                    self._offset = 0
            frame = b"".join(parts)
        self.size -= len(frame)
        self.taken += len(frame)
        return frame

    def due_marks(self) -> list[str]:
        """Marks whose preceding audio has all been taken (in order)."""
        marks = self._marks
        due = []
        while marks and marks[0][0] <= self.taken:
            due.append(marks.popleft()[1])
        return due

    def clear(self) -> tuple[int, list[str]]:
        """Drop all buffered audio; return (bytes dropped, names of marks that will never play)."""
        dropped = self.size
        self._chunks.clear()
        self._offset = 0
        self.taken += self.size
        self.size = 0
        names = [name for _, name in self._marks]
        self._marks.clear()
        return dropped, names

    def __bool__(self) -> bool:
        return self.size > 0

    @property
    def has_marks(self) -> bool:
        return bool(self._marks)


class Outbox:
    """What the agent sends into (``await outbox.send(item)``). Audio that arrives while nothing
    is queued for the downlink goes into the playout from the agent's own task (one task switch
    less per frame); everything else, and audio behind it, goes through the bounded channel to
    the downlink task, so the session still sees the agent's output in order."""

    __slots__ = ("_session", "_channel")

    def __init__(self, session: "Session", channel: trio.MemorySendChannel):
        self._session = session
        self._channel = channel

    async def send(self, item) -> None:
        session = self._session
        if type(item) is bytes and session._queued == 0:
            await session._audio(item)
            return
        session._queued += 1
        try:
            await self._channel.send(item)
        except BaseException:
            session._queued -= 1
            raise


class Session:
    """One conversation. ``run()`` returns when it is over; ``end(reason)`` ends it from outside."""

    def __init__(self, session_id: str, caller: CallerLeg, agent, start: Start, limits: Limits,
                 stats: SessionStats | None = None):
        self.id = session_id
        self.caller = caller
        self.agent = agent
        self.start = start
        self.limits = limits
        self.stats = stats or SessionStats(caller.kind)
        self.inbox = Inbox(limits.agent_queue, self.stats)
        self._out_send, self._out_recv = trio.open_memory_channel(limits.agent_queue)
        self._queued = 0               # items sent into the channel and not yet fully handled
        self.outbox = Outbox(self, self._out_send)
        self.playout = Playout(caller.down_frame_bytes, int(limits.max_playout_s * 48000))
        self._audio_lot = trio.lowlevel.ParkingLot()
        self._drained_lot = trio.lowlevel.ParkingLot()
        self._downlink_done = trio.Event()
        self._in_flight: deque[tuple[float, str]] = deque()   # (play time, mark) sent, not heard
        self._played_until = 0.0       # when everything sent so far will have played
        self._in_spurt = False         # audio has been flowing without an underrun
        self._pumping = False          # a task is inside _pump (sending): the other one waits
        self._pacer_wake = -math.inf   # while the pacer is parked: when its timer fires
        # Agent audio far ahead of real time (a full lead and more queued behind it) falls due
        # one frame per frame time. The pacer then sleeps one frame longer and sends two frames
        # per wake-up (the lead runs between lead - one frame and lead): half the wake-ups. Not
        # when only one frame waits (an agent streaming in real time: that frame would be held a
        # frame longer), nor where two frames do not fit in the lead (Exotel's 200 ms chunks).
        frame_s = self.playout.frame_bytes / 48000.0
        self._pacer_slack = frame_s if 3 * frame_s <= limits.pacing_lead_s + 1e-9 else 0.0
        self._batch_bytes = 2 * self.playout.frame_bytes
        self._clears = 0
        self._scope: trio.CancelScope | None = None
        self._ending = False
        self._caller_gone = False
        self._agent_done = False
        self._activity = 0

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> SessionStats:
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                nursery.start_soon(self._uplink)
                nursery.start_soon(self._agent)
                nursery.start_soon(self._downlink)
                nursery.start_soon(self._pacer)
                nursery.start_soon(self._guard, self.caller.keepalive)
                nursery.start_soon(self._idle_watch)
        finally:
            self.inbox.close()
            if not self.stats.end_reason:
                self.stats.end_reason = "cancelled"
        return self.stats

    async def end(self, reason: str, code: int = 1000) -> None:
        """End the conversation: tell the caller (``end`` event + close frame) and the agent (its
        inbox closes), then give both ``close_timeout_s`` to finish before cancelling."""
        if self._ending:
            return
        self._ending = True
        self.stats.end_reason = self.stats.end_reason or reason
        self.inbox.close()
        self._set_deadline()
        if not self._caller_gone:
            try:
                with trio.move_on_after(self.limits.close_timeout_s):
                    await self.caller.send_event(End(reason=reason))
                    await self.caller.close(code, reason)
            except ConnectionClosed:
                pass
            if self.stats.close_code is None:
                self.stats.close_code = code

    def _set_deadline(self) -> None:
        if self._scope is not None:
            self._scope.deadline = min(self._scope.deadline,
                                       trio.current_time() + self.limits.close_timeout_s)

    def _part_done(self) -> None:
        if self._caller_gone and self._agent_done and self._scope is not None:
            self._scope.cancel()

    # -- caller -> agent ---------------------------------------------------------------------
    async def _uplink(self) -> None:
        caller, inbox, stats = self.caller, self.inbox, self.stats
        try:
            while True:
                item = await caller.receive()
                self._activity += 1
                if type(item) is bytes:
                    stats.frames_in += 1
                    inbox.put(item)
                    continue
                stats.events_in += 1
                if isinstance(item, End):
                    stats.end_reason = stats.end_reason or f"caller: {item.reason or 'end'}"
                    inbox.put(item, trio.current_time())
                    await self.end(item.reason or "caller ended")
                elif isinstance(item, Start):
                    await caller.send_event(Error(code="unexpected_start",
                                                  message="the session has already started"))
                else:
                    inbox.put(item, trio.current_time())
        except ConnectionClosed as closed:
            if stats.close_code is None:
                stats.close_code = closed.code
            stats.end_reason = stats.end_reason or f"caller closed ({closed.code})"
        finally:
            self._caller_gone = True
            self.inbox.close()
            self._set_deadline()
            self._part_done()

    # -- the agent ---------------------------------------------------------------------------
    async def _agent(self) -> None:
        try:
            async with self._out_send:
                await self.agent.run(self.start, self.inbox, self.outbox)
        except Exception:
            log.exception("session %s: agent connector failed", self.id)
            await self._to_caller(Error(code="agent_error", message="the agent failed"))
        finally:
            self._agent_done = True
        if not self._ending:
            with trio.move_on_after(self.limits.close_timeout_s):
                await self._downlink_done.wait()      # everything the agent sent is queued
            await self._drain()
            await self.end("agent ended")
        self._part_done()

    # -- agent -> caller ---------------------------------------------------------------------
    async def _downlink(self) -> None:
        playout = self.playout
        async for item in self._out_recv:
            try:
                if type(item) is bytes:
                    await self._audio(item)
                elif isinstance(item, Clear):
                    await self._clear()
                elif isinstance(item, Mark):
                    playout.mark(item.name)
                    if not playout:
                        await self._marks_due()
                elif isinstance(item, End):
                    await self._drain()
                    await self.end(item.reason or "agent ended")
                else:
                    await self._to_caller(item)
            finally:
                self._queued -= 1
        self._downlink_done.set()

    async def _audio(self, data: bytes) -> None:
        """Agent audio into the playout; send what is due at once, let the pacer time the rest.
        Runs in the downlink task, or in the agent's own task when nothing is queued (Outbox)."""
        playout = self.playout
        dropped = playout.push(data)
        if dropped:
            self.stats.dropped_out += -(-dropped // playout.frame_bytes)
        if self._pumping:
            need = -math.inf
        else:
            # Send what is due right here: a frame arriving into an idle pacer goes out without
            # waking another task (one task switch less per frame).
            need = math.inf
            try:
                need = await self._pump()
            except ConnectionClosed:
                pass
            if self._in_flight:
                need = min(need, self._in_flight[0][0])
        # The pacer times the rest; when its timer is already set for the frame now at the head
        # (the lead is full: new audio queues behind it), waking it would only make it park again.
        if (self._audio_lot and (playout or self._in_flight)
                and need + self._wake_slack() < self._pacer_wake):
            self._audio_lot.unpark()

    async def _clear(self) -> None:
        """Barge-in: drop the buffer, tell the caller side to drop what it holds, and return every
        mark that will now never be heard — buffered here or sent but not yet played — with
        ``cleared: true``."""
        dropped, marks = self.playout.clear()
        self.stats.cleared_ms += dropped / 48.0
        await self._to_caller(Clear())
        now = trio.current_time()
        marks = [name for _, name in self._in_flight] + marks
        self._in_flight.clear()
        self._played_until = min(self._played_until, now)
        self._clears += 1
        for name in marks:
            self.inbox.put(Mark(name=name, cleared=True), now)
        self._audio_lot.unpark_all()

    async def _marks_due(self) -> None:
        """Marks whose audio has all been sent: the leg either forwards them (phone: the provider
        acknowledges when played, it comes back up through ``receive``) or, for the widget, they
        are acknowledged here once that audio's play time has passed."""
        for name in self.playout.due_marks():
            if await self.caller.mark(name):
                self._in_flight.append((self._played_until, name))
        self._ack_played(trio.current_time())
        if self._in_flight:
            self._audio_lot.unpark()       # the pacer times the rest

    def _ack_played(self, now: float) -> None:
        in_flight = self._in_flight
        while in_flight and in_flight[0][0] <= now:
            self.inbox.put(Mark(name=in_flight.popleft()[1]), now)

    async def _to_caller(self, event: Event) -> None:
        if self._caller_gone:
            return
        try:
            await self.caller.send_event(event)
            self.stats.events_out += 1
        except ConnectionClosed:
            pass

    async def _pump(self) -> float:
        """Send every frame that is due now; return when the next one is due (inf: none left).

        Frame k of a talk spurt plays at ``t0 + position`` and may be sent from ``lead`` before
        that, so at most ``lead`` seconds are ever sent ahead of real time. A new spurt starts
        playing when the previous audio has finished at the caller (or now, if it has), so a
        short gap between the agent's chunks never lets the lead grow."""
        playout, stats = self.playout, self.stats
        lead = self.limits.pacing_lead_s
        self._pumping = True
        try:
            while playout:
                now = trio.current_time()
                played_until = self._played_until
                play_at = played_until if played_until > now else now
                send_at = play_at - lead
                if send_at > now + DUE_S:
                    stats.held_out += 1
                    return send_at
                if self._in_spurt and now - played_until > LATE_S:
                    stats.late_frames += 1                  # the caller ran dry: a gap
                self._in_spurt = True
                clears = self._clears
                frame = playout.pop_frame()
                await self.caller.send_audio(frame)
                stats.frames_out += 1
                if clears == self._clears:                  # a clear meanwhile reset the clock
                    self._played_until = play_at + len(frame) / 48000.0
                if playout.has_marks:
                    await self._marks_due()
            self._in_spurt = False
            if self._drained_lot:
                self._drained_lot.unpark_all()
            return math.inf
        finally:
            self._pumping = False

    def _wake_slack(self) -> float:
        """How much later than the next frame's time the pacer wakes: one frame when two or
        more wait (it then sends two per wake-up), else none."""
        return self._pacer_slack if self.playout.size >= self._batch_bytes else 0.0

    async def _pacer(self) -> None:
        """Times the playout: sleeps until the next frame is due (or a mark has been heard) and
        pumps. The downlink pumps by itself when audio arrives into an idle pacer."""
        in_flight = self._in_flight
        clock = timers()
        try:
            while True:
                if in_flight:
                    self._ack_played(trio.current_time())
                next_at = math.inf if self._pumping else await self._pump()
                next_at += self._wake_slack()
                wake = min(next_at, in_flight[0][0]) if in_flight else next_at
                self._pacer_wake = wake
                # parked, and unparked by the shared timer task (no cancel scope per frame)
                timer = clock.wake_at(wake, self._audio_lot) if wake != math.inf else None
                try:
                    await self._audio_lot.park()
                finally:
                    self._pacer_wake = -math.inf
                    if timer is not None:
                        timer.cancel()
                if timer is not None and timer.fired and wake == next_at:
                    self.stats.lateness.record(trio.current_time() - next_at)   # wake-up delay
        except ConnectionClosed:
            pass                       # the uplink sees the same closure and ends the session

    async def _drain(self) -> None:
        """Wait until the caller has played all queued audio (bounded by its duration + 1 s)."""
        with trio.move_on_after(self.playout.size / 48000.0 + self.limits.pacing_lead_s + 1.0):
            while not self._caller_gone:
                if self.playout:
                    await self._drained_lot.park()
                elif trio.current_time() < self._played_until:
                    await trio.sleep_until(self._played_until)
                else:
                    return

    # -- housekeeping ------------------------------------------------------------------------
    async def _guard(self, fn) -> None:
        try:
            await fn()
        except ConnectionClosed:
            pass

    async def _idle_watch(self) -> None:
        """No frame or event from the caller for a whole idle interval -> end the session."""
        interval = self.limits.idle_timeout_s
        seen = -1
        while True:
            await trio.sleep(interval)
            if self._activity == seen:
                await self.end("idle timeout")
                return
            seen = self._activity
