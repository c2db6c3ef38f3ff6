"""Meta's time windows for messages, as pure checks (the caller supplies the clock).

A DM may answer a person within 24 h of their last message (7 days with the HUMAN_AGENT tag);
a private reply may answer a comment within 7 days of it. Each function returns why a message
would be refused, in words, or None when it may go.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

DM_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
PRIVATE_REPLY_WINDOW = timedelta(days=7)


def parse_graph_time(value: str) -> datetime:
    """Graph's timestamp (2026-01-31T12:00:00+0000) as an aware UTC datetime; ValueError if not."""
    parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
    return parsed.astimezone(UTC)


def _age(then: datetime, now: datetime) -> timedelta:
    if then.tzinfo is None or now.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return now - then


def private_reply_too_late(commented_at: datetime, now: datetime) -> str | None:
    age = _age(commented_at, now)
    if age > PRIVATE_REPLY_WINDOW:
        days = age.total_seconds() / 86400
        return f"the comment is {days:.1f} days old; a private reply must follow within 7 days"
    return None


def dm_outside_window(
    last_message_at: datetime | None, now: datetime, *, human_agent: bool = False
) -> str | None:
    """None also when the person's last message is unknown: then Meta's answer decides."""
    if last_message_at is None:
        return None
    window = HUMAN_AGENT_WINDOW if human_agent else DM_WINDOW
    age = _age(last_message_at, now)
    if age > window:
        hours = age.total_seconds() / 3600
        limit = "7 days (HUMAN_AGENT)" if human_agent else "24 hours"
        return f"the person last wrote {hours:.1f} hours ago; a message must follow within {limit}"
    return None
