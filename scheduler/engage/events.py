"""Webhook POST bodies → typed events. Pure: no I/O, no clock.

Meta sends `{"object": "instagram", "entry": [...]}`; each entry holds `messaging` items
(message, quick reply, postback, opt-in) or `changes` (comments, mentions, live comments).
Every item becomes at most one `WebhookEvent` with a de-duplication key built from Meta's
own ids, because Meta retries a batch for up to 36 hours and a batch may be delivered again.

The body is hostile until proven otherwise: a wrong shape at the top refuses the whole body
(`PayloadRefused`); a single item of an unknown or broken shape is skipped with a reason
(`Skipped`), so one odd item does not make Meta retry the other events for a day and a half.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

EventKind = Literal["message", "quick_reply", "postback", "optin", "comment", "mention"]
EVENT_KINDS: tuple[EventKind, ...] = (
    "comment", "mention", "message", "postback", "quick_reply", "optin"
)

MAX_DEPTH = 32  # Meta's bodies are about 7 deep; deeper is not from Meta
MAX_ID_CHARS = 512
_OBJECTS = ("instagram", "page")  # "page": Facebook Login apps may label messaging so


class PayloadRefused(Exception):
    """The body as a whole is not a webhook notification (answered 400)."""


@dataclass(frozen=True)
class Skipped:
    """An item that produced no event, and why (logged, not an error for Meta)."""

    where: str  # e.g. "entry[0].messaging[2]"
    reason: str


@dataclass(frozen=True)
class WebhookEvent:
    """One notification item, normalised.

    `dedup_key` is unique per receiving account and item: the same item delivered again has
    the same key. `raw` is the item as received (JSON text, keys sorted). An echo
    (`is_echo`) is the account's own message: its sender is the account, its recipient the
    person; it is stored but never triggers rules.
    """

    kind: EventKind
    ig_account_id: str
    dedup_key: str
    sender_id: str | None = None
    recipient_id: str | None = None  # messaging only; for an echo, the person written to
    text: str | None = None
    payload: str | None = None
    media_id: str | None = None
    comment_id: str | None = None
    parent_id: str | None = None
    username: str | None = None
    timestamp: datetime | None = None
    is_echo: bool = False
    attachments: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    raw: str = ""

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the event (timestamps in ISO 8601, raw parsed back)."""
        return {
            "kind": self.kind,
            "ig_account_id": self.ig_account_id,
            "dedup_key": self.dedup_key,
            "sender_id": self.sender_id,
            "recipient_id": self.recipient_id,
            "text": self.text,
            "payload": self.payload,
            "media_id": self.media_id,
            "comment_id": self.comment_id,
            "parent_id": self.parent_id,
            "username": self.username,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "is_echo": self.is_echo,
            "attachments": [dict(a) for a in self.attachments],
            "raw": json.loads(self.raw) if self.raw else None,
        }


@dataclass
class Normalised:
    events: list[WebhookEvent] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


class _Bad(Exception):
    """An item is broken; the message says which field and how."""


def parse_body(raw: bytes) -> Any:
    """JSON text → Python value, refusing what no webhook sender produces: invalid UTF-8,
    invalid JSON, NaN/Infinity, nesting deeper than `MAX_DEPTH`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadRefused("the body is not UTF-8") from None

    def no_constants(name: str) -> Any:
        raise PayloadRefused(f"the body holds {name}, which is not JSON")

    try:
        # the C decoder guards its own recursion: a million `[` ends in RecursionError
        value = json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as e:
        raise PayloadRefused(f"the body is not JSON: {e.msg} at character {e.pos}") from None
    except RecursionError:
        raise PayloadRefused(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    if _depth(value) > MAX_DEPTH:
        raise PayloadRefused(f"the body is nested deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """Deepest nesting of lists and objects, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def normalise(body: Any) -> Normalised:
    """A parsed webhook body → its events, in the order Meta listed them."""
    if not isinstance(body, dict):
        raise PayloadRefused("the body must be a JSON object")
    obj = body.get("object")
    entries = body.get("entry")
    if not isinstance(obj, str):
        raise PayloadRefused("field 'object' must be a string")
    if not isinstance(entries, list):
        raise PayloadRefused("field 'entry' must be a list")
    out = Normalised()
    if obj not in _OBJECTS:
        out.skipped.append(Skipped("object", f"object {_short(obj)!r} is not instagram"))
        return out
    for i, entry in enumerate(entries):
        where = f"entry[{i}]"
        try:
            if not isinstance(entry, dict):
                raise _Bad("must be an object")
            account = _id(entry, "id", required=True)
            entry_time = _time(entry.get("time"), "time")
        except _Bad as e:
            out.skipped.append(Skipped(where, str(e)))
            continue
        assert account is not None
        for list_name, one in (("messaging", _messaging_item), ("changes", _change_item)):
            items = entry.get(list_name)
            if items is None:
                continue
            if not isinstance(items, list):
                out.skipped.append(Skipped(f"{where}.{list_name}", "must be a list"))
                continue
            for j, item in enumerate(items):
                item_where = f"{where}.{list_name}[{j}]"
                try:
                    if not isinstance(item, dict):
                        raise _Bad("must be an object")
                    event = one(account, entry_time, item)
                except _Bad as e:
                    out.skipped.append(Skipped(item_where, str(e)))
                    continue
                if isinstance(event, str):
                    out.skipped.append(Skipped(item_where, event))
                else:
                    out.events.append(event)
    return out


