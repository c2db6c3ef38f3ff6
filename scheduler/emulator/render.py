"""Graph JSON for the emulator's objects, with `fields=` selection and cursor paging.

Call these with the state's lock held: they read model objects directly.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .errors import invalid_parameter
from .fields import Selection, select
from .models import MAX_COMMENTS_PAGE, Account, Comment, Container, Media, graph_time

if TYPE_CHECKING:
    from .state import EmulatorState

DEFAULT_PAGE = 25
MAX_MEDIA_PAGE = 100


def account_node(state: EmulatorState, acct: Account, sel: Selection | None) -> dict[str, Any]:
    available: dict[str, Any] = {
        "id": acct.ig_user_id,
        "ig_id": int(acct.ig_user_id) if acct.ig_user_id.isdigit() else None,
        "user_id": acct.ig_user_id,
        "username": acct.username,
        "name": acct.name or None,
        "account_type": "BUSINESS",
        "biography": acct.biography or None,
        "website": acct.website or None,
        "followers_count": acct.followers_count,
        "follows_count": acct.follows_count,
        "media_count": lambda _sub: len(state.account_media(acct.ig_user_id, stories=False)),
        "profile_picture_url": acct.profile_picture_url or None,
    }
    return select("IGUser", available, sel)


def container_node(state: EmulatorState, c: Container, sel: Selection | None) -> dict[str, Any]:
    code, text = c.reported_status(
        state.now(), state.container_ttl_s, state.faults.published_status_lag_s
    )
    available = {"id": c.id, "status_code": code, "status": text}
    return select("ShadowIGMediaBuilder", available, sel)


def media_node(state: EmulatorState, m: Media, sel: Selection | None) -> dict[str, Any]:
    def children(sub: Selection | None) -> dict[str, Any] | None:
        if not m.children:
            return None
        return {"data": [media_node(state, state.get_media(cid), sub) for cid in m.children]}

    def owner(sub: Selection | None) -> dict[str, Any]:
        return select("IGUser", {"id": m.account, "username": m.username}, sub)

    is_video = m.media_type == "VIDEO"
    available: dict[str, Any] = {
        "id": m.id,
        "caption": m.caption,
        "media_type": m.media_type,
        "media_product_type": m.product_type,
        "media_url": m.media_url,
        "thumbnail_url": (m.params.get("cover_url") or f"{m.media_url}.jpg") if is_video else None,
        "permalink": m.permalink,
        "shortcode": m.shortcode,
        "timestamp": graph_time(m.published_at),
        "username": m.username,
        "owner": owner,
        "is_comment_enabled": m.product_type != "STORY",
        "comments_count": lambda _sub: state.comments_count(m.id),
        "like_count": m.like_count,
        "children": children,
        "alt_text": m.params.get("alt_text"),
        "is_shared_to_feed": (
            m.params.get("share_to_feed", "true").lower() in ("true", "1")
            if m.product_type == "REELS"
            else None
        ),
    }
    return select("IGMedia", available, sel)


def comment_node(
    state: EmulatorState, cm: Comment, sel: Selection | None, base_url: str = ""
) -> dict[str, Any]:
    """A comment. Its `replies` edge shows the first page (oldest first) with Graph's paging;
    there is no `replies_count` field, as in Meta's IG Comment reference."""

    def author(sub: Selection | None) -> dict[str, Any]:
        return select("IGCommentFromUser", {"id": cm.from_id, "username": cm.username}, sub)

    def media(sub: Selection | None) -> dict[str, Any]:
        m = state.get_media(cm.media_id)
        return select("IGMedia", {"id": m.id, "media_product_type": m.product_type}, sub)

    def replies(sub: Selection | None) -> dict[str, Any] | None:
        items = state.replies(cm.id)
        if not items:
            return None  # Graph leaves an empty edge out

        def link(changes: dict[str, str | None]) -> str:
            query = "&".join(f"{k}={v}" for k, v in changes.items() if v is not None)
            return f"{base_url}/{cm.id}/replies?limit={DEFAULT_PAGE}&{query}"

        page, paging = paginate(items, {}, link, max_limit=MAX_COMMENTS_PAGE, descending=False)
        out: dict[str, Any] = {"data": [comment_node(state, r, sub, base_url) for r in page]}
        if paging:
            out["paging"] = paging
        return out

    available: dict[str, Any] = {
        "id": cm.id,
        "text": cm.text,
        "username": cm.username,
        "timestamp": graph_time(cm.created_at),
        "like_count": cm.like_count,
        "hidden": cm.hidden,
        "from": author,
        "parent_id": cm.parent_id,
        "media": media,
        "replies": replies,
    }
    return select("IGComment", available, sel, default=("text", "timestamp"))


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)


def encode_cursor(object_id: str) -> str:
    return base64.urlsafe_b64encode(f"emu:{object_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "emu":
            raise ValueError(cursor)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_parameter(f"invalid paging cursor {cursor!r}") from None


def page_limit(params: dict[str, str], max_limit: int) -> int:
    raw = params.get("limit")
    if raw is None:
        return min(DEFAULT_PAGE, max_limit)
    try:
        limit = int(raw)
    except ValueError:
        raise invalid_parameter(f"limit must be a positive integer, not {raw!r}") from None
    if limit < 1:
        raise invalid_parameter("limit must be a positive integer")
    return min(limit, max_limit)


def paginate(
    items: Sequence[T],
    params: dict[str, str],
    link: Callable[[dict[str, str | None]], str],
    *,
    max_limit: int,
    descending: bool = True,
) -> tuple[list[T], dict[str, Any] | None]:
    """One page of `items` (ordered by id, `descending` or not) and its `paging` object.

    Cursors name an object id rather than a position, so objects added or deleted between
    two calls do not shift the pages.
    """
    limit = page_limit(params, max_limit)

    def later(a: int, b: int) -> bool:  # `a` comes after `b` in list order
        return a < b if descending else a > b

    after, before = params.get("after"), params.get("before")
    if after:
        mark = decode_cursor(after)
        rest = [it for it in items if later(int(it.id), mark)]
        start = len(items) - len(rest)
        page = rest[:limit]
    elif before:
        mark = decode_cursor(before)
        head = [it for it in items if later(mark, int(it.id))]
        page = head[-limit:]
        start = len(head) - len(page)
    else:
        start, page = 0, list(items[:limit])
    if not page:
        return page, None
    paging: dict[str, Any] = {
        "cursors": {"before": encode_cursor(page[0].id), "after": encode_cursor(page[-1].id)}
    }
    if start + len(page) < len(items):
        paging["next"] = link({"after": paging["cursors"]["after"], "before": None})
    if start > 0:
        paging["previous"] = link({"before": paging["cursors"]["before"], "after": None})
    return page, paging
