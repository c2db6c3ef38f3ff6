"""The Store: the one seam to the database (SQLite or PostgreSQL), and this package's only
public face: callers use `Store` and the names exported here, never a submodule or a
transaction. Every SQL statement lives in this package.

Methods are synchronous and short; the daemon calls them through `Store.call`: in a worker
thread, or, for a grouped write on SQLite, straight into the group commit (grouped.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, Unpack

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.clock import SYSTEM_CLOCK, Clock, iso, to_naive_utc
from scheduler.config import AccountSettings, LeadSettings
from scheduler.lifecycle import ActionMove, PostMove, TransitionNotAllowed
from scheduler.models import PostSpec
from scheduler.store import accounts as acc
from scheduler.store import actions as act
from scheduler.store import attempts, claims, history, planner, profiles, stats
from scheduler.store import posts as qp
from scheduler.store import service as svc
from scheduler.store.actions import ActionNotFound, BudgetCheck
from scheduler.store.claims import LeaseLost, claim_order
from scheduler.store.engine import (
    DB_THREADS,
    ONE_STATEMENT,
    READ_ONLY,
    DatabaseUnreachable,
    SchemaBehind,
    current_revision,
    ensure_current,
    head_revision,
    make_engine,
    missing_sqlite_file,
    safe_url,
    upgrade,
)
from scheduler.store.group import GroupCommit
from scheduler.store.grouped import BoundWrite, OneByOne, Work, grouped
from scheduler.store.history import CallLike
from scheduler.store.lookahead import NextTimes, next_times
from scheduler.store.posts import NotAllowed, PostNotFound
from scheduler.store.records import (
    AccountRecord,
    ActionChanges,
    ActionRecord,
    EnqueueReport,
    MediaChanges,
    MediaRecord,
    NewAction,
    Planned,
    PostChanges,
    PostRecord,
    ProfileRecord,
)
from scheduler.store.service import (
    DaemonRecord,
    NewNotification,
    NotificationRecord,
    PostEventSeen,
    TokenState,
)
from scheduler.store.webhook_store import DeliveryRecord, EventRecord, ForwardTarget, WebhookStore

__all__ = [
    "DB_THREADS",
    "AccountRecord",
    "ActionChanges",
    "ActionNotFound",
    "ActionRecord",
    "BudgetCheck",
    "CallLike",
    "Claim",
    "DatabaseUnreachable",
    "EnqueueReport",
    "LeaseLost",
    "MediaChanges",
    "MediaRecord",
    "NewAction",
    "NextTimes",
    "NotAllowed",
    "Planned",
    "PostChanges",
    "PostNotFound",
    "PostRecord",
    "ProfileRecord",
    "QuotaCheck",
    "SchemaBehind",
    "Store",
    "TransitionNotAllowed",
    "UsageFigures",
    "claim_order",
    "current_revision",
    "head_revision",
    "safe_url",
    "upgrade",
    "upgrade_database",
]  # fmt: skip
__all__ += ["DeliveryRecord", "EventRecord", "ForwardTarget"]  # webhook side
# running as a service (README "Running it for months")
__all__ += ["DaemonRecord", "NewNotification", "NotificationRecord", "PostEventSeen", "TokenState"]


T = TypeVar("T")
P = ParamSpec("P")
SQLITE_DB_THREADS = 32
DB_CLOCK_READ_S = 30.0  # PostgreSQL: how often the database's clock is read (Store.now)


def upgrade_database(url: str) -> None:
    """Create or upgrade the schema of the database at `url` (idempotent)."""
    engine = make_engine(url)
    try:
        ensure_current(engine, upgrade_if_behind=True)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class UsageFigures:
    """An account's latest usage-header figures, as the call log writes them."""

    app_pct: int | None
    buc_pct: int | None
    regain_s: float


