"""Our copy of the account's publishing quota (content_publishing_limit), kept fresh."""

from __future__ import annotations

from scheduler.pipeline.runtime import Runtime
from scheduler.store import PostRecord


async def ensure_quota_fresh(rt: Runtime, post: PostRecord, token: str, force: bool = False) -> None:
    """Read content_publishing_limit when our copy is older than quota_refresh_s."""
    a = await rt.db(rt.store.account, post.account)
    ig = rt.ig_user_id(post.account)
    if a is None or ig is None:
        return
    age = (rt.clock.now() - a.quota_checked_at).total_seconds() if a.quota_checked_at else None
    if age is not None and age < rt.settings.limits.quota_refresh_s and not force:
        return
    lim = await rt.graph.publishing_limit(ig, token)
    await rt.db(rt.store.update_quota, post.account, lim.quota_usage, lim.quota_total, lim.quota_duration)
