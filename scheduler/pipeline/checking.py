"""The media check before staging (design §7.3): a post whose media breaks a rule fails now,
long before its time; media this host cannot reach is only a warning (Meta fetches it).

The same checks run on demand with `igsched validate --fetch` (preflight.check_all).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from scheduler.clock import utcnow
from scheduler.lifecycle import State, stage_at
from scheduler.models import PostSpec
from scheduler.pipeline.outcomes import fail, move
from scheduler.pipeline.runtime import Runtime
from scheduler.preflight import check_media, trusted_media_hosts
from scheduler.store import PostRecord

INSTAGRAM_LOGIN_HOST = "graph.instagram.com"


def upload_problem(spec: PostSpec, base_url: str) -> str | None:
    """A local video goes up through the resumable upload, which only the Facebook Login
    flavour of the API offers (facts sheet §3): with Instagram Login it cannot succeed."""
    local = [m.source for m in spec.media if m.is_local]
    host = (urlsplit(base_url).hostname or "").lower()
    if not local or host != INSTAGRAM_LOGIN_HOST:
        return None
    return (f"local file {local[0]} needs the resumable upload, which the API with Instagram Login "
            f"({base_url}) does not offer: use graph.base_url https://graph.facebook.com (Facebook "
            "Login), or give the video as an https URL")


async def check(rt: Runtime, post: PostRecord) -> None:
    now = utcnow()
    staging_time = max(now, stage_at(post.due_at, post.kind, rt.settings.staging.lead_s))
    spec = post.post_spec()
    problem = upload_problem(spec, rt.settings.graph.base_url)
    if problem:
        await fail(rt, post, problem)
        return
    if not rt.settings.preflight.enabled:
        await move(rt, post, None, preflight="skipped", next_action_at=staging_time)
        return
    result = await check_media(spec, rt.http, trusted_hosts=trusted_media_hosts(rt.settings.graph.base_url))
    if result.errors:
        await fail(rt, post, "media check failed: " + "; ".join(result.errors))
        return
    event = "media checked" + (": " + "; ".join(result.warnings) if result.warnings else ": ok")
    await move(rt, post, event, state=State.PLANNED, preflight="warnings" if result.warnings else "ok",
               next_action_at=max(utcnow(), staging_time))
