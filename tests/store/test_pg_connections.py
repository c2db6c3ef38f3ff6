"""PostgreSQL connections that rested are pinged before use: a server restart (here: every
backend of the store terminated) costs no store call; connections that just came back to the
pool are used without a ping (a burst's store calls are one round trip each, not two)."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from scheduler.store import Store, engine
from tests.conftest import PG_URL

pytestmark = pytest.mark.postgres


def _terminate_backends_of(store: Store) -> int:
    """Terminate every connection resting in the store's pool, as a server restart would."""
    resting = list(store.engine.pool._pool.queue)  # type: ignore[attr-defined]
    pids = [r.dbapi_connection.info.backend_pid for r in resting]
    admin = sa.create_engine(PG_URL)
    try:
        with admin.connect() as c:
            for pid in pids:
                c.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # signalled; wait until the backends are gone
            with admin.connect() as c:
                if not c.execute(sa.text("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                                 {"pids": pids}).first():
                    break
            time.sleep(0.02)
        return len(pids)
    finally:
        admin.dispose()


def test_a_rested_connection_that_died_is_replaced_before_use(pg_migrated_url: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(pg_migrated_url)
    try:
        store.sync_accounts([])
        monkeypatch.setattr(engine, "PING_AFTER_IDLE_S", 0.0)  # every connection counts as rested
        assert _terminate_backends_of(store) >= 1
        assert store.list_posts(["planned"]) == []  # the dead connection was pinged and replaced
    finally:
        store.close()


def test_only_connections_that_rested_are_pinged(pg_migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pings: list[object] = []
    real_ping = engine.ping
    monkeypatch.setattr(engine, "ping", lambda conn: (pings.append(conn), real_ping(conn)))
    store = Store(pg_migrated_url)
    try:
        store.list_posts(["planned"])
        pings.clear()
        for _ in range(5):  # straight back from use: no ping
            store.list_posts(["planned"])
        assert pings == []
        monkeypatch.setattr(engine, "PING_AFTER_IDLE_S", 0.0)  # now every one has rested
        store.list_posts(["planned"])
        assert len(pings) == 1
    finally:
        store.close()


def test_as_many_store_calls_as_the_daemon_makes_at_once_reuse_their_connections(pg_migrated_url: str) -> None:
    """DB_THREADS store calls at once, round after round (a burst): each connection is opened
    once and kept. A pool keeping fewer than that closed one at nearly every hand-back and
    opened another (a server process forked each time)."""
    store = Store(pg_migrated_url)
    opened: list[object] = []
    sa.event.listen(store.engine, "connect", lambda conn, _rec: opened.append(conn))
    try:
        barrier = threading.Barrier(engine.DB_THREADS)

        def calls() -> None:
            for _ in range(20):
                barrier.wait(timeout=10)  # all of them hold a connection at the same moment
                with store.engine.connect() as c:
                    c.execute(sa.text("SELECT pg_sleep(0.002)"))

        threads = [threading.Thread(target=calls) for _ in range(engine.DB_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(opened) <= engine.DB_THREADS, len(opened)  # 20 rounds, no connection opened twice
    finally:
        store.close()
