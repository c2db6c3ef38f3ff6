"""The service tables on both databases: token rows (seeding, a new login, one refresher at a
time, the newest token wins), daemon heartbeats, notifications once per occurrence."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from scheduler.clock import FakeClock
from scheduler.store import NewNotification, Store
from tests.service_support import close_connections  # noqa: F401  (autouse fixture)

FP1, FP2 = "a" * 64, "b" * 64


def _note(occurrence: str, target: str = "t1") -> NewNotification:
    return NewNotification("post_failed", occurrence, target, "shop", "k", '{"event":"post_failed"}')


def test_a_token_row_is_seeded_once_and_a_new_login_starts_it_afresh(db_url: str) -> None:
    clock = FakeClock()
    store = Store(db_url, clock=clock)
    first = store.seed_token("shop", FP1)
    assert first.source == "config" and first.seen_at == clock.now() and first.refreshed_token is None
    clock.advance(60)
    assert store.claim_refresh("shop", first.version, "d1", 60)
    assert store.store_refreshed("shop", "cipher-1", clock.now(), clock.now() + timedelta(days=60))
    again = store.seed_token("shop", FP1)  # the same configured token: nothing changes
    assert again.source == "refreshed" and again.refreshed_token == "cipher-1"
    clock.advance(60)
    fresh = store.seed_token("shop", FP2)  # a new login
    assert fresh.source == "config" and fresh.refreshed_token is None and fresh.expires_at is None
    assert fresh.seeded_fingerprint == FP2 and fresh.seen_at == clock.now()


def test_one_daemon_at_a_time_refreshes_and_the_newest_token_wins(db_url: str) -> None:
    clock = FakeClock()
    a, b = Store(db_url, clock=clock), Store(db_url, clock=clock)
    state = a.seed_token("shop", FP1)
    assert a.claim_refresh("shop", state.version, "d1", 60)
    assert not b.claim_refresh("shop", state.version, "d2", 60)  # seen before the claim: stale
    held = b.token_state("shop")
    assert held is not None and held.lease_owner == "d1"
    assert not b.claim_refresh("shop", held.version, "d2", 60)  # leased
    issued = clock.now()
    assert a.store_refreshed("shop", "cipher-new", issued, issued + timedelta(days=60))
    # a slower refresher with an older answer does not overwrite the newer token
    assert not b.store_refreshed("shop", "cipher-old", issued - timedelta(seconds=5), None)
    row = b.token_state("shop")
    assert row is not None and row.refreshed_token == "cipher-new" and row.lease_owner is None
    assert "cipher" not in repr(row)
    # a failed attempt by the lease holder is recorded; by anyone else it changes nothing
    assert a.claim_refresh("shop", row.version, "d1", 60)
    b.refresh_failed("shop", "d2", clock.now(), 9, None, "not mine")
    a.refresh_failed("shop", "d1", clock.now(), 1, None, "retry")
    done = a.token_state("shop")
    assert done is not None and done.failures == 1 and done.last_error == "retry" and done.lease_until is None


def test_an_occurrence_is_recorded_once_however_many_daemons_see_it(db_url: str) -> None:
    a, b = Store(db_url), Store(db_url)
    assert a.add_notifications([_note("post_failed:1:7"), _note("post_failed:1:7", "t2")]) == 2
    assert b.add_notifications([_note("post_failed:1:7"), _note("post_failed:2:9")]) == 1
    assert len(a.notifications()) == 3
    mine = a.claim_notifications("d1", 60, 10)
    assert [n.occurrence for n in mine] == ["post_failed:1:7", "post_failed:1:7", "post_failed:2:9"]
    assert b.claim_notifications("d2", 60, 10) == []  # leased to d1
    first = mine[0]
    assert not b.finish_notification(first.id, "d2", "delivered", 1, None, None)
    assert a.finish_notification(first.id, "d1", "delivered", 1, None, None)
    retry_at = a.now() + timedelta(hours=1)
    assert a.finish_notification(mine[1].id, "d1", "pending", 1, retry_at, "HTTP 503")
    assert a.finish_notification(mine[2].id, "d1", "gave_up", 9, None, "gone")
    assert b.claim_notifications("d2", 60, 10) == []  # delivered, given up, or not due yet
    rows = {n.id: n for n in a.notifications()}
    assert rows[first.id].state == "delivered" and rows[first.id].delivered_at is not None
    assert rows[mine[1].id].attempts == 1 and rows[mine[1].id].last_error == "HTTP 503"


def test_heartbeats_and_a_clean_stop(db_url: str) -> None:
    clock = FakeClock()
    store = Store(db_url, clock=clock)
    store.daemon_started("d1", "host-a", 100)
    clock.advance(5)
    store.daemon_ticked("d1")
    [d] = store.daemons()
    assert (d.identity, d.host, d.pid, d.stopped_at) == ("d1", "host-a", 100, None)
    assert (d.last_tick_at - d.started_at).total_seconds() == 5
    store.daemon_stopped("d1", 999)  # another process of the same identity: not this one
    assert store.daemons()[0].stopped_at is None
    store.daemon_stopped("d1", 100)
    assert store.daemons()[0].stopped_at == clock.now()
    store.daemon_started("d1", "host-a", 101)  # a restart runs again
    assert store.daemons()[0].stopped_at is None and store.daemons()[0].pid == 101


def test_status_figures_count_actions_by_state(db_url: str) -> None:
    store = Store(db_url)
    figures = store.status_figures()
    assert figures["actions"] == {} and figures["posts"] == {} and figures["next_due"] is None
    with store.engine.begin() as conn:
        for i, state in enumerate(("done", "done", "failed"), 1):
            conn.execute(sa.text(
                "INSERT INTO actions (id, key, account, kind, target, payload, state, attempts, "
                "next_action_at, source, created_at, updated_at) VALUES (:i, :k, 'shop', 'hide', "
                "'1', '{}', :s, 0, '2026-01-01 00:00:00', 'cli', '2026-01-01 00:00:00', "
                "'2026-01-01 00:00:00')"), {"i": i, "k": f"k{i}", "s": state})
    assert store.status_figures()["actions"] == {"done": 2, "failed": 1}
