"""The action duty's use of the daemon's look (engage/duty.py): it claims nothing while the
look says no action is due, decides on the monotonic clock (no read of the store's clock on
the event loop), and a kick (rules planned actions, an action finished) or a later look always
wins over a look that began before it."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from scheduler.config import Settings
from scheduler.engage.duty import HINT_TICKS, ActionDuty

STORE_NOW = datetime(2026, 11, 30, 12, 0, 0)


class NoStoreClock:
    def now(self) -> datetime:
        raise AssertionError("the store's clock was read on the event loop")


def _duty() -> ActionDuty:
    rt: Any = SimpleNamespace(settings=Settings(), store=NoStoreClock())
    return ActionDuty(rt)


def _hint(duty: ActionDuty, next_at: datetime | None, looked_at: float | None = None) -> None:
    mono = time.monotonic()
    duty.hint(next_at, STORE_NOW, mono, mono if looked_at is None else looked_at)


def test_without_a_look_the_duty_claims() -> None:
    assert not _duty()._nothing_due()


def test_the_look_decides_while_it_is_fresh() -> None:
    duty = _duty()
    _hint(duty, None)  # no claimable action at all
    assert duty._nothing_due()
    _hint(duty, STORE_NOW + timedelta(seconds=30))  # the next one later
    assert duty._nothing_due()
    _hint(duty, STORE_NOW)  # one due now
    assert not duty._nothing_due()
    _hint(duty, STORE_NOW + timedelta(milliseconds=50))  # due in a moment: then it claims
    assert duty._nothing_due()
    time.sleep(0.06)
    assert not duty._nothing_due()


def test_a_kick_after_the_look_began_wins() -> None:
    duty = _duty()
    looked = time.monotonic()
    duty.kick()  # rules planned actions while the look was under way
    _hint(duty, None, looked_at=looked)  # the look did not see them
    assert not duty._nothing_due()
    _hint(duty, None)  # a look that began after the kick counts again
    assert duty._nothing_due()


def test_an_older_look_does_not_overwrite_a_newer_one() -> None:
    duty = _duty()
    older = time.monotonic()
    _hint(duty, STORE_NOW)  # the newer look: an action due now
    _hint(duty, None, looked_at=older)  # held back behind publishes, arriving late
    assert not duty._nothing_due()


def test_a_stale_look_is_not_trusted() -> None:
    duty = _duty()
    tick = duty.rt.settings.daemon.tick_s
    _hint(duty, None, looked_at=time.monotonic() - HINT_TICKS * tick - 1)  # no look lately
    assert not duty._nothing_due()


def test_a_claim_in_flight_counts_as_busy() -> None:
    """Between a claim and the start of its actions the duty is busy: the daemon's idleness
    (and a test's time jump, which once let the lease of a claimed hide run out before it was
    sent, so it was claimed and sent twice) must not fall in between."""
    import asyncio

    seen: list[bool] = []
    duty: ActionDuty

    class Store:
        def claim_due_actions(self, *_args: object) -> list[object]:
            return []

    async def db(fn: Any, *args: Any) -> Any:
        seen.append(duty.busy)
        return fn(*args)

    rt: Any = SimpleNamespace(settings=Settings(), store=Store(), db=db, identity="t")
    duty = ActionDuty(rt)
    assert not duty.busy
    asyncio.run(duty._claim_and_run())
    assert seen == [True]
    assert not duty.busy
