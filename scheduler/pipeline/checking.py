"""The media check before staging (design §7.3): a post whose media breaks a rule fails now,
long before its time; media this host cannot reach is only a warning (Meta fetches it)."""

from __future__ import annotations

from scheduler.clock import utcnow
from scheduler.lifecycle import State, stage_at
from scheduler.pipeline.outcomes import fail, move
from scheduler.pipeline.runtime import Runtime
from scheduler.preflight import check_media
from scheduler.store import PostRecord


async def check(rt: Runtime, post: PostRecord) -> None:
    now = utcnow()
    staging_time = max(now, stage_at(post.due_at, post.kind, rt.settings.staging.lead_s))
    if not rt.settings.preflight.enabled:
        await move(rt, post, None, preflight="skipped", next_action_at=staging_time)
        return
    result = await check_media(post.post_spec(), rt.http)
    if result.errors:
        await fail(rt, post, "media check failed: " + "; ".join(result.errors))
        return
    event = "media checked" + (": " + "; ".join(result.warnings) if result.warnings else ": ok")
    await move(rt, post, event, state=State.PLANNED, preflight="warnings" if result.warnings else "ok",
               next_action_at=max(utcnow(), staging_time))
