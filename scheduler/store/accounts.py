"""Per-account facts shared by every daemon: pauses, re-authorisation, quota and usage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from scheduler.config import AccountSettings
from scheduler.lifecycle import State
from scheduler.store.records import AccountRecord
from scheduler.store.schema import FLYING, FLYING_STATES, accounts, app_state, posts

APP_PAUSE = "app_pause"


def sync_accounts(conn: Connection, configured: Sequence[AccountSettings], now: datetime) -> None:
    """Make the accounts table name every configured account (rows are never deleted:
    history refers to them)."""
    existing = {r.name: r.ig_user_id for r in conn.execute(sa.select(accounts.c.name, accounts.c.ig_user_id))}
    for a in configured:
        if a.name not in existing:
            # several daemons starting at once on a new database insert the same rows: the
            # first wins, the others carry on (on SQLite BEGIN IMMEDIATE already serialises them)
            insert = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(accounts)
            conn.execute(insert.values(name=a.name, ig_user_id=a.ig_user_id, needs_reauth=False, updated_at=now)
                         .on_conflict_do_nothing(index_elements=["name"]))
        elif existing[a.name] != a.ig_user_id:
            conn.execute(
                accounts.update().where(accounts.c.name == a.name).values(
                    ig_user_id=a.ig_user_id, quota_usage=None, quota_checked_at=None, updated_at=now
                )
            )


_ACCOUNT = sa.select(accounts).where(accounts.c.name == sa.bindparam("name"))  # built once: hot path
_ACCOUNT_LOCK = _ACCOUNT.with_for_update()


def get_account(conn: Connection, name: str, lock: bool = False) -> AccountRecord | None:
    q = _ACCOUNT_LOCK if lock and conn.dialect.name == "postgresql" else _ACCOUNT
    row = conn.execute(q, {"name": name}).first()
    return AccountRecord.from_row(row) if row else None


def get_accounts(conn: Connection, names: Sequence[str]) -> list[AccountRecord]:
    return [AccountRecord.from_row(r) for r in conn.execute(sa.select(accounts).where(accounts.c.name.in_(names)))]


def all_accounts(conn: Connection) -> list[AccountRecord]:
    return [AccountRecord.from_row(r) for r in conn.execute(sa.select(accounts).order_by(accounts.c.name))]


def pause_account(conn: Connection, name: str, until: datetime, reason: str, now: datetime) -> None:
    """Extend (never shorten) an account's pause."""
    conn.execute(
        accounts.update()
        .where(accounts.c.name == name, sa.or_(accounts.c.paused_until.is_(None), accounts.c.paused_until < until))
        .values(paused_until=until, pause_reason=reason, updated_at=now)
    )


def pause_app(conn: Connection, until: datetime, reason: str, now: datetime) -> None:
    """Extend (never shorten) the app's pause. The row is made with ON CONFLICT DO NOTHING:
    two daemons pausing the app at the same moment both find no row, and a plain insert
    would fail one of them (and with it the call rows written in the same transaction)."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert(app_state).values(name=APP_PAUSE, until=None, reason=None, updated_at=now)
                 .on_conflict_do_nothing(index_elements=["name"]))
    conn.execute(
        app_state.update()
        .where(app_state.c.name == APP_PAUSE, sa.or_(app_state.c.until.is_(None), app_state.c.until < until))
        .values(until=until, reason=reason, updated_at=now)
    )


def app_paused_until(conn: Connection, now: datetime) -> tuple[datetime, str] | None:
    row = conn.execute(sa.select(app_state).where(app_state.c.name == APP_PAUSE)).first()
    if row is None or row.until is None or row.until <= now:
        return None
    return row.until, row.reason or "app throttled"


def set_reauth(conn: Connection, name: str, needed: bool, reason: str | None, now: datetime) -> None:
    conn.execute(
        accounts.update().where(accounts.c.name == name).values(
            needs_reauth=needed, reauth_reason=reason if needed else None, updated_at=now
        )
    )


def update_quota(conn: Connection, name: str, usage: int, total: int, duration_s: int, now: datetime,
                 asked_at: datetime) -> None:
    conn.execute(
        accounts.update().where(accounts.c.name == name).values(
            quota_usage=usage, quota_total=total, quota_duration_s=duration_s, quota_checked_at=asked_at,
            updated_at=now,
        )
    )


def update_usage(
    conn: Connection, name: str, app_pct: int | None, buc_pct: int | None, regain_s: float, now: datetime
) -> None:
    conn.execute(_UPDATE_USAGE, {"aname": name, "usage_app_pct": app_pct, "usage_buc_pct": buc_pct,
                                 "usage_regain_s": regain_s, "usage_at": now})


class UsageLike(Protocol):
    @property
    def app_pct(self) -> int | None: ...
    @property
    def buc_pct(self) -> int | None: ...
    @property
    def regain_s(self) -> float: ...


def update_usages(conn: Connection, figures: Sequence[tuple[str, UsageLike]], now: datetime) -> None:
    """Several accounts' usage in one executemany, in the order given."""
    if figures:
        conn.execute(_UPDATE_USAGE, [{"aname": name, "usage_app_pct": u.app_pct, "usage_buc_pct": u.buc_pct,
                                      "usage_regain_s": u.regain_s, "usage_at": now} for name, u in figures])


_UPDATE_USAGE = accounts.update().where(accounts.c.name == sa.bindparam("aname"))  # built once


def published_in_window(conn: Connection, name: str, now: datetime, window_s: int) -> list[datetime]:
    """Publish times of this account's posts inside the rolling window, oldest first."""
    since = now - timedelta(seconds=window_s)
    rows = conn.execute(
        sa.select(posts.c.published_at)
        .where(posts.c.account == name, posts.c.published_at.is_not(None), posts.c.published_at > since)
        .order_by(posts.c.published_at)
    )
    return [r[0] for r in rows]


assert set(FLYING_STATES) == {State.PUBLISHING.value, State.VERIFYING.value}
# Built once: every publish. Each arm of the OR is a range of an index on both databases
# (MULTI-INDEX OR on SQLite, BitmapOr on PostgreSQL): this account's publishes in the window
# (ix_posts_account_published) and its publishes in flight (ix_posts_account_flying, whose
# predicate is the text below word for word, as SQLite needs). Without the second index the
# count read every post of the account, or every post in flight on every account.
_QUOTA_USAGE = sa.select(posts.c.published_at, posts.c.state).where(
    posts.c.account == sa.bindparam("name"),
    sa.or_(
        posts.c.published_at > sa.bindparam("since", type_=sa.DateTime),
        sa.and_(sa.text(FLYING), posts.c.id != sa.bindparam("exclude")),
    ),
)


def quota_usage_now(conn: Connection, name: str, now: datetime, window_s: int,
                    exclude_post: int) -> tuple[list[datetime], int]:
    """(publish times in the rolling window, oldest first; publishes in flight) in ONE
    statement: on PostgreSQL each statement of a READ COMMITTED transaction has its own
    snapshot, and a post moving from publishing to published between two separate counts
    would be in neither."""
    since = now - timedelta(seconds=window_s)
    rows = conn.execute(_QUOTA_USAGE, {"name": name, "since": since, "exclude": exclude_post}).all()
    times = sorted(r.published_at for r in rows if r.published_at is not None and r.published_at > since)
    flying = sum(1 for r in rows if r.state in FLYING_STATES and not (r.published_at and r.published_at > since))
    return times, flying
