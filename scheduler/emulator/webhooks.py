"""Webhook notifications as Meta sends them: Meta-shaped bodies, signed with the app secret,
POSTed to a receiver (repeats and batches included, since Meta retries and batches).

`build_items` turns short event specs into Meta's entry items (creating a real comment in
the model when a comment event names a media of the emulator and no comment id), `build_body`
wraps them, `deliver` signs and posts the bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from .state import EmulatorState

SIGNATURE_HEADER = "X-Hub-Signature-256"
MESSAGE_ID_BASE = 19_000_000_000_000_000
DEFAULT_SENDER = "9000000000000001"
WEBHOOK_KINDS = ("message", "quick_reply", "postback", "optin", "comment", "mention")
SIGNATURES = ("valid", "wrong", "missing")
DELIVERY_TIMEOUT_S = 30.0
_SPEC_KEYS = {
    "kind", "account", "sender_id", "text", "payload", "title", "ref", "mid", "is_echo",
    "attachments", "media_id", "comment_id", "parent_id", "username", "timestamp",
}


@dataclass
class WebhookTarget:
    """Where `deliver` posts by default, and the app secret it signs with."""

    url: str | None = None
    app_secret: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {"url": self.url, "app_secret_set": bool(self.app_secret)}


@dataclass(frozen=True)
class BuiltItem:
    account: str
    list_name: str  # "messaging" or "changes"
    item: dict[str, Any]
    ids: dict[str, Any]  # what a test needs to find the event again (mid, comment id, …)


def build_items(state: EmulatorState, specs: list[dict[str, Any]]) -> list[BuiltItem]:
    """Event specs → Meta's items. A spec: `{kind, account, sender_id?, text?, payload?,
    title?, ref?, mid?, is_echo?, attachments?, media_id?, comment_id?, parent_id?,
    username?, timestamp?}` (timestamp in seconds; default: the emulator's now)."""
    return [_item(state, spec) for spec in specs]


def _item(state: EmulatorState, spec: dict[str, Any]) -> BuiltItem:
    if not isinstance(spec, dict):
        raise ValueError("each event must be an object")
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ValueError(f"unknown event keys: {', '.join(sorted(unknown))}")
    kind = spec.get("kind")
    if kind not in WEBHOOK_KINDS:
        raise ValueError(f"kind must be one of {', '.join(WEBHOOK_KINDS)}")
    account = str(spec["account"])
    sender = str(spec.get("sender_id", DEFAULT_SENDER))
    now = float(spec.get("timestamp", state.now()))
    if kind in ("comment", "mention"):
        return _change(state, kind, account, sender, spec, now)
    item: dict[str, Any] = {
        "sender": {"id": account if spec.get("is_echo") else sender},
        "recipient": {"id": sender if spec.get("is_echo") else account},
        "timestamp": int(now * 1000),
    }
    mid = str(spec.get("mid") or _new_mid(state))
    if kind in ("message", "quick_reply"):
        message: dict[str, Any] = {"mid": mid}
        if spec.get("text") is not None:
            message["text"] = str(spec["text"])
        if spec.get("attachments") is not None:
            message["attachments"] = spec["attachments"]
        if spec.get("is_echo"):
            message["is_echo"] = True
        if kind == "quick_reply":
            message["quick_reply"] = {"payload": str(spec.get("payload", ""))}
        item["message"] = message
    elif kind == "postback":
        item["postback"] = {"mid": mid, "title": str(spec.get("title", spec.get("text", ""))),
                            "payload": str(spec.get("payload", ""))}
    else:  # optin
        item["optin"] = {"ref": str(spec.get("ref", spec.get("payload", "")))}
        mid = ""
    return BuiltItem(account, "messaging", item, {"kind": kind, "account": account, "mid": mid or None})


def _change(
    state: EmulatorState, kind: str, account: str, sender: str, spec: dict[str, Any], now: float
) -> BuiltItem:
    media_id = spec.get("media_id")
    text = str(spec.get("text", ""))
    username = str(spec.get("username", "visitor"))
    if kind == "comment":
        comment_id = spec.get("comment_id")
        if comment_id is None:
            if media_id is None:
                raise ValueError("a comment event needs media_id or comment_id")
            # a comment Meta tells about exists: replies, private replies and hides can act on it
            comment_id = state.add_comment(str(media_id), text, username,
                                           spec.get("parent_id"), from_id=sender)
        value: dict[str, Any] = {
            "from": {"id": sender, "username": username},
            "id": str(comment_id),
            "text": text,
        }
        if media_id is not None:
            value["media"] = {"id": str(media_id), "media_product_type": "FEED"}
        if spec.get("parent_id") is not None:
            value["parent_id"] = str(spec["parent_id"])
        change = {"field": "comments", "value": value}
        ids: dict[str, Any] = {"kind": kind, "account": account, "comment_id": str(comment_id)}
    else:
        value = {"media_id": str(media_id)} if media_id is not None else {}
        if spec.get("comment_id") is not None:
            value["comment_id"] = str(spec["comment_id"])
        change = {"field": "mentions", "value": value}
        ids = {"kind": kind, "account": account, "comment_id": value.get("comment_id"),
               "media_id": value.get("media_id")}
    return BuiltItem(account, "changes", {**change, "_time": int(now)}, ids)


def _new_mid(state: EmulatorState) -> str:
    with state.lock:
        return "m_" + state._new_id(MESSAGE_ID_BASE)


def build_body(items: list[BuiltItem]) -> dict[str, Any]:
    """One notification: an entry per item, as Meta mostly sends them (entry time in ms for
    messaging, in seconds for changes)."""
    entries = []
    for built in items:
        item = dict(built.item)
        if built.list_name == "changes":
            entries.append({"id": built.account, "time": item.pop("_time"), "changes": [item]})
        else:
            entries.append({"id": built.account, "time": item["timestamp"], "messaging": [item]})
    return {"object": "instagram", "entry": entries}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def signature_for(secret: str, raw: bytes, mode: str) -> dict[str, str]:
    """Meta's header: `sha256=<hex HMAC-SHA256 of the raw body, keyed with the app secret>`
    (computed here on its own, not with igsched's code, so the two check each other)."""
    if mode == "missing":
        return {}
    key = (secret + "-wrong" if mode == "wrong" else secret).encode()
    return {SIGNATURE_HEADER: "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()}


def check_options(repeat: int, signature: str) -> None:
    if signature not in SIGNATURES:
        raise ValueError(f"signature must be one of {', '.join(SIGNATURES)}")
    if not 1 <= repeat <= 100:
        raise ValueError("repeat must be between 1 and 100")


async def deliver(
    url: str, secret: str, bodies: list[bytes], *, repeat: int = 1, signature: str = "valid"
) -> list[dict[str, Any]]:
    """POST each body (each `repeat` times, the same bytes, as Meta retries), one after the
    other; returns `{status, bytes}` per POST (`status` null and `error` when it failed)."""
    check_options(repeat, signature)
    results: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for raw in bodies:
            headers = {"Content-Type": "application/json", **signature_for(secret, raw, signature)}
            for _ in range(repeat):
                try:
                    async with session.post(url, data=raw, headers=headers) as resp:
                        await resp.read()
                        results.append({"status": resp.status, "bytes": len(raw)})
                except (aiohttp.ClientError, TimeoutError) as e:
                    results.append({"status": None, "bytes": len(raw),
                                    "error": type(e).__name__})
    return results
