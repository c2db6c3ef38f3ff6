"""Engagement calls of the Graph API: direct messages, comments and people's profiles.

`EngagementMixin` is a base of `GraphClient`: every method goes through the client's one
request path, so each call is recorded (CallRecord, usage headers) and its errors classified
like publishing calls. The request-body builders below are Meta's Send API shapes (facts
sheet §6); `scheduler.engage.messages` validates a message and renders it with them.

Messages go to `POST /me/messages` with an Instagram Login token. With Facebook Login the
caller passes the account's Page id as `sender` (and the Page token): `POST /{page-id}/messages`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

from scheduler.graph.errors import GraphUnavailable
from scheduler.graph.usage import Usage

log = logging.getLogger(__name__)

MAX_COMMENTS_PAGE = 50  # Meta's page size cap for comments and replies
# Meta's IG Comment node has no replies_count field (asking for it is error 100), so the
# replies edge is asked for instead and counted.
COMMENT_LIST_FIELDS = ("id", "text", "username", "timestamp", "like_count", "replies{id}")
REPLY_LIST_FIELDS = ("id", "text", "username", "timestamp", "like_count")
PROFILE_FIELDS = ("id", "name", "username", "profile_pic")

AttachmentKind = Literal["image", "audio", "video", "file"]


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageSent:
    """Answer of the Send API (a DM or a private reply)."""

    recipient_id: str
    message_id: str


@dataclass(frozen=True)
class CommentInfo:
    """A comment or reply as `comments list` shows it. `replies_count` is None for replies."""

    id: str
    text: str | None
    username: str | None
    timestamp: str | None
    like_count: int | None
    replies_count: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "username": self.username,
            "timestamp": self.timestamp,
            "like_count": self.like_count,
        }
        if self.replies_count is not None:
            out["replies_count"] = self.replies_count
        return out


@dataclass(frozen=True)
class Profile:
    """A person's profile (`GET /{igsid}`). `fields` holds every field Meta answered."""

    id: str
    name: str | None
    username: str | None
    profile_pic: str | None
    fields: dict[str, Any] = field(default_factory=dict)


# --- request bodies (Meta's Send API shapes) -----------------------------------------------


@dataclass(frozen=True)
class Button:
    """A template button: opens `url` (web_url) or sends `payload` back (postback)."""

    title: str
    url: str | None = None
    payload: str | None = None

    def body(self) -> dict[str, Any]:
        if self.url is not None:
            return {"type": "web_url", "url": self.url, "title": self.title}
        return {"type": "postback", "title": self.title, "payload": self.payload or ""}


@dataclass(frozen=True)
class Card:
    """One element of a generic template; `default_url` is the card's default action."""

    title: str
    subtitle: str | None = None
    image_url: str | None = None
    default_url: str | None = None
    buttons: tuple[Button, ...] = ()

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title}
        if self.subtitle is not None:
            out["subtitle"] = self.subtitle
        if self.image_url is not None:
            out["image_url"] = self.image_url
        if self.default_url is not None:
            out["default_action"] = {"type": "web_url", "url": self.default_url}
        if self.buttons:
            out["buttons"] = [b.body() for b in self.buttons]
        return out


@dataclass(frozen=True)
class QuickReply:
    title: str
    payload: str
    image_url: str | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"content_type": "text", "title": self.title, "payload": self.payload}
        if self.image_url is not None:
            out["image_url"] = self.image_url
        return out


def to_person(igsid: str) -> dict[str, Any]:
    return {"id": igsid}


def to_commenter(comment_id: str) -> dict[str, Any]:
    """A private reply: Meta finds the person from the comment."""
    return {"comment_id": comment_id}


def text_message(text: str, quick_replies: Sequence[QuickReply] = ()) -> dict[str, Any]:
    message: dict[str, Any] = {"text": text}
    if quick_replies:
        message["quick_replies"] = [q.body() for q in quick_replies]
    return message


def attachment_message(kind: AttachmentKind, url: str, reusable: bool = False) -> dict[str, Any]:
    return {"attachment": {"type": kind, "payload": {"url": url, "is_reusable": reusable}}}


