"""One timer task per Trio run for the per-frame wake-ups of every session's pacer.

A pacer whose next frame is not due yet used to wait under ``trio.move_on_at``: one cancel scope
entered, expired and unwound (Cancelled raised through its stack) per frame and call. Here the
waiting task only parks in its ParkingLot; this module's task keeps every pending wake-up in a
heap and unparks the lots whose time has come, on a 1 ms grid so that wake-ups of many calls due
within the same millisecond share one timer expiry. A wake-up fires at most one grid step after its
time (and, by float rounding of the grid, never more than a hair before it). The task runs only
while wake-ups are pending: it exits when the last one fires or is cancelled (nothing outlives
the sessions that used it) and starts again with the next.
"""
from __future__ import annotations

import heapq
import math

import trio

GRAIN_S = 0.001


class Wakeup:
    """A scheduled unpark of one ParkingLot; ``fired`` once the time came, ``cancel()`` to drop it."""

    __slots__ = ("lot", "fired", "_timers")

    def __init__(self, lot: trio.lowlevel.ParkingLot, timers: "Timers"):
        self.lot = lot
        self.fired = False
        self._timers = timers

    def cancel(self) -> None:
        if self.lot is not None:
            self.lot = None
            self._timers._dropped()


class Timers:
    def __init__(self):
        self._heap: list[tuple[float, int, Wakeup]] = []
        self._count = 0                    # tie-breaker: heap entries never compare Wakeups
        self._lot = trio.lowlevel.ParkingLot()
        self._sleeping_until = math.inf    # when the task wakes up next (inf: nothing pending)
        self._live = 0                     # wake-ups neither fired nor cancelled
        self._running = False

    def wake_at(self, when: float, lot: trio.lowlevel.ParkingLot) -> Wakeup:
        """Unpark one task from ``lot`` at ``when`` (or up to one grid step later)."""
        # the same float is the heap key and the task's deadline: compared with current_time()
        # either way, so no rounding can leave a due entry in the heap
        at = math.ceil(when / GRAIN_S) * GRAIN_S
        wakeup = Wakeup(lot, self)
        self._count += 1
        self._live += 1
        heapq.heappush(self._heap, (at, self._count, wakeup))
        if not self._running:
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name="converse.timers")
        elif at < self._sleeping_until:
            self._lot.unpark()             # sleeping past it: go back to sleep until this one
        return wakeup

    def _dropped(self) -> None:
        self._live -= 1
        if not self._live:
            self._lot.unpark()             # nothing left to time: let the task exit

    async def _run(self) -> None:
        heap = self._heap
        try:
            while self._live:
                now = trio.current_time()
                while heap and (heap[0][0] <= now or heap[0][2].lot is None):
                    wakeup = heapq.heappop(heap)[2]
                    lot = wakeup.lot
                    if lot is not None:
                        wakeup.lot = None
                        wakeup.fired = True
                        self._live -= 1
                        lot.unpark()
                if not self._live:
                    break
                self._sleeping_until = heap[0][0]
                with trio.move_on_at(self._sleeping_until):
                    await self._lot.park()
                self._sleeping_until = -math.inf   # awake: wake_at need not wake us
        finally:
            heap.clear()                   # only cancelled ones can be left
            self._live = 0
            self._running = False
            self._sleeping_until = math.inf


_TIMERS: trio.lowlevel.RunVar = trio.lowlevel.RunVar("converse_timers")


def timers() -> Timers:
    """This Trio run's timers (their task is a system task, running while wake-ups are pending)."""
    try:
        return _TIMERS.get()
    except LookupError:
        t = Timers()
        _TIMERS.set(t)
        return t
