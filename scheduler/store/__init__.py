"""The Store: the one seam to the database (SQLite or PostgreSQL).

Methods are synchronous and short; the daemon calls them through asyncio.to_thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.clock import utcnow
from scheduler.config import AccountSettings, LeadSettings
from scheduler.models import PostSpec
from scheduler.store import accounts as acc
from scheduler.store import claims, history
from scheduler.store import posts as qp
from scheduler.store.engine import READ_ONLY, ensure_current, make_engine
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
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (on SQLite it does not take the write lock)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            yield conn

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def now(self) -> datetime:
        """Naive UTC. PostgreSQL: the database's clock, so skewed hosts cannot publish early."""
        if self.dialect == "postgresql":
            with self.read() as conn:
                return conn.execute(sa.text("SELECT timezone('UTC', clock_timestamp())")).scalar_one()
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
        with self.read() as conn:
            return qp.get_post(conn, key)

    def get_by_id(self, post_id: int) -> PostRecord | None:
        with self.read() as conn:
            return qp.get_post_by_id(conn, post_id)

    def list_posts(self, states: Sequence[str], account: str | None = None, since: datetime | None = None,
             newest_first: bool = False, limit: int | None = None) -> list[PostRecord]:
        with self.read() as conn:
            return qp.list_posts(conn, states, account, since, newest_first, limit)

    def media(self, post_id: int) -> list[MediaRecord]:
        with self.read() as conn:
            return qp.media_of(conn, post_id)

    def events(self, post_id: int) -> list[dict[str, Any]]:
        with self.read() as conn:
            return qp.events_of(conn, post_id)

    def calls(self, post_id: int) -> list[dict[str, Any]]:
        with self.read() as conn:
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
        with self.read() as conn:
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
        with self.read() as conn:
            return acc.get_account(conn, name)

    def accounts(self) -> list[AccountRecord]:
        with self.read() as conn:
            return acc.all_accounts(conn)

    def update_media(self, post: PostRecord, media_id: int, **values: Any) -> None:
        """Change one media row while we still hold the post's lease (raises LeaseLost)."""
        from scheduler.store.schema import post_media

        assert post.lease_token is not None
        with self.tx() as conn, claims.fenced(conn, post.id, post.lease_token):
            conn.execute(post_media.update().where(post_media.c.id == media_id).values(**values))

    def reset_containers(self, post: PostRecord) -> None:
        """Forget every container of a post (expired or unusable): staging starts over."""
        from scheduler.store.schema import post_media, posts

        assert post.lease_token is not None
        with self.tx() as conn, claims.fenced(conn, post.id, post.lease_token):
            conn.execute(
                post_media.update().where(post_media.c.post_id == post.id).values(
                    container_id=None, container_created_at=None, status_code=None,
                    status_checked_at=None, error=None,
                )
            )
            conn.execute(
                posts.update().where(posts.c.id == post.id).values(container_id=None, container_created_at=None)
            )

    def begin_publish(self, post: PostRecord, actor: str, fallback_total: int,
                      recheck_s: float = 60.0) -> QuotaCheck:
        """Reserve a slot in the rolling publishing quota and move the post to `publishing`,
        in one transaction under the account's row lock, so several daemons never exceed it.

        Counted: our own publishes in the window, publishes in flight (publishing, verifying:
        they may be landing right now) and, when larger, Meta's last count plus what we
        published since. When our own publishes fill the quota the answer says exactly when a
        slot frees; when in-flight publishes or Meta's figure fill it, it says to look again
        after `recheck_s` (an in-flight one may turn out not to have gone live)."""
        assert post.lease_token is not None
        now = self.now()
        with self.tx() as conn:
            a = acc.get_account(conn, post.account, lock=True)
            total = (a.quota_total if a and a.quota_total else None) or fallback_total
            window = (a.quota_duration_s if a and a.quota_duration_s else None) or 86400
            times, flying = acc.quota_usage_now(conn, post.account, now, window, post.id)
            used = len(times) + flying
            if a and a.quota_usage is not None and a.quota_checked_at is not None:
                # Meta's own count can include posts made elsewhere (the app, other tools)
                mine_since_check = sum(1 for t in times if t > a.quota_checked_at)
                used = max(used, a.quota_usage + mine_since_check)
            if used >= total:
                own = len(times)
                if own >= total:  # the slot frees when enough of our own publishes age out
                    return QuotaCheck(False, used, total, times[own - total] + timedelta(seconds=window),
                                      flying, exact=True)
                return QuotaCheck(False, used, total, now + timedelta(seconds=recheck_s), flying, exact=False)
            claims.update_post(
                conn, post.id, post.lease_token, now, actor,
                f"quota slot reserved ({used + 1}/{total} in the rolling window); publishing",
                release=False, state="publishing", publish_started_at=now, reason=None,
            )
            return QuotaCheck(True, used + 1, total, None)

    def set_reauth(self, account: str, needed: bool, reason: str | None) -> None:
        now = self.now()
        with self.tx() as conn:
            acc.set_reauth(conn, account, needed, reason, now)

    def update_quota(self, account: str, usage: int, total: int, duration_s: int) -> None:
        now = self.now()
        with self.tx() as conn:
            acc.update_quota(conn, account, usage, total, duration_s, now)

    def app_pause(self) -> tuple[datetime, str] | None:
        now = self.now()
        with self.read() as conn:
            return acc.app_paused_until(conn, now)


@dataclass(frozen=True)
class QuotaCheck:
    ok: bool
    used: int
    total: int
    free_at: datetime | None
    in_flight: int = 0
    exact: bool = True  # free_at is when a slot frees (else: when to look again)


def quota_report(store: Store) -> list[dict[str, Any]]:
    """Per account: quota used/total, latest usage figures, pause and re-authorisation state."""
    from scheduler.clock import iso

    now = store.now()
    out = []
    with store.read() as conn:
        app = acc.app_paused_until(conn, now)
        for a in acc.all_accounts(conn):
            window = a.quota_duration_s or 86400
            times = acc.published_in_window(conn, a.name, now, window)
            mine = used = len(times)
            if a.quota_usage is not None and a.quota_checked_at is not None:
                since_check = sum(1 for t in times if t > a.quota_checked_at)
                used = max(mine, a.quota_usage + since_check)
            paused = a.paused_until is not None and a.paused_until > now
            out.append({
                "account": a.name,
                "ig_user_id": a.ig_user_id,
                "quota_used": used,
                "quota_total": a.quota_total,
                "quota_window_s": window,
                "published_by_igsched": mine,
                "quota_checked_at": iso(a.quota_checked_at),
                "usage_app_pct": a.usage_app_pct,
                "usage_buc_pct": a.usage_buc_pct,
                "usage_regain_s": a.usage_regain_s,
                "usage_at": iso(a.usage_at),
                "paused": paused or app is not None,
                "paused_until": iso(a.paused_until) if paused else (iso(app[0]) if app else None),
                "pause_reason": a.pause_reason if paused else (app[1] if app else None),
                "needs_reauth": a.needs_reauth,
                "reauth_reason": a.reauth_reason,
            })
    return out
