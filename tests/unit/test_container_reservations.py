"""The container budget (pipeline/budget.py): two steps of one account that check for room at
the same moment cannot both take the last slot; a slot given back is free again."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from scheduler.clock import FakeClock
from scheduler.config import Settings
from scheduler.graph.endpoints import CREATE_CONTAINER
from scheduler.pipeline.budget import CONTAINER_WINDOW, container_slot_at, release_slots

NOW = datetime(2026, 11, 30, 12, 0, 0)


def _runtime(created: list[datetime], per_day: int) -> Any:
    async def db(fn: Any, *args: Any) -> Any:
        await asyncio.sleep(0.02)  # the store's answer takes a moment: steps interleave here
        return fn(*args)

    return SimpleNamespace(
        settings=Settings(staging={"containers_per_day": per_day}),
        clock=FakeClock(NOW),
        calllog=SimpleNamespace(unwritten_calls=lambda: []),
        store=SimpleNamespace(containers_created_since=lambda _account, _since: list(created)),
        db=db,
        container_reservations={},
    )


def test_two_steps_at_once_cannot_both_take_the_last_slot() -> None:
    rt = _runtime([NOW - timedelta(hours=1)] * 3, per_day=4)

    async def both() -> list[tuple[datetime | None, int]]:
        return list(await asyncio.gather(container_slot_at(rt, "shop", 1), container_slot_at(rt, "shop", 1)))

    first, second = asyncio.run(both())
    assert first == (None, 3)  # room: reserved
    assert second == (NOW - timedelta(hours=1) + CONTAINER_WINDOW, 4)  # the reserved slot counts
    assert rt.container_reservations == {"shop": 1}
    release_slots(rt, "shop", 1)  # created (its call now counts) or given up
    assert rt.container_reservations == {}
    assert asyncio.run(container_slot_at(rt, "shop", 1)) == (None, 3)


def test_the_slot_frees_when_the_oldest_creation_leaves_the_window() -> None:
    oldest = NOW - timedelta(hours=20)
    rt = _runtime([oldest, NOW - timedelta(hours=1)], per_day=2)
    free_at, used = asyncio.run(container_slot_at(rt, "shop", 1))
    assert (free_at, used) == (oldest + CONTAINER_WINDOW, 2)
    assert rt.container_reservations == {}


def test_a_call_written_while_the_budget_reads_counts_once() -> None:
    """The flush commits between the read of the unwritten calls and the read of the table:
    the call is in both, and counted once (it was counted twice, and a post waited with
    "8 of 4 containers created" as its reason)."""
    landing = NOW - timedelta(minutes=1)
    call = SimpleNamespace(started_at=landing, account="shop", endpoint=CREATE_CONTAINER, outcome="ok")
    other = SimpleNamespace(started_at=NOW - timedelta(seconds=5), account="shop", endpoint=CREATE_CONTAINER, outcome="ok")
    rt = _runtime([NOW - timedelta(hours=2), landing], per_day=10)
    rt.calllog = SimpleNamespace(unwritten_calls=lambda: [call, other])
    assert asyncio.run(container_slot_at(rt, "shop", 1)) == (None, 3)
