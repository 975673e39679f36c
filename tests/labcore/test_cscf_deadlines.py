"""The registrar's expiry timer (webims.labcore.registrations.Deadlines): one loop timer for
every registration, refreshes move a deadline, stale entries never fire."""

from __future__ import annotations

import asyncio

from webims.labcore.registrations import Deadlines, Registration


async def test_registrations_expire_in_deadline_order_and_refreshes_move_them() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    done = asyncio.Event()

    def expire(reg: Registration) -> None:
        fired.append(reg.impu)
        if len(fired) == 3:
            done.set()

    deadlines: Deadlines[Registration] = Deadlines(expire)
    a, b, c, d = (Registration(f"sip:{n}@ims.test", {f"{n}@ims.test"}) for n in "abcd")
    now = loop.time()
    deadlines.set(a, now + 0.03)
    deadlines.set(b, now + 0.01)
    deadlines.set(c, now + 0.5)
    deadlines.set(c, now + 0.02)  # refreshed (here: shortened) before it fired
    deadlines.set(d, now + 0.015)
    deadlines.set(d, None)  # ended: its entry is stale
    await asyncio.wait_for(done.wait(), 10)
    assert fired == ["sip:b@ims.test", "sip:c@ims.test", "sip:a@ims.test"]
    assert a.deadline is None and d.deadline is None
    deadlines.close()


async def test_an_expiry_handler_may_arm_the_registration_again() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    done = asyncio.Event()
    reg = Registration("sip:a@ims.test", {"a@ims.test"})

    def expire(r: Registration) -> None:
        fired.append(loop.time())
        if len(fired) < 3:
            deadlines.set(r, loop.time() + 0.01)  # the next binding's expiry
        else:
            done.set()

    deadlines: Deadlines[Registration] = Deadlines(expire)
    deadlines.set(reg, loop.time() + 0.01)
    await asyncio.wait_for(done.wait(), 10)
    assert len(fired) == 3 and fired == sorted(fired)
    deadlines.close()


async def test_stale_entries_are_dropped_when_they_pile_up() -> None:
    loop = asyncio.get_running_loop()
    deadlines: Deadlines[Registration] = Deadlines(lambda reg: None)
    regs = [Registration(f"sip:u{i}@ims.test", {f"u{i}@ims.test"}) for i in range(10)]
    for round_ in range(1000):  # 10 registrations refreshed 1000 times each
        for reg in regs:
            deadlines.set(reg, loop.time() + 3600 + round_)
    # Compaction keeps the heap near its live entries (10), not at 10,000.
    assert deadlines.entries < 5000
    assert all(r.deadline is not None and r.deadline > loop.time() + 3600 + 998 for r in regs)
    deadlines.close()
