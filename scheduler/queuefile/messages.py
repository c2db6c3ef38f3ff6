"""Planned messages in queue files (README "Engagement"): a `messages:` list beside `posts:`.

An entry has a `key` (optional: without one its identity is a hash of its content), an
`account`, an `at`, `to` (an IGSID) or `comment` (a private reply), and a message as in a
message file. Key, account and time follow the posts' rules (files.py checks them); the
message itself is validated by `engage.messages`, with the same rules as `message send`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scheduler.engage.messages import TOP_KEYS as MESSAGE_KEYS
from scheduler.engage.messages import OutboundMessage, parse_message, render_content
from scheduler.problems import InvalidInput
from scheduler.queuefile.fields import Ctx

ENTRY_KEYS = ("key", "account", "at", "timezone", *MESSAGE_KEYS)


@dataclass(frozen=True)
class MessageSpec:
    """A validated planned message. `at` None: as soon as possible."""

    key: str
    account: str
    at: datetime | None
    message: OutboundMessage
    source_file: str | None = None

    def content_hash(self) -> str:
        m = self.message
        content = {"account": self.account, "at": self.at.isoformat() if self.at else None, "to": m.to,
                   "comment": m.comment, "message": render_content(m.content)}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def message_of(ctx: Ctx, raw: dict[Any, Any]) -> OutboundMessage | None:
    """The message part of an entry; every problem goes to `ctx` (file, entry, field)."""
    body = {k: v for k, v in raw.items() if k in MESSAGE_KEYS}
    try:
        return parse_message(body, source=ctx.file, entry=ctx.post)
    except InvalidInput as e:
        ctx.problems.extend(e.problems)
        return None


def derived_message_key(spec_hash: str) -> str:
    """Key for a message written without one: stable, so a second import adds nothing."""
    return "m-" + spec_hash[:12]


__all__ = ["ENTRY_KEYS", "MessageSpec", "derived_message_key", "message_of"]
