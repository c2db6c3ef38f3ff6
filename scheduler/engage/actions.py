"""Engagement actions as plain data: their kinds, which may repeat, their budgets, what
`actions --json` prints, and the checks of ids, texts and keys made before anything is
written or sent (README "Engagement"). No I/O.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from scheduler.clock import iso
from scheduler.config import EngagementSettings
from scheduler.engage.messages import MAX_ID_DIGITS, MAX_TEXT_BYTES, OutboundMessage, render_content
from scheduler.problems import Problem
from scheduler.queuefile.messages import MessageSpec
from scheduler.store import ActionRecord, NewAction

ActionKind = Literal["message", "private_reply", "reply", "hide", "unhide", "delete"]
ACTION_KINDS: tuple[ActionKind, ...] = ("message", "private_reply", "reply", "hide", "unhide", "delete")
# Calls that may simply be made again when their answer is lost (Meta's answer is the same).
IDEMPOTENT: frozenset[str] = frozenset({"hide", "unhide", "delete"})
# Calls that are never repeated by themselves: a lost answer makes the action `unknown`.
AT_MOST_ONCE: frozenset[str] = frozenset({"message", "private_reply"})
MODERATION: tuple[ActionKind, ...] = ("hide", "unhide", "delete")

REPLY_MAX_CHARS = 2200  # a comment's text limit (as captions)
KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
BUDGET_WINDOW_S = 3600.0  # every engagement budget is per rolling hour


@dataclass(frozen=True)
class Budget:
    limit: int
    kinds: tuple[str, ...]
    what: str  # how the reason names it


def budget_for(kind: str, settings: EngagementSettings) -> Budget | None:
    """The hourly budget an action of `kind` counts against (per account), if any."""
    if kind == "message":
        return Budget(settings.messages_per_hour, ("message",), "messages")
    if kind == "private_reply":
        return Budget(settings.private_replies_per_hour, ("private_reply",), "private replies")
    return None


def new_key(kind: str) -> str:
    """A key for an action given without --key: unique, so it is sent once."""
    return f"{kind}:{uuid.uuid4().hex[:20]}"


# --- planned actions -----------------------------------------------------------------------


def message_action(key: str, account: str, message: OutboundMessage, source: str,
                   at: datetime | None = None) -> NewAction:
    """A DM, or a private reply when the message goes to a `comment`."""
    if message.comment is not None:
        text = render_content(message.content).get("text")
        return NewAction(key=key, account=account, kind="private_reply", target=message.comment,
                         payload={"text": text}, source=source, at=at)
    assert message.to is not None
    return NewAction(key=key, account=account, kind="message", target=message.to,
                     payload={"message": render_content(message.content)}, source=source, at=at)


def queued_message_action(spec: MessageSpec) -> NewAction:
    """A queue file's planned message, sent by the daemon at its time."""
    return message_action(spec.key, spec.account, spec.message, f"queue:{spec.source_file or '-'}", spec.at)


def comment_action(key: str, account: str, kind: ActionKind, comment_id: str, source: str,
                   text: str | None = None) -> NewAction:
    payload: dict[str, Any] = {"text": text} if text is not None else {}
    return NewAction(key=key, account=account, kind=kind, target=comment_id, payload=payload, source=source)


# --- checks before anything is written -----------------------------------------------------


def id_problem(value: str, field: str, what: str, source: str = "command line") -> Problem | None:
    """Ids are digits (Meta's ids; the n8n node's "Invalid Recipient ID")."""
    if not value.isascii() or not value.isdigit():
        return Problem(source, f"{what} must be made of digits only, not {value!r}", field=field)
    if len(value) > MAX_ID_DIGITS:
        return Problem(source, f"{what} is longer than {MAX_ID_DIGITS} digits", field=field)
    return None


def reply_text_problem(text: str, field: str = "TEXT", source: str = "command line") -> Problem | None:
    if not text.strip():
        return Problem(source, "a reply must not be empty", field=field)
    if "\x00" in text:
        return Problem(source, "must not contain NUL characters", field=field)
    if len(text) > REPLY_MAX_CHARS:
        return Problem(source, f"is {len(text):,} characters; a comment takes at most {REPLY_MAX_CHARS:,}",
                       field=field)
    return None


def key_problem(key: str, field: str = "--key", source: str = "command line") -> Problem | None:
    if not KEY_RE.match(key):
        return Problem(source, f"key {key!r} must be 1-200 letters, digits, '_', '.', ':' or '-'", field=field)
    return None


__all__ = [
    "ACTION_KINDS", "AT_MOST_ONCE", "BUDGET_WINDOW_S", "IDEMPOTENT", "MAX_TEXT_BYTES", "MODERATION",
    "REPLY_MAX_CHARS", "ActionKind", "Budget", "action_view", "budget_for", "comment_action", "id_problem",
    "key_problem", "message_action", "new_key", "queued_message_action", "reply_text_problem",
]  # fmt: skip


# --- what commands print -------------------------------------------------------------------


def action_view(a: ActionRecord) -> dict[str, Any]:
    """One element of `actions --json` (README "Engagement")."""
    return {
        "key": a.key,
        "account": a.account,
        "kind": a.kind,
        "target": a.target,
        "state": a.state,
        "reason": a.reason,
        "result_id": a.result_id,
        "error": a.error,
        "source": a.source,
        "attempts": a.attempts,
        "next_action_at": iso(a.next_action_at),
        "created_at": iso(a.created_at),
        "done_at": iso(a.done_at),
    }
