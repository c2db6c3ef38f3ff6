"""Typed views of rows, so callers do not pass raw mappings around."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Self, TypedDict

from scheduler.models import PostSpec


class _FromRow:
    @classmethod
    def from_row(cls, row: Any) -> Self:
        m = row._mapping
        return cls(**{f.name: m[f.name] for f in fields(cls)})  # type: ignore[arg-type]


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