def button_template_message(text: str, buttons: Sequence[Button]) -> dict[str, Any]:
    payload = {"template_type": "button", "text": text, "buttons": [b.body() for b in buttons]}
    return {"attachment": {"type": "template", "payload": payload}}


def generic_template_message(cards: Sequence[Card]) -> dict[str, Any]:
    payload = {"template_type": "generic", "elements": [c.body() for c in cards]}
    return {"attachment": {"type": "template", "payload": payload}}


def media_share_message(media_id: str) -> dict[str, Any]:
    """Shares one of the account's own posts."""
    return {"attachment": {"type": "MEDIA_SHARE", "payload": {"id": media_id}}}


def send_body(recipient: Mapping[str, Any], message: Mapping[str, Any]) -> dict[str, Any]:
    return {"recipient": dict(recipient), "message": dict(message)}


# --- helpers -------------------------------------------------------------------------------


def _seg(value: str) -> str:
    """One path segment; quoting keeps an odd id from changing the path."""
    if not value:
        raise ValueError("empty id in a Graph API path")
    return quote(value, safe="")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _next_cursor(paging: Mapping[str, Any]) -> str | None:
    """The `after` cursor of a page that has a next one; None at the end.

    A short page is not the end: only a missing `paging.next` is. We never request the `next`
    URL itself (Meta puts the access token in it); we take its cursor.
    """
    if not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    if isinstance(cursors, dict) and isinstance(cursors.get("after"), str) and cursors["after"]:
        return str(cursors["after"])
    nxt = paging.get("next")
    if isinstance(nxt, str):
        values = parse_qs(urlsplit(nxt).query).get("after")
        if values and values[0]:
            return values[0]
    return None


def _paging(body: Mapping[str, Any]) -> Mapping[str, Any]:
    paging = body.get("paging")
    return paging if isinstance(paging, dict) else {}


def _comment_info(raw: Mapping[str, Any], replies_count: int | None) -> CommentInfo:
    return CommentInfo(
        id=str(raw.get("id")),
        text=_str_or_none(raw.get("text")),
        username=_str_or_none(raw.get("username")),
        timestamp=_str_or_none(raw.get("timestamp")),
        like_count=_int_or_none(raw.get("like_count")),
        replies_count=replies_count,
    )


Requester = Callable[..., Awaitable[tuple[dict[str, Any], Usage]]]


# --- the calls -----------------------------------------------------------------------------


