"""The container budget: Meta allows 400 containers per account in a rolling 24 h, and a
carousel uses one per item plus the parent. Before creating the containers of a post, staging
counts the account's successful container creations of the last 24 h (api_calls, written by
every daemon, plus this daemon's calls not yet written, plus the slots its other steps have
reserved and not yet used) and waits for a slot rather than run into the limit. Checking and
reserving happen with no await between them, so two steps of one account staged at the same
moment cannot both take the last slot.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from scheduler.clock import to_naive_utc
from scheduler.graph.endpoints import CREATE_CONTAINER
from scheduler.pipeline.runtime import Runtime

CONTAINER_WINDOW = timedelta(days=1)


async def container_slot_at(rt: Runtime, account: str, needed: int) -> tuple[datetime | None, int]:
    """(None, used) when `needed` more containers fit in the account's rolling 24 h, and then
    they are reserved (give them back with `release_slots` once created or given up); else
    (when enough have aged out, used)."""
    limit = rt.settings.staging.containers_per_day
    now = rt.clock.now()
    since = now - CONTAINER_WINDOW
    # unwritten calls first, then the table, so that none is missed; a call written in between
    # is in both, and counted once: calls are told apart by when they began (to the
    # microsecond; two creations of one account never begin at the same one)
    unwritten = Counter(
        to_naive_utc(r.started_at) for r in rt.calllog.unwritten_calls()
        if r.account == account and r.endpoint == CREATE_CONTAINER and r.outcome == "ok"
    )  # fmt: skip
    written = Counter(await rt.db(rt.store.containers_created_since, account, since))
    times = sorted(t for t in (written | unwritten).elements() if t >= since)
    # from here to the reservation, no await: the check and the reservation are one step
    reserved = rt.container_reservations.get(account, 0)
    used = len(times) + reserved
    if used + needed <= limit:
        rt.container_reservations[account] = reserved + needed
        return None, used
    if needed > limit:  # can never fit; the caller fails the post
        return now + CONTAINER_WINDOW, used
    # the slot frees when the (used + needed - limit)-th oldest creation leaves the window;
    # reserved slots are being created now, so they leave it a day from now
    k = used + needed - limit - 1
    return (times[k] if k < len(times) else now) + CONTAINER_WINDOW, used


def release_slots(rt: Runtime, account: str, count: int) -> None:
    """Give back reserved slots: the containers were created (their calls now count) or not."""
    left = rt.container_reservations.get(account, 0) - count
    if left > 0:
        rt.container_reservations[account] = left
    else:
        rt.container_reservations.pop(account, None)