class Store(WebhookStore):  # webhook events: store/webhook_store.py
    def __init__(self, url: str, upgrade: bool = True, clock: Clock | None = None) -> None:
        """`clock`: the time that decides due-ness. By default the system clock on SQLite and
        the database's clock on PostgreSQL; tests pass a FakeClock to drive both."""
        if not upgrade and (missing := missing_sqlite_file(url)) is not None:
            # a command that only reads: say so rather than leave an empty file behind
            raise SchemaBehind(f"there is no database at {missing}; run `igsched db upgrade`")
        self.engine = make_engine(url)
        self.clock = clock
        self._clock_lock = threading.Lock()
        self._db_clock: tuple[datetime | None, float] = (None, 0.0)
        # SQLite has one writer at a time. Threads of this process queue for it here, in
        # order, instead of in SQLite's busy handler, which sleeps (up to 100 ms a try) and
        # turns a burst of short writes into a crawl; other processes still wait in it.
        self._writer: AbstractContextManager[Any] = threading.RLock() if self.engine.dialect.name == "sqlite" else contextlib.nullcontext()
        self._group = GroupCommit(self.engine, self._writer) if self.engine.dialect.name == "sqlite" else None
        ensure_current(self.engine, upgrade_if_behind=upgrade)

    @property
    def db_threads(self) -> int:
        """Threads the daemon may run store calls on. SQLite: a thread waiting for a group
        commit holds no connection, so more of them only make the groups larger; PostgreSQL:
        one connection each, so as many as the pool has."""
        return SQLITE_DB_THREADS if self._group is not None else DB_THREADS

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        if self._group is not None:
            self._group.close()
        self.engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read-only transaction (on SQLite it does not take the write lock). PostgreSQL:
        in autocommit, since under READ COMMITTED each statement reads its own snapshot
        anyway; a read is then one round trip instead of three (BEGIN, SELECT, ROLLBACK)."""
        if self.dialect == "postgresql":
            with self._autocommit() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            yield conn

    @contextmanager
    def _autocommit(self) -> Iterator[Connection]:
        """PostgreSQL: a connection whose every statement commits on its own (no BEGIN, no
        COMMIT or ROLLBACK round trips), for reads and for work that is atomic statement by
        statement."""
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._writer, self.engine.begin() as conn:
            yield conn

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A store call from the event loop. On SQLite a grouped write (grouped.py) joins the
        group commit straight from the loop, with no thread of its own waiting for it (one
        hand-over to the loop per commit instead of three thread wake-ups per write); any
        other call, and every call on PostgreSQL, runs in a worker thread."""
        if self._group is not None and isinstance(fn, BoundWrite):
            return await self._group.submit(fn.work(*args, **kwargs))
        return await asyncio.to_thread(fn, *args, **kwargs)

    def _write(self, work: Callable[[Connection], T]) -> T:
        """A write on the daemon's hot path: on SQLite committed together with the writes
        other threads make at the same moment (group.py); on PostgreSQL its own transaction,
        or none for work that is atomic statement by statement (`OneByOne`)."""
        if self._group is not None:
            return self._group.run(work)
        if isinstance(work, OneByOne):
            with self._autocommit() as conn:
                return work(conn)
        with self._tx() as conn:
            return work(conn)

    def now(self) -> datetime:
        """Naive UTC. PostgreSQL: the database's clock, so skewed hosts cannot publish early
        (unless a clock was injected)."""
        if self.clock is not None:
            return self.clock.now()
        if self.dialect == "postgresql":
            return self._db_now()
        return SYSTEM_CLOCK.now()

    def _db_now(self) -> datetime:
        """The database's clock without a round trip per call: read it every DB_CLOCK_READ_S
        and add the time elapsed since on this host's monotonic clock (which a host clock
        being set does not move). The reading is taken as of when its answer arrived, so the
        estimate runs behind the database's clock by at most one round trip: never early."""
        with self._clock_lock:
            read, at = self._db_clock
            if read is None or time.monotonic() - at > DB_CLOCK_READ_S:
                with self._read() as conn:
                    read = conn.execute(sa.text("SELECT timezone('UTC', clock_timestamp())")).scalar_one()
                at = time.monotonic()
                self._db_clock = (read, at)
        return read + timedelta(seconds=time.monotonic() - at)

    # --- queue side -------------------------------------------------------------
    def sync_accounts(self, configured: Sequence[AccountSettings]) -> None:
        with self._tx() as conn:
            acc.sync_accounts(conn, configured, self.now())

    def enqueue(self, specs: Sequence[PostSpec], actor: str,
                messages: Sequence[NewAction] = (), skip_check: LeadSettings | None = None) -> EnqueueReport:
        """Import validated specs (and a queue file's planned messages) atomically. A new or
        changed post is checked at once and staged at its lead time (the pipeline computes
        it). With the media check off, pass the lead times as `skip_check`: posts are then
        planned for their staging time at once, with no step taken to learn that there is
        nothing to check."""
        now = self.now()
        with self._tx() as conn:
            report = qp.enqueue(conn, specs, now, actor, skip_check)
            report.actions.extend(act.insert_actions(conn, messages, now, actor))
            behind = planner.statistics_behind(conn, len(report.new))
        if behind:  # after the commit: ANALYZE samples the posts just added
            planner.analyse_posts(self.engine.begin)
        return report

    def get(self, key: str) -> PostRecord | None:
        with self._read() as conn:
            return qp.get_post(conn, key)

    def get_by_id(self, post_id: int) -> PostRecord | None:
        with self._read() as conn:
            return qp.get_post_by_id(conn, post_id)

    def list_posts(self, states: Sequence[str], account: str | None = None, since: datetime | None = None,
             newest_first: bool = False, limit: int | None = None) -> list[PostRecord]:
        with self._read() as conn:
            return qp.list_posts(conn, states, account, since, newest_first, limit)

    def media(self, post_id: int) -> list[MediaRecord]:
        with self._read() as conn:
            return qp.media_of(conn, post_id)

    def events(self, post_id: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            return qp.events_of(conn, post_id)

    def calls(self, post_id: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            return history.calls_of(conn, post_id)

    def cancel(self, key: str, actor: str) -> PostRecord:
        now = self.now()
        with self._tx() as conn:
            return qp.cancel(conn, key, now, actor)

    def retry(self, key: str, lead: LeadSettings, actor: str) -> PostRecord:
        now = self.now()
        with self._tx() as conn:
            return qp.retry(conn, key, now, lead, actor)

    # --- daemon side ------------------------------------------------------------
    def claim_due(self, owner: str, lease_s: float, limit: int) -> list[PostRecord]:
        now = self.now()
        return self._write(lambda conn: claims.claim_due(conn, owner, lease_s, now, limit))

    def next_action_at(self) -> datetime | None:
        """The earliest moment a post or an action needs attention."""
        return self.look().earliest

    def look(self) -> NextTimes:
        """When posts and actions are next due, and whether webhook events wait: one
        statement, in no transaction of its own on SQLite (a lone SELECT reads one snapshot)
        and in autocommit on PostgreSQL; it never waits for the writer."""
        if self.dialect == "postgresql":
            with self._autocommit() as conn:
                return next_times(conn)
        with self.engine.connect() as conn:
            conn.execution_options(**{ONE_STATEMENT: True})
            return next_times(conn)

    def claim(self, owner: str, lease_s: float, limit: int, look_first: bool = False) -> Claim:
        """The daemon's claim: up to `limit` due posts leased, and in the same transaction
        what their steps would each read first (their accounts' rows, the app pause) and
        when to look again. `look_first`: read when posts are due first, and take no write
        transaction when none is (an idle daemon's tick is then one statement)."""
        now = self.now()
        if look_first:
            ahead = self.look()
            if ahead.posts is None or ahead.posts > now:
                return Claim([], {}, None, ahead, now)

        def claim(conn: Connection) -> Claim:
            taken = claims.claim_due(conn, owner, lease_s, now, limit) if limit > 0 else []
            names = sorted({p.account for p in taken})
            accounts = {a.name: a for a in acc.get_accounts(conn, names)} if names else {}
            app = acc.app_paused_until(conn, now) if taken else None
            return Claim(taken, accounts, app, next_times(conn), now)

        return self._write(claim)

    @grouped
    def transition(self, post: PostRecord, move: PostMove, actor: str, event: str | None = None,
                   release: bool = True, **values: Unpack[PostChanges]) -> Work[PostRecord]:
        """A named transition of lifecycle.POSTS, compare-and-set on the post's lease token
        (raises LeaseLost, or TransitionNotAllowed when the table has no such move from the
        post's current state). Returns the post as it is afterwards."""
        token = post.lease_token
        assert token is not None
        now = self.now()
        return OneByOne(lambda conn: claims.update_post(conn, post.id, token, now, actor, event, release, move,
                                                        post.state, **values))

    @grouped
    def update(self, post: PostRecord, actor: str, event: str | None = None, release: bool = True,
               **values: Unpack[PostChanges]) -> Work[PostRecord]:
        """Change a post we hold without changing its state (raises LeaseLost). Returns the
        post as it is afterwards."""
        token = post.lease_token
        assert token is not None
        now = self.now()
        return OneByOne(lambda conn: claims.update_post(conn, post.id, token, now, actor, event, release, None,
                                                        post.state, **values))

    @grouped
    def renew(self, post: PostRecord, lease_s: float) -> Work[bool]:
        token = post.lease_token
        assert token is not None
        now = self.now()
        return OneByOne(lambda conn: claims.renew(conn, post.id, token, lease_s, now))

    def release_own_leases(self, owner: str) -> int:
        now = self.now()
        with self._tx() as conn:
            return claims.release_own_leases(conn, owner, now) + act.release_own_leases(conn, owner, now)

    @grouped
    def record_activity(self, calls: Sequence[CallLike], usage: Mapping[str, UsageFigures],
                        account_pauses: Sequence[tuple[str, datetime, str]],
                        app_pauses: Sequence[tuple[datetime, str]]) -> Work[None]:
        """Write what a daemon's Graph calls taught it, in one transaction: the call rows, each
        account's latest usage figures and pauses (extended, never shortened), the app pause."""
        now = self.now()

        def record(conn: Connection) -> None:
            history.record_calls(conn, calls)
            # account rows in name order, then the app row: daemons writing at the same time on
            # PostgreSQL then wait for each other instead of deadlocking
            if not account_pauses:  # the usual case: every account's usage in one executemany
                acc.update_usages(conn, [(name, usage[name]) for name in sorted(usage)], now)
                usage_left: Mapping[str, UsageFigures] = {}
            else:
                usage_left = usage
            for account in sorted(set(usage_left) | {name for name, _, _ in account_pauses}):
                if account in usage_left:
                    u = usage_left[account]
                    acc.update_usage(conn, account, u.app_pct, u.buc_pct, u.regain_s, now)
                for name, until, reason in account_pauses:
                    if name == account:
                        acc.pause_account(conn, name, to_naive_utc(until), reason, now)
            for until, reason in app_pauses:
                acc.pause_app(conn, to_naive_utc(until), reason, now)

        return record

    def pause_state(self, account: str) -> tuple[tuple[datetime, str] | None, AccountRecord | None]:
        """(the app pause if one is on now, the account's row): what other daemons recorded."""
        now = self.now()
        with self._read() as conn:
            return acc.app_paused_until(conn, now), acc.get_account(conn, account)

    def recent_processing_s(self, account: str, media_kind: str, limit: int) -> list[float]:
        """Creation-to-FINISHED seconds of the account's latest containers of a media kind."""
        with self._read() as conn:
            return stats.recent_processing_s(conn, account, media_kind, limit)

    def containers_created_since(self, account: str, since: datetime) -> list[datetime]:
        """When the account's containers were created since `since`, oldest first."""
        with self._read() as conn:
            return stats.containers_created_since(conn, account, since)

    # --- accounts -----------------------------------------------------------------
    def account(self, name: str) -> AccountRecord | None:
        with self._read() as conn:
            return acc.get_account(conn, name)

    def accounts(self) -> list[AccountRecord]:
        with self._read() as conn:
            return acc.all_accounts(conn)

    @grouped
    def update_media(self, post: PostRecord, media_id: int, **values: Unpack[MediaChanges]) -> Work[None]:
        """Change one media row while we still hold the post's lease (raises LeaseLost)."""
        token = post.lease_token
        assert token is not None
        return OneByOne(lambda conn: claims.update_media(conn, post.id, token, media_id, values))

    @grouped
    def container_made(self, post: PostRecord, media_id: int, actor: str, container_id: str,
                       created_at: datetime, primary: bool) -> Work[None]:
        """A container was created for one media row: record it there and, for the post's
        own container (`primary`), on the post too, in one transaction (raises LeaseLost)."""
        token = post.lease_token
        assert token is not None
        now = self.now()

        def record(conn: Connection) -> None:
            claims.update_media(conn, post.id, token, media_id, MediaChanges(
                container_id=container_id, container_created_at=created_at, status_code="IN_PROGRESS",
                status_checked_at=None))
            if primary:
                claims.update_post(conn, post.id, token, now, actor, None, False, None, post.state,
                                   container_id=container_id, container_created_at=created_at)

        return record

    @grouped
    def reset_containers(self, post: PostRecord) -> Work[None]:
        """Forget every container of a post (expired or unusable): staging starts over."""
        token = post.lease_token
        assert token is not None
        return lambda conn: claims.reset_containers(conn, post.id, token)

    @grouped
    def begin_publish(self, post: PostRecord, actor: str, fallback_total: int,
                      recheck_s: float = 60.0) -> Work[QuotaCheck]:
        """Reserve a slot in the rolling publishing quota and move the post to `publishing`,
        in one transaction under the account's row lock, so several daemons never exceed it.

        Counted: our own publishes in the window, publishes in flight (publishing, verifying:
        they may be landing right now) and, when larger, Meta's last count plus what we
        published since. When our own publishes fill the quota the answer says exactly when a
        slot frees; when in-flight publishes or Meta's figure fill it, it says to look again
        after `recheck_s` (an in-flight one may turn out not to have gone live)."""
        token = post.lease_token
        assert token is not None
        now = self.now()

        def reserve(conn: Connection) -> QuotaCheck:
            a = acc.get_account(conn, post.account, lock=True)
            total = (a.quota_total if a and a.quota_total else None) or fallback_total
            window = (a.quota_duration_s if a and a.quota_duration_s else None) or 86400
            times, flying = acc.quota_usage_now(conn, post.account, now, window, post.id)
            used = len(times) + flying
            if a and a.quota_usage is not None and a.quota_checked_at is not None:
                # Meta's own count can include posts made elsewhere (the app, other tools)
                mine_since_check = sum(1 for t in times if t >= a.quota_checked_at)
                used = max(used, a.quota_usage + mine_since_check)
            if used >= total:
                own = len(times)
                if own >= total:  # the slot frees when enough of our own publishes age out
                    return QuotaCheck(False, used, total, times[own - total] + timedelta(seconds=window),
                                      flying, exact=True)
                return QuotaCheck(False, used, total, now + timedelta(seconds=recheck_s), flying, exact=False)
            after = claims.update_post(  # the post as it is now (publishing, same lease)
                conn, post.id, token, now, actor,
                f"quota slot reserved ({used + 1}/{total} in the rolling window); publishing",
                release=False, move=PostMove.BEGIN_PUBLISH, expected=post.state, publish_started_at=now, reason=None,
            )
            return QuotaCheck(True, used + 1, total, None, post=after)

        return reserve

    def publish_attempt_times(self, post_id: int) -> list[datetime]:
        """When each media_publish of a post began, oldest first."""
        with self._read() as conn:
            return attempts.publish_attempt_times(conn, post_id)

    def media_ids_owned(self, account: str, since: datetime, exclude_post: int) -> set[str]:
        """Media ids that other posts of the account (published since `since`) own."""
        with self._read() as conn:
            return attempts.media_ids_owned(conn, account, to_naive_utc(since), exclude_post)

    def set_permalinks(self, account: str, found: Mapping[str, str]) -> int:
        """Record permalinks read in bulk for the account's published posts without one."""
        if not found:
            return 0
        now = self.now()
        return self._write(lambda conn: attempts.set_permalinks(conn, account, found, now))

    def set_reauth(self, account: str, needed: bool, reason: str | None) -> None:
        now = self.now()
        self._write(lambda conn: acc.set_reauth(conn, account, needed, reason, now))

    def update_quota(self, account: str, usage: int, total: int, duration_s: int,
                     asked_at: datetime | None = None) -> None:
        """Meta's figure, as of `asked_at` (when the read was sent: a publish that lands while
        the answer travels is then counted on top of it, never missed)."""
        now = self.now()
        self._write(lambda conn: acc.update_quota(conn, account, usage, total, duration_s, now,
                           to_naive_utc(asked_at) if asked_at is not None else now))

    def app_pause(self) -> tuple[datetime, str] | None:
        now = self.now()
        with self._read() as conn:
            return acc.app_paused_until(conn, now)

    def quota_report(self) -> list[dict[str, Any]]:
        """Per account: quota used/total, latest usage figures, pause and re-authorisation state."""
        now = self.now()
        out = []
        with self._read() as conn:
            app = acc.app_paused_until(conn, now)
            for a in acc.all_accounts(conn):
                window = a.quota_duration_s or 86400
                times = acc.published_in_window(conn, a.name, now, window)
                mine = used = len(times)
                if a.quota_usage is not None and a.quota_checked_at is not None:
                    since_check = sum(1 for t in times if t >= a.quota_checked_at)
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

    # --- running as a service: tokens, heartbeats, notifications, status -----------------------
    def token_state(self, account: str) -> TokenState | None:
        with self._read() as conn:
            return svc.token_state(conn, account)

    def token_states(self) -> list[TokenState]:
        with self._read() as conn:
            return svc.token_states(conn)

    def seed_token(self, account: str, fingerprint: str) -> TokenState:
        """The account's token row for the configured token (a new login starts it afresh)."""
        now = self.now()
        with self._tx() as conn:
            return svc.seed_token(conn, account, fingerprint, now)

    def claim_refresh(self, account: str, version: int, owner: str, lease_s: float) -> bool:
        now = self.now()
        with self._tx() as conn:
            return svc.claim_refresh(conn, account, version, owner, now, lease_s)

    def store_refreshed(self, account: str, ciphertext: str, issued_at: datetime,
                        expires_at: datetime | None) -> bool:
        now = self.now()
        with self._tx() as conn:
            return svc.store_refreshed(conn, account, ciphertext, issued_at, expires_at, now)

    def refresh_failed(self, account: str, owner: str, last_attempt_at: datetime, failures: int,
                       not_before: datetime | None, error: str) -> None:
        now = self.now()
        with self._tx() as conn:
            svc.refresh_failed(conn, account, owner, last_attempt_at, failures, not_before, error, now)

    def daemon_started(self, identity: str, host: str, pid: int) -> None:
        now = self.now()
        with self._tx() as conn:
            svc.daemon_started(conn, identity, host, pid, now)

    def daemon_ticked(self, identity: str) -> None:
        now = self.now()
        with self._tx() as conn:
            svc.daemon_ticked(conn, identity, now)

    def daemon_stopped(self, identity: str, pid: int) -> None:
        now = self.now()
        with self._tx() as conn:
            svc.daemon_stopped(conn, identity, pid, now)

    def daemons(self) -> list[DaemonRecord]:
        with self._read() as conn:
            return svc.all_daemons(conn)

    def add_notifications(self, rows: Sequence[NewNotification]) -> int:
        """Record notifications; an occurrence already recorded for a target is skipped."""
        now = self.now()
        with self._tx() as conn:
            return svc.add_notifications(conn, rows, now)

    def claim_notifications(self, owner: str, lease_s: float, limit: int) -> list[NotificationRecord]:
        now = self.now()
        with self._tx() as conn:
            return svc.claim_notifications(conn, owner, now, lease_s, limit)

    def finish_notification(self, note_id: int, owner: str, state: str, attempts: int,
                            next_attempt_at: datetime | None, error: str | None) -> bool:
        now = self.now()
        with self._tx() as conn:
            return svc.finish_notification(conn, note_id, owner, state, attempts, next_attempt_at, error, now)

    def notifications(self) -> list[NotificationRecord]:
        with self._read() as conn:
            return svc.list_notifications(conn)

    def scan_cursor(self) -> datetime | None:
        with self._read() as conn:
            return svc.scan_cursor(conn)

    def move_scan_cursor(self, to: datetime) -> None:
        now = self.now()
        with self._tx() as conn:
            svc.move_scan_cursor(conn, to, now)

    def post_events_since(self, since: datetime, states: Sequence[str]) -> list[PostEventSeen]:
        with self._read() as conn:
            return svc.post_events_since(conn, since, states)

    def deferred_since(self, due_before: datetime) -> list[dict[str, Any]]:
        with self._read() as conn:
            return svc.deferred_since(conn, due_before)

    def failed_actions_since(self, since: datetime) -> list[dict[str, Any]]:
        """Engagement actions that failed since `since`."""
        with self._read() as conn:
            return svc.failed_actions_since(conn, since)

    def status_figures(self) -> dict[str, Any]:
        """What `igsched status` and the metrics read: posts and actions by state, the next due post, accounts needing re-authorisation, daemons,
        token rows and notifications by state, in one read."""
        with self._read() as conn:
            return {
                "now": self.now(),
                "posts": svc.posts_by_state(conn),
                "actions": svc.actions_by_state(conn),
                "next_due": svc.next_due_post(conn),
                "reauth": svc.reauth_accounts(conn),
                "daemons": svc.all_daemons(conn),
                "tokens": svc.token_states(conn),
                "notifications": svc.notification_counts(conn),
            }


    # --- engagement actions (README "Engagement") ------------------------------------
    def plan_actions(self, planned: Sequence[NewAction], actor: str) -> list[Planned]:
        """Plan actions in one transaction: a key used before plans nothing (`exists`); a
        second private reply to one comment is recorded as failed (`refused`), never sent."""
        now = self.now()
        with self._tx() as conn:
            return act.insert_actions(conn, planned, now, actor)

    def action(self, key: str) -> ActionRecord | None:
        with self._read() as conn:
            return act.get_action(conn, key)

    def list_actions(self, states: Sequence[str] = (), account: str | None = None,
                     limit: int | None = None) -> list[ActionRecord]:
        """Newest first."""
        with self._read() as conn:
            return act.list_actions(conn, states, account, limit)

    def action_events(self, action_id: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            return act.events_of(conn, action_id)

    def count_active_actions(self) -> int:
        with self._read() as conn:
            return act.count_active(conn)

    def private_reply_owner(self, comment_id: str) -> ActionRecord | None:
        """The action that holds a comment's one private reply, if any."""
        with self._read() as conn:
            return act.private_reply_owner(conn, comment_id)

    def claim_due_actions(self, owner: str, lease_s: float, limit: int) -> list[ActionRecord]:
        now = self.now()
        return self._write(lambda conn: act.claim_due(conn, owner, lease_s, now, limit))

    def claim_action(self, key: str, owner: str, lease_s: float) -> ActionRecord | None:
        """Lease one action by key, if it is due and nobody holds it (the CLI runs its
        action at once)."""
        now = self.now()
        with self._tx() as conn:
            return act.claim_one(conn, key, owner, lease_s, now)

    @grouped
    def action_transition(self, action: ActionRecord, move: ActionMove, actor: str, event: str | None = None,
                          release: bool = True, **values: Unpack[ActionChanges]) -> Work[ActionRecord]:
        """A named transition of lifecycle.ACTIONS, compare-and-set on the lease token (raises
        LeaseLost or TransitionNotAllowed). Returns the action as it is afterwards."""
        token = action.lease_token
        assert token is not None
        now = self.now()
        return lambda conn: act.update_action(conn, action.id, token, now, actor, event, release, move,
                                              **values)

    @grouped
    def action_update(self, action: ActionRecord, actor: str, event: str | None = None, release: bool = True,
                      **values: Unpack[ActionChanges]) -> Work[ActionRecord]:
        """Change an action we hold without changing its state (raises LeaseLost)."""
        token = action.lease_token
        assert token is not None
        now = self.now()
        return lambda conn: act.update_action(conn, action.id, token, now, actor, event, release, None,
                                              **values)

    @grouped
    def renew_action(self, action: ActionRecord, lease_s: float) -> Work[bool]:
        token = action.lease_token
        assert token is not None
        now = self.now()
        return lambda conn: act.renew(conn, action.id, token, lease_s, now)

    @grouped
    def begin_send(self, action: ActionRecord, actor: str, budget: int | None, kinds: Sequence[str],
                   what: str, window_s: float = 3600.0) -> Work[BudgetCheck]:
        """Within the hourly budget of `kinds` for the action's account: move it to `sending`
        (lease kept); over it: `deferred` until a slot frees. One transaction under the
        account's row lock, so several daemons never exceed a budget."""
        token = action.lease_token
        assert token is not None
        now = self.now()
        return lambda conn: act.begin_send(conn, action.id, token, now, actor, budget, window_s, kinds, what)

    def retry_action(self, key: str, actor: str) -> ActionRecord:
        """Send a failed or unknown action again (a person's word); try a waiting one now."""
        now = self.now()
        with self._tx() as conn:
            return act.retry(conn, key, now, actor)

    # --- profiles -------------------------------------------------------------------------
    def profile(self, igsid: str) -> ProfileRecord | None:
        with self._read() as conn:
            return profiles.get_profile(conn, igsid)

    def save_profile(self, igsid: str, account: str, fields: Mapping[str, Any]) -> None:
        now = self.now()
        with self._tx() as conn:
            profiles.save_profile(conn, igsid, account, fields, now)

    def profile_lookups_since(self, since: datetime) -> list[datetime]:
        """When the app's profile lookups went out since `since`, oldest first."""
        with self._read() as conn:
            return profiles.lookups_since(conn, since)


@dataclass(frozen=True)
class Claim:
    posts: list[PostRecord]
    accounts: dict[str, AccountRecord]  # the claimed posts' accounts, as of the claim
    app_pause: tuple[datetime, str] | None  # on now, if any
    ahead: NextTimes  # when posts and actions are next due (or leases end), after the claim
    now: datetime  # the store's time of the claim

    @property
    def next_at(self) -> datetime | None:
        """The earliest next_action_at (or lease end) of a post or an action: the next
        wake-up serves engagement actions too (planned messages on the second)."""
        return self.ahead.earliest


@dataclass(frozen=True)
class QuotaCheck:
    ok: bool
    used: int
    total: int
    free_at: datetime | None
    in_flight: int = 0
    exact: bool = True  # free_at is when a slot frees (else: when to look again)
    post: PostRecord | None = None  # when ok: the post as it is now, in `publishing`
