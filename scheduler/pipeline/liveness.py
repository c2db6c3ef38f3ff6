"""Did an earlier media_publish of a post go live? Asked before anything is repeated.

An error answer to media_publish is no proof that nothing went live: after a lost answer,
Meta's reply to publishing the same container again is undocumented (24/2207008, 24/2207006
and "already published" have all been seen), and a published container may still say
FINISHED for a while. So before a post that had an earlier attempt gets a new container or a
second media_publish, that attempt is proven not live: the container's status first, then the
account's media paged back to the first attempt's time, looking for the post's caption and
kind (README "Never twice").

`match_media` is pure; `check_live` and `find_media` make the calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from scheduler.clock import to_aware
from scheduler.graph.client import ContainerStatus, graph_time
from scheduler.pipeline.runtime import Runtime
from scheduler.store import PostRecord

# igsched's clock and Meta's need not agree: look this much before the first attempt
SEARCH_MARGIN_S = 300.0
# what a published post of each kind looks like on the account's media list
_PRODUCT = {"image": ("FEED", "IMAGE"), "carousel": ("FEED", "CAROUSEL_ALBUM"), "reel": ("REELS", "VIDEO")}
# with the permalink: the follow-up then needs no call of its own
_FIELDS = ("id", "caption", "timestamp", "media_type", "media_product_type", "permalink")
_STORY_FIELDS = ("id", "timestamp", "media_type", "media_product_type", "permalink")


@dataclass(frozen=True)
class Found:
    media_id: str
    at: datetime | None  # Meta's timestamp, aware UTC


@dataclass(frozen=True)
class Liveness:
    live: bool
    found: Found | None  # the media on the account's list (None: not found there)
    status: ContainerStatus | None  # the current container's status (None: no container)
    how: str  # in words, for the post's events


def _same_text(a: Any, b: str | None) -> bool:
    return (str(a).strip() if a else "") == (b.strip() if b else "")


def match_media(items: Iterable[Mapping[str, Any]], *, kind: str, caption: str | None,
                started: datetime, owned: set[str]) -> Found | None:
    """The item that is this post's media: same caption (stories have none) and kind, not
    owned by another post, published no earlier than SEARCH_MARGIN_S before `started`; the
    one closest in time to `started` when several fit. Fields Meta left out are not held
    against an item."""
    begin = to_aware(started)
    lower = begin - timedelta(seconds=SEARCH_MARGIN_S)
    product, media_type = _PRODUCT.get(kind, ("STORY", None))
    best: tuple[float, Found] | None = None
    for item in items:
        mid = item.get("id")
        if not mid or str(mid) in owned:
            continue
        when = graph_time(item.get("timestamp"))
        if when is None or when < lower:
            continue
        if kind != "story" and not _same_text(item.get("caption"), caption):
            continue
        if item.get("media_product_type") not in (None, product):
            continue
        if media_type and item.get("media_type") not in (None, media_type):
            continue
        distance = abs((when - begin).total_seconds())
        if best is None or distance < best[0]:
            best = (distance, Found(str(mid), when))
    return best[1] if best else None


async def first_attempt_at(rt: Runtime, post: PostRecord) -> datetime | None:
    """When the post's first media_publish began (None: it never had one)."""
    times = await rt.db(rt.store.publish_attempt_times, post.id)
    if times:
        return times[0]
    return post.publish_started_at


async def find_media(rt: Runtime, post: PostRecord, token: str, since: datetime) -> Found | None:
    """Page back through the account's media (stories: its stories) to `since` less the
    margin, however many pages that takes, and pick the post's media."""
    ig = rt.ig_user_id(post.account)
    assert ig is not None
    lower = to_aware(since) - timedelta(seconds=SEARCH_MARGIN_S)
    owned = await rt.db(rt.store.media_ids_owned, post.account, lower, post.id)
    story = post.kind == "story"
    items = [it async for it in rt.graph.media_back_to(ig, token, lower, stories=story,
                                                       fields=_STORY_FIELDS if story else _FIELDS)]
    rt.permalinks.add({str(it["id"]): str(it["permalink"]) for it in items if it.get("id") and it.get("permalink")})
    caption = post.spec.get("caption")
    return match_media(items, kind=post.kind, caption=caption if isinstance(caption, str) else None,
                       started=since, owned=owned)


async def check_live(rt: Runtime, post: PostRecord, token: str) -> Liveness:
    """The container's status, then the account's media back to the first attempt (raises
    GraphError or Paused when either cannot be asked now: then nothing is proven)."""
    status = await rt.graph.container_status(post.container_id, token) if post.container_id else None
    since = await first_attempt_at(rt, post)
    if since is None:
        since = post.container_created_at or rt.clock.now()
    found = await find_media(rt, post, token, since)
    if found is not None:
        return Liveness(True, found, status, f"its media {found.media_id} is on the account")
    if status is not None and status.status_code == "PUBLISHED":
        return Liveness(True, None, status, "the container says PUBLISHED")
    said = f"the container says {status.status_code}" if status else "no container"
    return Liveness(False, None, status, f"not live: {said} and no such media on the account")
