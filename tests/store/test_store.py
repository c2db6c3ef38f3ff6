"""Store conformance: the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
import sqlalchemy as sa
from alembic import command

from scheduler.lifecycle import PostMove, State
from scheduler.store import (
    LeaseLost,
    NotAllowed,
    SchemaBehind,
    Store,
    current_revision,
    head_revision,
)
from scheduler.store.engine import _alembic_config, make_engine
from tests.helpers import image_spec, settings_for


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url)
    s.sync_accounts(settings_for(db_url).accounts)
    return s


def test_migrations_reach_head_and_are_idempotent(empty_db_url: str) -> None:
    db_url = empty_db_url
    engine = make_engine(db_url)
    with pytest.raises(SchemaBehind, match="igsched db upgrade"):
        Store(db_url, upgrade=False)
    Store(db_url)
    Store(db_url)  # second time: nothing to do
    assert current_revision(engine) == head_revision()


def test_enqueue_is_idempotent_and_edits_by_key(store: Store, db_url: str) -> None:
    a, b = image_spec("a"), image_spec("b")
    r1 = store.enqueue([a, b], "t")
    assert (r1.new, r1.updated, r1.unchanged) == (["a", "b"], [], [])
    r2 = store.enqueue([a, b], "t")
    assert (r2.new, r2.updated, r2.unchanged) == ([], [], ["a", "b"])
    r3 = store.enqueue([replace(a, caption="changed")], "t")
    assert r3.updated == ["a"]
    rec = store.get("a")
    assert rec is not None and rec.spec["caption"] == "changed" and rec.state == State.PLANNED
    assert [e["to_state"] for e in store.events(rec.id)] == ["planned", "planned"]
    assert len(store.list_posts(["planned"])) == 2


def test_published_post_is_never_changed_by_reimport(store: Store, db_url: str) -> None:
    lead = settings_for(db_url).staging.lead_s
    spec = image_spec("p", in_s=0)
    store.enqueue([spec], "t")
    [claimed] = store.claim_due("d", 30, 10)
    store.transition(claimed, PostMove.MARK_PUBLISHED, "d", media_id="m1")
    r = store.enqueue([replace(spec, caption="other")], "t")
    assert r.kept == [("p", "already published; a re-import never changes it")]
    rec = store.get("p")
    assert rec is not None and rec.spec["caption"] == "hello" and rec.media_id == "m1"
    with pytest.raises(NotAllowed):
        store.retry("p", lead, "t")
    with pytest.raises(NotAllowed):
        store.cancel("p", "t")


def test_cancel_fences_out_the_worker_and_retry_replans(store: Store, db_url: str) -> None:
    lead = settings_for(db_url).staging.lead_s
    store.enqueue([image_spec("c", in_s=0)], "t")
    [claimed] = store.claim_due("d", 30, 10)
    store.cancel("c", "t")
    with pytest.raises(LeaseLost):
        store.transition(claimed, PostMove.TO_STAGING, "d")
    assert store.get("c").state == State.CANCELLED  # type: ignore[union-attr]
    store.retry("c", lead, "t")
    rec = store.get("c")
    assert rec is not None and rec.state == State.PLANNED and rec.lease_token is None
    assert store.claim_due("d", 30, 10)[0].key == "c"


def test_two_concurrent_claimers_never_get_the_same_post(db_url: str) -> None:
    s1, s2 = Store(db_url), Store(db_url)
    s1.sync_accounts(settings_for(db_url).accounts)
    s1.enqueue([image_spec(f"k{i}", in_s=0) for i in range(120)], "t")
    got: dict[str, list[str]] = {"d1": [], "d2": []}

    def claimer(store: Store, name: str) -> None:
        while True:
            batch = store.claim_due(name, 60, 7)
            if not batch:
                return
            got[name].extend(p.key for p in batch)
            time.sleep(0.005)  # "work" on the batch, so the claimers interleave

    threads = [threading.Thread(target=claimer, args=(s, n)) for s, n in ((s1, "d1"), (s2, "d2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(got["d1"]) & set(got["d2"])
    assert len(got["d1"]) + len(got["d2"]) == 120
    assert got["d1"] and got["d2"]  # both took part


def test_stale_lease_holder_cannot_finish_a_step(store: Store, db_url: str) -> None:
    store.enqueue([image_spec("s", in_s=0)], "t")
    [mine] = store.claim_due("slow", 0.2, 1)
    time.sleep(0.4)
    [theirs] = store.claim_due("fast", 30, 1)
    assert theirs.id == mine.id and theirs.lease_token != mine.lease_token
    with pytest.raises(LeaseLost):
        store.transition(mine, PostMove.TO_STAGING, "slow")
    store.transition(theirs, PostMove.TO_STAGING, "fast")
    assert store.get("s").state == "staging"  # type: ignore[union-attr]


def test_restart_takes_back_own_leases(store: Store, db_url: str) -> None:
    store.enqueue([image_spec("r", in_s=0)], "t")
    assert store.claim_due("host-a", 300, 1)
    assert store.claim_due("host-a", 300, 1) == []
    assert store.release_own_leases("host-a") == 1
    assert [p.key for p in store.claim_due("host-a", 300, 1)] == ["r"]


def test_quota_gate_counts_published_and_in_flight(store: Store, db_url: str) -> None:
    store.enqueue([image_spec(f"q{i}", in_s=0) for i in range(3)], "t")
    store.update_quota("shop", 0, 2, 86400)
    posts = store.claim_due("d", 60, 3)
    for p in posts:
        store.transition(p, PostMove.TO_READY, "d", release=False, container_id=f"c-{p.key}")
    first = store.begin_publish(posts[0], "d", 25)
    second = store.begin_publish(posts[1], "d", 25)
    third = store.begin_publish(posts[2], "d", 25)
    assert (first.ok, second.ok, third.ok) == (True, True, False)
    assert third.used == 2 and third.total == 2 and third.free_at is not None


def test_a_database_at_the_first_revision_is_upgraded_with_its_posts(empty_db_url: str) -> None:
    """0002 adds posts.late_cause and posts.hold: posts written before keep working."""
    db_url = empty_db_url
    engine = make_engine(db_url)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO posts (key, account, kind, spec, spec_hash, due_at, asap, state, next_action_at,"
            " attempts, followup_pending, created_at, updated_at) VALUES ('old', 'shop', 'image', '{}', 'h',"
            " '2026-01-01 00:00:00', false, 'planned', '2026-01-01 00:00:00', 0, false,"
            " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
    store = Store(db_url)
    assert current_revision(engine) == head_revision()
    old = store.get("old")
    assert old is not None and old.late_cause is None and old.hold is None


def test_daemons_starting_together_on_a_new_database_sync_the_same_accounts(db_url: str) -> None:
    """Replicas start at once: each inserts the configured accounts; none may fail on a row
    another inserted a moment before."""
    Store(db_url)  # the schema (migrations are serialised separately)
    accounts = settings_for(db_url).accounts
    stores = [Store(db_url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    errors: list[Exception] = []

    def sync(s: Store) -> None:
        start.wait()
        try:
            s.sync_accounts(accounts)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=sync, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(a.name for a in stores[0].accounts()) == sorted(a.name for a in accounts)