def _messaging_item(account: str, entry_time: datetime | None, item: dict[str, Any]) -> WebhookEvent | str:
    sender = _id(_obj(item, "sender"), "id", "sender.id")
    recipient = _id(_obj(item, "recipient"), "id", "recipient.id")
    ts = _time(item.get("timestamp"), "timestamp") or entry_time
    raw = _canonical(item)
    common: dict[str, Any] = {"ig_account_id": account, "timestamp": ts, "raw": raw}
    if "message" in item:
        msg = _obj(item, "message", required=True)
        is_echo = _bool(msg, "is_echo")
        mid = _id(msg, "mid", "message.mid")
        has_quick = msg.get("quick_reply") is not None
        quick = _obj(msg, "quick_reply")
        payload = _str(quick, "payload", "message.quick_reply.payload")
        kind: EventKind = "quick_reply" if has_quick and not is_echo else "message"
        attachments = msg.get("attachments", [])
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            raise _Bad("field 'message.attachments' must be a list of objects")
        return WebhookEvent(
            kind=kind,
            dedup_key=_key(account, "message", mid, raw),
            sender_id=sender,
            recipient_id=recipient,
            text=_str(msg, "text", "message.text"),
            payload=payload,
            is_echo=is_echo,
            attachments=tuple(attachments),
            **common,
        )
    if "postback" in item:
        pb = _obj(item, "postback", required=True)
        return WebhookEvent(
            kind="postback",
            dedup_key=_key(account, "postback", _id(pb, "mid", "postback.mid"), raw),
            sender_id=sender,
            recipient_id=recipient,
            text=_str(pb, "title", "postback.title"),
            payload=_str(pb, "payload", "postback.payload"),
            **common,
        )
    if "optin" in item:
        optin = _obj(item, "optin", required=True)
        return WebhookEvent(
            kind="optin",
            dedup_key=_key(account, "optin", None, raw),
            sender_id=sender,
            recipient_id=recipient,
            payload=_str(optin, "ref", "optin.ref") or _str(optin, "payload", "optin.payload"),
            **common,
        )
    known = ", ".join(k for k in item if k not in ("sender", "recipient", "timestamp"))
    return f"no message, postback or optin in this item (keys: {_short(known)!r})"


def _change_item(account: str, entry_time: datetime | None, item: dict[str, Any]) -> WebhookEvent | str:
    field_name = item.get("field")
    if not isinstance(field_name, str):
        raise _Bad("field 'field' must be a string")
    value = _obj(item, "value", required=True)
    raw = _canonical(item)
    ts = _time(value.get("timestamp"), "value.timestamp") or entry_time
    sender_obj = _obj(value, "from")
    sender = _id(sender_obj, "id", "value.from.id") if sender_obj else None
    username = _str(sender_obj, "username", "value.from.username") if sender_obj else None
    media_obj = _obj(value, "media")
    media_id = (_id(media_obj, "id", "value.media.id") if media_obj else None) or _id(
        value, "media_id", "value.media_id"
    )
    if field_name in ("comments", "live_comments"):
        comment_id = _id(value, "id", "value.id", required=True)
        return WebhookEvent(
            kind="comment",
            ig_account_id=account,
            dedup_key=_key(account, "comment", comment_id, raw),
            sender_id=sender,
            username=username,
            text=_str(value, "text", "value.text"),
            media_id=media_id,
            comment_id=comment_id,
            parent_id=_id(value, "parent_id", "value.parent_id"),
            timestamp=ts,
            raw=raw,
        )
    if field_name == "mentions":
        # in a comment: comment_id and media_id; in a caption: media_id only
        comment_id = _id(value, "comment_id", "value.comment_id")
        if comment_id is None and media_id is None:
            raise _Bad("a mention needs value.comment_id or value.media_id")
        return WebhookEvent(
            kind="mention",
            ig_account_id=account,
            dedup_key=_key(account, "mention", comment_id or f"media-{media_id}", raw),
            sender_id=sender,
            username=username,
            text=_str(value, "text", "value.text"),
            media_id=media_id,
            comment_id=comment_id,
            timestamp=ts,
            raw=raw,
        )
    return f"field {_short(field_name)!r} is not handled"


# ---------------------------------------------------------------- typed field readers
def _obj(data: Mapping[str, Any], name: str, *, required: bool = False) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        if required:
            raise _Bad(f"field {name!r} is missing")
        return {}
    if not isinstance(value, dict):
        raise _Bad(f"field {name!r} must be an object")
    return value


def _id(data: Mapping[str, Any], key: str, where: str | None = None, *, required: bool = False) -> str | None:
    name = where or key
    value = data.get(key)
    if value is None:
        if required:
            raise _Bad(f"field {name!r} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Bad(f"field {name!r} must be a string id")
    text = str(value)
    if not text or len(text) > MAX_ID_CHARS or not text.isprintable() or " " in text:
        raise _Bad(f"field {name!r} is not a valid id")
    return text


def _str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(f"field {where!r} must be a string")
    return value


def _bool(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise _Bad(f"field 'message.{key}' must be true or false")
    return value


def _time(value: Any, name: str) -> datetime | None:
    """Meta's times: seconds (entry.time of changes) or milliseconds (messaging); an ISO
    string occurs in some comment payloads."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Bad(f"field {name!r} must be a time")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise _Bad(f"field {name!r} is not a usable time") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("+0000", "+00:00"))
        except ValueError:
            raise _Bad(f"field {name!r} is not a usable time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise _Bad(f"field {name!r} must be a time")


def _canonical(item: Mapping[str, Any]) -> str:
    return json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _key(account: str, kind: str, meta_id: str | None, raw: str) -> str:
    """`<account>:<kind>:<Meta's id>`, or a hash of the item where Meta gives no id (an
    opt-in): the same item delivered again hashes the same."""
    if meta_id is not None:
        return f"{account}:{kind}:{meta_id}"
    return f"{account}:{kind}:sha256-{hashlib.sha256(raw.encode()).hexdigest()}"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