class EngagementMixin:
    """Messages, comments and profiles; a base of `GraphClient` (which provides `request`)."""

    request: Requester

    # messages

    async def send_message(
        self, token: str, body: Mapping[str, Any], *, sender: str = "me"
    ) -> MessageSent:
        """POST /{sender}/messages with a JSON body `{recipient, message}` (see `send_body`).

        Never retried here: a DM whose answer is lost may have been delivered.
        """
        endpoint = "POST /me/messages" if sender == "me" else "POST /{page-id}/messages"
        answer, _ = await self.request(
            "POST",
            f"{_seg(sender)}/messages",
            token,
            endpoint_name=endpoint,
            require=("message_id",),
            json_body=body,
        )
        recipient = answer.get("recipient_id")
        return MessageSent(
            recipient_id=str(recipient) if recipient is not None else "",
            message_id=str(answer["message_id"]),
        )

    async def send_text(
        self,
        token: str,
        to: str,
        text: str,
        quick_replies: Sequence[QuickReply] = (),
        *,
        sender: str = "me",
    ) -> MessageSent:
        body = send_body(to_person(to), text_message(text, quick_replies))
        return await self.send_message(token, body, sender=sender)

    async def send_attachment(
        self,
        token: str,
        to: str,
        kind: AttachmentKind,
        url: str,
        reusable: bool = False,
        *,
        sender: str = "me",
    ) -> MessageSent:
        body = send_body(to_person(to), attachment_message(kind, url, reusable))
        return await self.send_message(token, body, sender=sender)

    async def send_button_template(
        self, token: str, to: str, text: str, buttons: Sequence[Button], *, sender: str = "me"
    ) -> MessageSent:
        body = send_body(to_person(to), button_template_message(text, buttons))
        return await self.send_message(token, body, sender=sender)

    async def send_generic_template(
        self, token: str, to: str, cards: Sequence[Card], *, sender: str = "me"
    ) -> MessageSent:
        body = send_body(to_person(to), generic_template_message(cards))
        return await self.send_message(token, body, sender=sender)

    async def send_media_share(
        self, token: str, to: str, media_id: str, *, sender: str = "me"
    ) -> MessageSent:
        body = send_body(to_person(to), media_share_message(media_id))
        return await self.send_message(token, body, sender=sender)

    async def private_reply(
        self, token: str, comment_id: str, text: str, *, sender: str = "me"
    ) -> MessageSent:
        """A DM to the author of a comment (once per comment, within 7 days of it)."""
        body = send_body(to_commenter(comment_id), text_message(text))
        return await self.send_message(token, body, sender=sender)

    # comments

    async def _pages(
        self,
        path: str,
        token: str,
        fields: Sequence[str],
        limit: int | None,
        endpoint: str,
    ) -> list[dict[str, Any]]:
        """Items of a paged edge: the first `limit` (None: all, to the last page)."""
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        items: list[dict[str, Any]] = []
        after: str | None = None
        seen: set[str] = set()
        while True:
            want = (
                MAX_COMMENTS_PAGE if limit is None else min(MAX_COMMENTS_PAGE, limit - len(items))
            )
            params = {"fields": ",".join(fields), "limit": str(want)}
            if after:
                params["after"] = after
            body, _ = await self.request(
                "GET", path, token, params=params, endpoint_name=endpoint, require=("data",)
            )
            page = body["data"]
            if isinstance(page, list):
                items.extend(c for c in page if isinstance(c, dict) and c.get("id") is not None)
            if limit is not None and len(items) >= limit:
                return items[:limit]
            after = _next_cursor(_paging(body))
            if after is None:
                return items
            if after in seen:  # a cursor that does not move would loop forever
                raise GraphUnavailable(
                    "bad_answer", f"{endpoint}: paging repeats a cursor", endpoint=endpoint
                )
            seen.add(after)

    async def list_comments(
        self, media_id: str, token: str, *, limit: int | None = MAX_COMMENTS_PAGE
    ) -> list[CommentInfo]:
        """A media's top-level comments, newest first: the first `limit`, or all (None)."""
        raw = await self._pages(
            f"{_seg(media_id)}/comments",
            token,
            COMMENT_LIST_FIELDS,
            limit,
            "GET /{media-id}/comments",
        )
        out: list[CommentInfo] = []
        for item in raw:
            out.append(_comment_info(item, await self._replies_count(item, token)))
        return out

    async def _replies_count(self, item: Mapping[str, Any], token: str) -> int:
        edge = item.get("replies")
        if not isinstance(edge, dict):
            return 0  # Meta leaves the edge out when there are none
        data = edge.get("data")
        shown = len(data) if isinstance(data, list) else 0
        if not _paging(edge).get("next"):
            return shown
        # More replies than the nested edge shows: count them on the edge itself.
        return len(
            await self._pages(
                f"{_seg(str(item['id']))}/replies",
                token,
                ("id",),
                None,
                "GET /{comment-id}/replies",
            )
        )

    async def list_replies(
        self, comment_id: str, token: str, *, limit: int | None = MAX_COMMENTS_PAGE
    ) -> list[CommentInfo]:
        """Replies to a comment, oldest first: the first `limit`, or all (None)."""
        raw = await self._pages(
            f"{_seg(comment_id)}/replies",
            token,
            REPLY_LIST_FIELDS,
            limit,
            "GET /{comment-id}/replies",
        )
        return [_comment_info(item, None) for item in raw]

    async def comment_info(self, comment_id: str, token: str) -> CommentInfo:
        """One comment (GET /{comment-id}), e.g. its timestamp for the 7-day rule."""
        body, _ = await self.request(
            "GET",
            _seg(comment_id),
            token,
            params={"fields": ",".join(REPLY_LIST_FIELDS)},
            endpoint_name="GET /{comment-id}",
            require=("id",),
        )
        return _comment_info(body, None)

    async def find_reply(
        self, comment_id: str, token: str, *, username: str, text: str
    ) -> CommentInfo | None:
        """The account's own reply with this text, if it exists: a public reply whose answer
        was lost is looked for here before it is sent again."""
        for reply in await self.list_replies(comment_id, token, limit=None):
            if reply.username == username and reply.text == text:
                return reply
        return None

    async def reply_to_comment(self, comment_id: str, token: str, message: str) -> str:
        """A public reply (POST /{comment-id}/replies) → the reply's id."""
        body, _ = await self.request(
            "POST",
            f"{_seg(comment_id)}/replies",
            token,
            data={"message": message},
            endpoint_name="POST /{comment-id}/replies",
            require=("id",),
        )
        return str(body["id"])

    async def reply_to_mention(
        self, ig_user_id: str, token: str, media_id: str, comment_id: str, message: str
    ) -> str:
        """A public reply to a comment that @mentions the account on another account's media
        (POST /{ig-user-id}/mentions with media_id, comment_id, message) → the reply's id.

        `/{comment-id}/replies` works only on the account's own media; Meta's IG User
        Mentions reference answers a mention in a comment through this edge."""
        if not media_id or not comment_id:
            raise ValueError("a reply to a mention needs the media id and the comment id")
        body, _ = await self.request(
            "POST",
            f"{_seg(ig_user_id)}/mentions",
            token,
            data={"media_id": media_id, "comment_id": comment_id, "message": message},
            endpoint_name="POST /{ig-user-id}/mentions",
            require=("id",),
        )
        return str(body["id"])

    async def set_comment_hidden(self, comment_id: str, token: str, hidden: bool) -> bool:
        """POST /{comment-id} hide=true|false → Meta's `success`."""
        body, _ = await self.request(
            "POST",
            _seg(comment_id),
            token,
            data={"hide": "true" if hidden else "false"},
            endpoint_name="POST /{comment-id}",
            require=("success",),
        )
        return body["success"] is True

    async def hide_comment(self, comment_id: str, token: str) -> bool:
        return await self.set_comment_hidden(comment_id, token, True)

    async def unhide_comment(self, comment_id: str, token: str) -> bool:
        return await self.set_comment_hidden(comment_id, token, False)

    async def delete_comment(self, comment_id: str, token: str) -> bool:
        body, _ = await self.request(
            "DELETE",
            _seg(comment_id),
            token,
            endpoint_name="DELETE /{comment-id}",
            require=("success",),
        )
        return body["success"] is True

    # profiles

    async def profile(
        self, igsid: str, token: str, fields: Sequence[str] = PROFILE_FIELDS
    ) -> Profile:
        """GET /{igsid}?fields=… — a person who wrote to or commented on the account."""
        body, _ = await self.request(
            "GET",
            _seg(igsid),
            token,
            params={"fields": ",".join(fields)},
            endpoint_name="GET /{igsid}",
        )
        return Profile(
            id=str(body.get("id") or igsid),
            name=_str_or_none(body.get("name")),
            username=_str_or_none(body.get("username")),
            profile_pic=_str_or_none(body.get("profile_pic")),
            fields=dict(body),
        )


__all__ = [
    "COMMENT_LIST_FIELDS",
    "MAX_COMMENTS_PAGE",
    "PROFILE_FIELDS",
    "REPLY_LIST_FIELDS",
    "AttachmentKind",
    "Button",
    "Card",
    "CommentInfo",
    "EngagementMixin",
    "MessageSent",
    "Profile",
    "QuickReply",
    "attachment_message",
    "button_template_message",
    "generic_template_message",
    "media_share_message",
    "send_body",
    "text_message",
    "to_commenter",
    "to_person",
]
