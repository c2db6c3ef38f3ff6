"""Our copy of the account's publishing quota (content_publishing_limit), read sparingly.

igsched counts its own publishes in the database (the reservation before media_publish), so
Meta's figure is needed only:
- before the account's first publish (never read yet: when a post becomes ready, so that at
  the due time only media_publish remains);
- when igsched's own count says the rolling window is nearly full, before publishing (at most
  once per the recheck interval), so a publish Meta would refuse is not sent;
- otherwise once per `limits.quota_refresh_s` per account, after publishing and off the
  due-time path (it catches posts made elsewhere, in the app or other tools).
One read at a time per account in a daemon; every daemon sees the last read's time in the
database, so a burst of posts makes one read, not one per post.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from scheduler.pipeline.runtime import Runtime
from scheduler.store import AccountRecord, PostRecord


def recheck_s(rt: Runtime) -> float:
    """How soon a nearly full (or full) account's figure is worth reading again: by then an
    ambiguous publish has settled."""
    return min(rt.settings.limits.quota_refresh_s,
               rt.settings.graph.timeout_s + rt.settings.limits.publish_settle_margin_s)


def _age_s(rt: Runtime, a: AccountRecord) -> float | None:
    return (rt.clock.now() - a.quota_checked_at).total_seconds() if a.quota_checked_at else None


async def _read(rt: Runtime, account: str, token: str, fresh_after: datetime | None) -> None:
    """Read the quota, unless a read newer than `fresh_after` was made while we waited."""
    ig = rt.ig_user_id(account)
    if ig is None:
        return
    async with rt.quota.lock(account):
        if fresh_after is not None:
            a = await rt.db(rt.store.account, account)
            if a is not None and a.quota_checked_at is not None and a.quota_checked_at > fresh_after:
                rt.quota.checked(account, a.quota_checked_at)
                return
        asked = rt.clock.now()
        lim = await rt.graph.publishing_limit(ig, token)
        await rt.db(rt.store.update_quota, account, lim.quota_usage, lim.quota_total, lim.quota_duration, asked)
        rt.quota.checked(account, asked)


async def _account(rt: Runtime, account: str) -> AccountRecord | None:
    a = await rt.db(rt.store.account, account)
    if a is not None and a.quota_checked_at is not None and a.quota_total is not None:
        rt.quota.checked(account, a.quota_checked_at)
    return a


def _read_within(rt: Runtime, account: str, seconds: float) -> bool:
    """Did this daemon see a quota read of the account less than `seconds` ago?"""
    at = rt.quota.checked_at(account)
    return at is not None and (rt.clock.now() - at).total_seconds() < seconds


async def ensure_quota_fresh(rt: Runtime, post: PostRecord, token: str, force: bool = False) -> None:
    """Read content_publishing_limit when our copy is older than quota_refresh_s (or now)."""
    a = await rt.db(rt.store.account, post.account)
    if a is None:
        return
    age = _age_s(rt, a)
    if a.quota_total is not None and a.quota_checked_at is not None:
        rt.quota.checked(post.account, a.quota_checked_at)
    if age is not None and age < rt.settings.limits.quota_refresh_s and not force:
        return
    await _read(rt, post.account, token, None if force else rt.clock.now() - timedelta(
        seconds=rt.settings.limits.quota_refresh_s))


async def quota_before_ready(rt: Runtime, post: PostRecord, token: str) -> None:
    """A post became ready: read the quota only if it was never read."""
    if rt.quota.checked_at(post.account) is not None:
        return
    a = await _account(rt, post.account)
    if a is not None and a.quota_total is None:
        await _read(rt, post.account, token, rt.clock.now() - timedelta(seconds=recheck_s(rt)))


async def quota_before_publish(rt: Runtime, post: PostRecord, token: str) -> None:
    """Just before the reservation: a read only when none was ever made, or when our own
    count says the window is nearly full and the figure is older than the recheck time."""
    limit = recheck_s(rt)
    near = rt.quota.is_near_full(post.account)
    if rt.quota.checked_at(post.account) is not None and (not near or _read_within(rt, post.account, limit)):
        return  # no database read either: the publish path stays short
    a = await _account(rt, post.account)
    if a is None:
        return
    age = _age_s(rt, a)
    if a.quota_total is None or (rt.quota.is_near_full(post.account) and (age is None or age >= limit)):
        await _read(rt, post.account, token, rt.clock.now() - timedelta(seconds=limit))


async def quota_after_publish(rt: Runtime, post: PostRecord, token: str) -> None:
    """After a post went live (its follow-up): keep the copy no older than quota_refresh_s."""
    limit = rt.settings.limits.quota_refresh_s
    if rt.quota.is_near_full(post.account):
        limit = min(limit, recheck_s(rt))
    if _read_within(rt, post.account, limit):
        return
    a = await _account(rt, post.account)
    if a is None:
        return
    age = _age_s(rt, a)
    if age is None or age >= limit:
        await _read(rt, post.account, token, rt.clock.now() - timedelta(seconds=limit))
