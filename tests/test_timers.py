"""The shared timer task behind the pacers: wake-ups on a 1 ms grid, in time order, at most one
grid step late, an earlier wake-up scheduled while the task sleeps for a later one still on time,
cancelled ones never delivered, and many due in the same millisecond served by one expiry."""
from __future__ import annotations

import trio

from gateway.timers import GRAIN_S, timers


async def test_wakeups_on_time_in_order_and_cancellable(autojump_clock):
    clock = timers()
    woke: list[tuple[str, float, float]] = []

    async def sleeper(name: str, delay: float, task_status=trio.TASK_STATUS_IGNORED):
        lot = trio.lowlevel.ParkingLot()
        when = trio.current_time() + delay
        wakeup = clock.wake_at(when, lot)
        task_status.started()
        await lot.park()
        assert wakeup.fired
        woke.append((name, when, trio.current_time()))

    async with trio.open_nursery() as nursery:
        await nursery.start(sleeper, "late", 0.5)
        await nursery.start(sleeper, "early", 0.0105)      # scheduled after a later one
        await nursery.start(sleeper, "mid", 0.2)
        lot = trio.lowlevel.ParkingLot()
        cancelled = clock.wake_at(trio.current_time() + 0.1, lot)
        cancelled.cancel()
        with trio.move_on_after(1.0):
            await lot.park()                                 # never unparked
        assert not cancelled.fired
    assert [w[0] for w in woke] == ["early", "mid", "late"]
    for _, when, at in woke:
        assert when - 1e-9 <= at <= when + GRAIN_S + 1e-9


async def test_many_wakeups_in_one_millisecond_share_one_expiry(autojump_clock):
    clock = timers()
    import math
    base = math.ceil((trio.current_time() + 0.05) / GRAIN_S) * GRAIN_S + GRAIN_S / 100
    lots = [trio.lowlevel.ParkingLot() for _ in range(50)]
    woke: list[float] = []

    async def sleeper(lot):
        await lot.park()
        woke.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for i, lot in enumerate(lots):
            nursery.start_soon(sleeper, lot)
            clock.wake_at(base + i * GRAIN_S / 60, lot)     # all inside one grid step
    assert len(woke) == 50 and len(set(woke)) == 1


async def test_the_task_runs_only_while_wake_ups_are_pending(autojump_clock):
    """Nothing outlives its users: the task exits once every wake-up fired or was cancelled, and
    comes back for the next one."""
    def timer_tasks() -> int:
        todo, n = [trio.lowlevel.current_root_task()], 0
        while todo:
            task = todo.pop()
            n += task.name == "converse.timers"
            for nursery in task.child_nurseries:
                todo.extend(nursery.child_tasks)
        return n

    clock = timers()
    lot = trio.lowlevel.ParkingLot()
    wakeup = clock.wake_at(trio.current_time() + 5.0, lot)
    await trio.sleep(0.1)
    assert timer_tasks() == 1
    wakeup.cancel()
    await trio.sleep(0)
    await trio.sleep(0)
    assert timer_tasks() == 0
    clock.wake_at(trio.current_time() + 0.01, lot)
    await lot.park()                                   # fired by a new task...
    await trio.sleep(0)
    assert timer_tasks() == 0                          # ...which then left as well
