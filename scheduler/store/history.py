"""API-call history: one row per Graph call, with the usage headers' figures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.clock import to_naive_utc
from scheduler.store.schema import api_calls


class CallLike(Protocol):
    """What the store reads of a graph.client.CallRecord (the store knows no HTTP types)."""

    started_at: datetime
    account: str | None
    post_id: int | None
    method: str
    endpoint: str
    path: str
    http_status: int | None
    outcome: str
    error_code: int | None
    error_subcode: int | None
    error_message: str | None
    fbtrace_id: str | None
    duration_ms: float
    usage: Any  # graph.usage.Usage


def record_call(conn: Connection, rec: CallLike) -> None:
    """Store one Graph call with the busiest usage figures it reported."""
    record_calls(conn, [rec])


def record_calls(conn: Connection, recs: Sequence[CallLike]) -> None:
    """Store Graph calls, one statement for all (the call log writes hundreds at once in a
    burst)."""
    if recs:
        conn.execute(api_calls.insert(), [_call_row(r) for r in recs])


def _call_row(rec: CallLike) -> dict[str, Any]:
    usage = rec.usage
    app = usage.app if usage else None
    buc = None
    if usage and usage.buc:
        buc = max(usage.buc.values(), key=lambda f: f.max_pct)
    return dict(
        at=to_naive_utc(rec.started_at),
        account=rec.account,
        post_id=rec.post_id,
        method=rec.method,
        endpoint=rec.endpoint[:120],
        path=rec.path,
        http_status=rec.http_status,
        outcome=rec.outcome,
        error_code=rec.error_code,
        error_subcode=rec.error_subcode,
        error_message=rec.error_message,
        fbtrace_id=rec.fbtrace_id,
        duration_ms=rec.duration_ms,
        app_call_count=app.call_count if app else None,
        app_total_cputime=app.total_cputime if app else None,
        app_total_time=app.total_time if app else None,
        buc_call_count=buc.call_count if buc else None,
        buc_total_cputime=buc.total_cputime if buc else None,
        buc_total_time=buc.total_time if buc else None,
        buc_regain_minutes=buc.regain_minutes if buc else None,
    )


def calls_of(conn: Connection, post_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(api_calls).where(api_calls.c.post_id == post_id).order_by(api_calls.c.id))
    return [dict(r._mapping) for r in rows]
