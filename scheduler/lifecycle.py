"""The post lifecycle as plain data and arithmetic: states, lead windows, polling, backoff.

No I/O here: the pipeline asks these functions what to do and when, so they can be tested
with a fake clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from scheduler.config import LeadSettings, RetrySettings, StagingSettings


class State(StrEnum):
    PLANNED = "planned"  # waiting for its lead window to open
    STAGING = "staging"  # containers created, processing
    READY = "ready"  # every container FINISHED, waiting for the due time
    PUBLISHING = "publishing"  # media_publish sent (or about to be)
    VERIFYING = "verifying"  # outcome of a publish unknown: ask the container
    DEFERRED = "deferred"  # quota full or account throttled: waits for a slot
    WAITING = "waiting"  # account needs re-authorisation
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = frozenset(
    {
        State.PLANNED,
        State.STAGING,
        State.READY,
        State.PUBLISHING,
        State.VERIFYING,
        State.DEFERRED,
        State.WAITING,
    }
)
FINISHED = frozenset({State.PUBLISHED, State.FAILED, State.CANCELLED})
# a re-import may replace the spec of a post in these states (nothing has gone live)
EDITABLE = frozenset(
    {
        State.PLANNED,
        State.STAGING,
        State.READY,
        State.DEFERRED,
        State.WAITING,
        State.FAILED,
        State.CANCELLED,
    }
)


def lead_seconds(kind: str, lead: LeadSettings) -> float:
    return float(getattr(lead, kind))


def stage_at(due_at: datetime, kind: str, lead: LeadSettings) -> datetime:
    """When to create the containers of a post due at `due_at`."""
    return due_at - timedelta(seconds=lead_seconds(kind, lead))


def backoff_s(attempt: int, retries: RetrySettings) -> float:
    """Exponential backoff: attempt 1 → base, 2 → 2·base, … capped."""
    return float(min(retries.cap_s, retries.base_s * (2 ** max(0, attempt - 1))))


def retries_left(attempt: int, retries: RetrySettings) -> bool:
    return attempt < retries.max_tries


OVERDUE_POLL_FRACTION = 8.0  # overdue: wait 1/8 of the time the post is late (see poll_delay_s)


def poll_delay_s(
    now: datetime,
    due_at: datetime,
    created_at: datetime,
    expected_processing_s: float,
    staging: StagingSettings,
    spacing: float = 1.0,
) -> float:
    """How long to wait before asking a container's status again.

    First check near the expected processing time; then sparse while the due time is far
    (Meta suggests about once a minute), dense as it approaches, so the post is published the
    moment the container is ready. `spacing` > 1 stretches waits when usage is high — but
    never so much that a due post is checked late.

    Past the due time the post is late already: check every `poll_min_s` at first, then wait
    an eighth of the time it is overdue (at most `poll_max_s`), so a container that finishes
    late is published at most about 12 % of its lateness after it finished, and one stuck in
    processing is not asked every second for hours.
    """
    age = (now - created_at).total_seconds()
    until_due = (due_at - now).total_seconds()
    if until_due <= 0:
        return max(staging.poll_min_s, min(staging.poll_max_s, -until_due / OVERDUE_POLL_FRACTION))
    if age < expected_processing_s:
        delay = expected_processing_s - age
    else:
        delay = max(staging.poll_min_s, min(staging.poll_max_s, age / 2))
    delay *= spacing
    # denser as the due time approaches: never wait more than half of what is left
    return max(staging.poll_min_s, min(delay, until_due / 2))
