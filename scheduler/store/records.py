"""Typed views of rows, so callers do not pass raw mappings around."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Self, TypedDict

from scheduler.models import PostSpec

_FIELDS: dict[type, tuple[str, ...]] = {}  # a record class's field names: fields() is slow


class _FromRow:
    @classmethod
    def from_row(cls, row: Any) -> Self:
        names = _FIELDS.get(cls)
        if names is None:
            names = _FIELDS[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
        if row._fields == names:
            # the row is exactly the record, in order (the usual `select(table)` or
            # `RETURNING *table.c`): filled without the frozen dataclass's __init__, which
            # sets each field through object.__setattr__ (23 µs for a post, against 3; a
            # burst builds several per post, on the one thread that runs SQLite's writes).
            # The records have no __post_init__ to skip.
            rec = object.__new__(cls)
            rec.__dict__.update(zip(names, row, strict=True))
            return rec
        m = row._mapping
        return cls(**{name: m[name] for name in names})


@dataclass(frozen=True)
class PostRecord(_FromRow):
    id: int
    key: str
    account: str
    kind: str
    spec: dict[str, Any]
    spec_hash: str
    due_at: datetime
    asap: bool
    state: str
    reason: str | None
    preflight: str | None
    next_action_at: datetime
    attempts: int
    lease_owner: str | None
    lease_until: datetime | None
    lease_token: str | None
    container_id: str | None
    container_created_at: datetime | None
    publish_started_at: datetime | None
    media_id: str | None
    permalink: str | None
    published_at: datetime | None
    lateness_s: float | None
    late_cause: str | None
    hold: str | None
    followup_pending: bool
    comment_state: str | None
    comment_id: str | None
    comment_error: str | None
    source_file: str | None
    created_at: datetime
    updated_at: datetime

    def post_spec(self) -> PostSpec:
        return PostSpec.from_content(self.spec)


@dataclass(frozen=True)
class MediaRecord(_FromRow):
    id: int
    post_id: int
    position: int
    media_kind: str
    source: str
    container_id: str | None
    container_created_at: datetime | None
    status_code: str | None
    status_checked_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class AccountRecord(_FromRow):
    name: str
    ig_user_id: str
    paused_until: datetime | None
    pause_reason: str | None
    needs_reauth: bool
    reauth_reason: str | None
    quota_total: int | None
    quota_duration_s: int | None
    quota_usage: int | None
    quota_checked_at: datetime | None
    usage_app_pct: int | None
    usage_buc_pct: int | None
    usage_regain_s: float | None
    usage_at: datetime | None
    updated_at: datetime | None


@dataclass
class EnqueueReport:
    new: list[str]
    updated: list[str]
    unchanged: list[str]
    kept: list[tuple[str, str]]  # (key, why the re-import did not change it)
    actions: list[Planned] = field(default_factory=list)  # a queue file's planned messages


class PostChanges(TypedDict, total=False):
    """Columns a step may change on a post it holds. The state is not among them: it changes
    only through a named transition (lifecycle.POSTS); the lease columns belong to claims."""

    reason: str | None
    preflight: str | None
    next_action_at: datetime
    attempts: int
    container_id: str | None
    container_created_at: datetime | None
    publish_started_at: datetime | None
    media_id: str | None
    permalink: str | None
    published_at: datetime | None
    lateness_s: float | None
    late_cause: str | None
    hold: str | None
    followup_pending: bool
    comment_state: str | None
    comment_id: str | None
    comment_error: str | None


class MediaChanges(TypedDict, total=False):
    """Columns a step may change on one media row of a post it holds."""

    container_id: str | None
    container_created_at: datetime | None
    status_code: str | None
    status_checked_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class ActionRecord(_FromRow):
    """One outbound engagement write (README "Engagement")."""

    id: int
    key: str
    account: str
    kind: str
    target: str
    payload: dict[str, Any]
    state: str
    reason: str | None
    error: str | None
    attempts: int
    next_action_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    lease_token: str | None
    result_id: str | None
    result: dict[str, Any] | None
    source: str
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime
    done_at: datetime | None


@dataclass(frozen=True)
class NewAction:
    """An action to plan. `at` None: as soon as possible.

    `kind` and `payload` (what the executor reads; README "Engagement"):
    `message` → `{"message": <the Send API's message object>}` (or just `{"text": …}`),
    `target` the IGSID;
    `private_reply` → `{"text": …, "comment_at": <ISO time of the comment, optional>}` and
    `reply` → `{"text": …}`, `target` the comment id; `hide`, `unhide`, `delete` → `{}`.
    A private reply's `comment_at` (e.g. from the stored webhook event) spares the lookup of
    the comment's time for the 7-day rule."""

    key: str
    account: str
    kind: str
    target: str
    payload: dict[str, Any]
    source: str
    at: datetime | None = None


@dataclass(frozen=True)
class Planned:
    """What planning one action did: `new` (inserted), `exists` (the key was used before:
    `action` is the earlier one, nothing is sent), or `refused` (recorded as failed without
    any call, e.g. a second private reply to one comment; `reason` says why)."""

    outcome: str
    action: ActionRecord
    reason: str | None = None


class ActionChanges(TypedDict, total=False):
    """Columns a step may change on an action it holds (the state only through ACTIONS)."""

    reason: str | None
    error: str | None
    attempts: int
    next_action_at: datetime
    result_id: str | None
    result: dict[str, Any] | None
    sent_at: datetime | None
    done_at: datetime | None


@dataclass(frozen=True)
class ProfileRecord(_FromRow):
    igsid: str
    account: str
    fields: dict[str, Any]
    name: str | None
    username: str | None
    profile_pic: str | None
    fetched_at: datetime
