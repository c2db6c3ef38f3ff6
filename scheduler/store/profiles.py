"""People's profiles, cached with a time to live (README "Engagement")."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.store.records import ProfileRecord
from scheduler.store.schema import api_calls, profiles

PROFILE_ENDPOINT = "GET /{igsid}"  # the Graph client's endpoint name for a profile lookup


def get_profile(conn: Connection, igsid: str) -> ProfileRecord | None:
    row = conn.execute(sa.select(profiles).where(profiles.c.igsid == igsid)).first()
    return ProfileRecord.from_row(row) if row else None


def save_profile(conn: Connection, igsid: str, account: str, fields: Mapping[str, Any], now: datetime) -> None:
    """Insert or replace (fields asked for before but not now are kept: a narrower lookup
    does not forget what a wider one learnt)."""
    old = get_profile(conn, igsid)
    merged = {**(old.fields if old else {}), **dict(fields)}
    values = {
        "account": account, "fields": merged, "fetched_at": now,
        "name": merged.get("name") if isinstance(merged.get("name"), str) else None,
        "username": merged.get("username") if isinstance(merged.get("username"), str) else None,
        "profile_pic": merged.get("profile_pic") if isinstance(merged.get("profile_pic"), str) else None,
    }
    if old is None:
        conn.execute(profiles.insert().values(igsid=igsid, **values))
    else:
        conn.execute(profiles.update().where(profiles.c.igsid == igsid).values(**values))


def lookups_since(conn: Connection, since: datetime) -> list[datetime]:
    """When profile lookups went out since `since` (every account: the budget is the app's),
    oldest first, from the call log."""
    q = sa.select(api_calls.c.at).where(api_calls.c.endpoint == PROFILE_ENDPOINT, api_calls.c.at >= since)
    return sorted(conn.execute(q).scalars())
