"""What staging learns from the account's own history: processing times, container budget.

Processing time. Staging first asks for a container's status when it should be done: the
expected processing time of the account's recent containers of that media kind. The estimate
lives in memory (`Runtime.processing_s`, an exponential average) and, so that a restart does
not fall back to a guess, is seeded from the database the first time it is needed: the median
of `status_checked_at − container_created_at` over the account's last `SEED_ROWS` FINISHED
containers of that kind (post_media rows).

Each live observation is an interval: processing ended after the last IN_PROGRESS answer and
no later than the FINISHED one, and its midpoint is what is learnt. Learning only the time of
the FINISHED answer could never lower the estimate, since the first check is made at the
estimate itself. (The database keeps only the FINISHED check, so a seed errs on the long
side; live observations then bring it down.)

Container budget. Meta allows 400 containers per account in a rolling 24 h, and a carousel
uses one per item plus the parent. Before creating the containers of a post, staging counts
the account's successful container creations of the last 24 h (api_calls, written by every
daemon, plus this daemon's calls not yet written) and waits for a slot rather than run into
the limit.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta

from scheduler.clock import to_naive_utc, utcnow
from scheduler.pipeline.runtime import Runtime
from scheduler.store import Store, stats

SEED_ROWS = 20
CONTAINER_WINDOW = timedelta(days=1)


def _recent(store: Store, account: str, media_kind: str) -> list[float]:
    with store.read() as conn:
        return stats.recent_processing_s(conn, account, media_kind, SEED_ROWS)


async def expected_processing_s(rt: Runtime, account: str, media_kind: str) -> float:
    """The expected processing time, seeded once from the database after a start."""
    key = (account, media_kind)
    if key not in rt.processing_seeded:
        rt.processing_seeded.add(key)
        if key not in rt.processing_s:
            history = await rt.db(_recent, rt.store, account, media_kind)
            if history:
                rt.processing_s[key] = statistics.median(history)
    return rt.expected_processing_s(account, media_kind)


def observed_processing_s(
    created: datetime, checked: datetime, previous_check: datetime | None, previous_status: str | None
) -> float:
    """The midpoint of the interval in which processing ended: after the last IN_PROGRESS
    answer (or the creation) and no later than the FINISHED answer at `checked`."""
    upper = (checked - created).total_seconds()
    lower = 0.0
    if previous_check is not None and previous_status == "IN_PROGRESS":
        lower = min(upper, max(0.0, (previous_check - created).total_seconds()))
    return (lower + max(upper, 0.0)) / 2


def _created_since(store: Store, account: str, since: datetime) -> list[datetime]:
    with store.read() as conn:
        return stats.containers_created_since(conn, account, since)


async def container_slot_at(rt: Runtime, account: str, needed: int) -> tuple[datetime | None, int]:
    """(None, used) when `needed` more containers fit in the account's rolling 24 h; else
    (when enough have aged out, used)."""
    limit = rt.settings.staging.containers_per_day
    now = utcnow()
    since = now - CONTAINER_WINDOW
    # unwritten calls first, then the table: a call written in between counts twice (safe side)
    unwritten = [
        to_naive_utc(r.started_at) for r in rt.unflushed_calls()
        if r.account == account and r.endpoint == stats.CREATE_CONTAINER and r.outcome == "ok"
    ]  # fmt: skip
    times = sorted([*await rt.db(_created_since, rt.store, account, since), *unwritten])
    times = [t for t in times if t >= since]
    used = len(times)
    if used + needed <= limit:
        return None, used
    if needed > limit:  # can never fit; the caller fails the post
        return now + CONTAINER_WINDOW, used
    # the slot frees when the (used + needed - limit)-th oldest creation leaves the window
    return times[used + needed - limit - 1] + CONTAINER_WINDOW, used
