"""The Store: the one seam to the database (SQLite or PostgreSQL).

Methods are synchronous and short; the daemon calls them through asyncio.to_thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.clock import utcnow
from scheduler.config import AccountSettings, LeadSettings
from scheduler.models import PostSpec
from scheduler.store import accounts as acc
from scheduler.store import claims, history
from scheduler.store import posts as qp
from scheduler.store.engine import ensure_current, make_engine
from scheduler.store.records import AccountRecord, EnqueueReport, MediaRecord, PostRecord

__all__ = ["AccountRecord", "EnqueueReport", "MediaRecord", "PostRecord", "Store"]


class Store:
    def __init__(self, url: str, upgrade: bool = True) -> None:
        self.engine = make_engine(url)
        ensure_current(self.engine, upgrade_if_behind=upgrade)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def now(self) -> datetime:
        """Naive UTC. PostgreSQL: the database's clock, so skewed hosts cannot publish early."""
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                return conn.execute(sa.text("SELECT timezone('UTC', clock_timestamp())")).scalar_one()  # type: ignore[no-any-return]
        return utcnow()

    # --- queue side -------------------------------------------------------------
    def sync_accounts(self, configured: Sequence[AccountSettings]) -> None:
        with self.tx() as conn:
            acc.sync_accounts(conn, configured, self.now())

    def enqueue(self, specs: Sequence[PostSpec], lead: LeadSettings, actor: str) -> EnqueueReport:
        now = self.now()
        with self.tx() as conn:
            return qp.enqueue(conn, specs, now, lead, actor)

    def get(self, key: str) -> PostRecord | None:
        with self.engine.connect() as conn:
            return qp.get_post(conn, key)

    def get_by_id(self, post_id: int) -> PostRecord | None:
        with self.engine.connect() as conn:
            return qp.get_post_by_id(conn, post_id)

    def list(self, states: Sequence[str], account: str | None = None, since: datetime | None = None,
             newest_first: bool = False, limit: int | None = None) -> list[PostRecord]:
        with self.engine.connect() as conn:
            return qp.list_posts(conn, states, account, since, newest_first, limit)

    def media(self, post_id: int) -> list[MediaRecord]:
        with self.engine.connect() as conn:
            return qp.media_of(conn, post_id)

    def events(self, post_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return qp.events_of(conn, post_id)

    def calls(self, post_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return history.calls_of(conn, post_id)

    def cancel(self, key: str, actor: str) -> PostRecord:
        now = self.now()
        with self.tx() as conn:
            return qp.cancel(conn, key, now, actor)

    def retry(self, key: str, lead: LeadSettings, actor: str) -> PostRecord:
        now = self.now()
        with self.tx() as conn:
            return qp.retry(conn, key, now, lead, actor)

    # --- daemon side ------------------------------------------------------------
    def claim_due(self, owner: str, lease_s: float, limit: int) -> list[PostRecord]:
        now = self.now()
        with self.tx() as conn:
            return claims.claim_due(conn, owner, lease_s, now, limit)

    def next_action_at(self) -> datetime | None:
        with self.engine.connect() as conn:
            return claims.next_action_at(conn)

    def update(self, post: PostRecord, actor: str, event: str | None = None, release: bool = True,
               **values: Any) -> PostRecord:
        """Compare-and-set on the post's lease token (raises LeaseLost)."""
        assert post.lease_token is not None
        now = self.now()
        with self.tx() as conn:
            return claims.update_post(conn, post.id, post.lease_token, now, actor, event, release, **values)

    def renew(self, post: PostRecord, lease_s: float) -> bool:
        assert post.lease_token is not None
        now = self.now()
        with self.tx() as conn:
            return claims.renew(conn, post.id, post.lease_token, lease_s, now)

    def release_own_leases(self, owner: str) -> int:
        now = self.now()
        with self.tx() as conn:
            return claims.release_own_leases(conn, owner, now)

    def record_call(self, rec: Any) -> None:
        with self.tx() as conn:
            history.record_call(conn, rec)

    # --- accounts -----------------------------------------------------------------
    def account(self, name: str) -> AccountRecord | None:
        with self.engine.connect() as conn:
            return acc.get_account(conn, name)

    def accounts(self) -> list[AccountRecord]:
        with self.engine.connect() as conn:
            return acc.all_accounts(conn)
