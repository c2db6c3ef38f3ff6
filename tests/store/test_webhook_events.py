"""Webhook events in the store, on SQLite and PostgreSQL: stored once however often a batch
comes, the person's last inbound message, forwarding deliveries in order per account."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from scheduler.engage.events import WebhookEvent, normalise
from scheduler.lifecycle import ActionMove
from scheduler.store import EventRecord, ForwardTarget, NewAction, Store, current_revision
from scheduler.store.engine import _alembic_config, make_engine, schema_lock
from scheduler.store.webhooks import RULES_LOCK_KEY
from tests.helpers import settings_for

SHOP = "17841400000000001"
BRAND2 = "17841400000000002"
NAMES = {SHOP: "shop", BRAND2: "brand2"}
T1 = ForwardTarget("t1", "http://127.0.0.1")
T2 = ForwardTarget("t2", "https://n8n.example.com")


def _message(account: str, sender: str, mid: str, text: str, ms: int, echo: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid, "text": text}
    if echo:
        message["is_echo"] = True
    return {"id": account, "time": ms, "messaging": [{
        "sender": {"id": account if echo else sender}, "recipient": {"id": sender if echo else account},
        "timestamp": ms, "message": message}]}


def _comment(account: str, comment_id: str, text: str) -> dict[str, Any]:
    return {"id": account, "time": 1764500000, "changes": [{"field": "comments", "value": {
        "id": comment_id, "text": text, "from": {"id": "42", "username": "fan"},
        "media": {"id": "18000000000000001"}}}]}


def _batch(*entries: dict[str, Any]) -> list[WebhookEvent]:
    return normalise({"object": "instagram", "entry": list(entries)}).events


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(db_url)


def test_a_batch_delivered_three_times_is_stored_once(store: Store) -> None:
    batch = _batch(_message(SHOP, "42", "m_1", "hi", 1764500000000),
                   _comment(SHOP, "18010000000000001", "sale?"),
                   _message("999", "43", "m_2", "to an unknown account", 1764500001000))
    first = store.store_webhook_events(batch + batch, NAMES, [T1, T2])  # two deliveries in one transaction
    assert len(first) == 3
    assert store.store_webhook_events(batch, NAMES, [T1, T2]) == []
    assert store.store_webhook_events(list(reversed(batch)), NAMES, [T1, T2]) == []
    listed = store.webhook_events()
    assert [e.id for e in listed] == sorted(first, reverse=True)  # newest first
    assert store.webhook_event_counts() == (3, 3)
    by_kind = {e.kind: e for e in listed}
    assert by_kind["comment"].account == "shop" and by_kind["comment"].comment_id == "18010000000000001"
    unknown = next(e for e in listed if e.ig_account_id == "999")
    assert unknown.account is None
    assert len(store.deliveries(first[0])) == 2
    assert [e.kind for e in store.webhook_events(kind="comment")] == ["comment"]
    assert {e.ig_account_id for e in store.webhook_events(account="shop")} == {SHOP}
    assert {e.ig_account_id for e in store.webhook_events(account="999")} == {"999"}
    # the stored event gives back what the receiver normalised
    assert by_kind["message"].webhook_event() == next(e for e in batch if e.kind == "message" and e.ig_account_id == SHOP)


def test_concurrent_deliveries_of_one_batch_store_each_event_once(db_url: str) -> None:
    batch = _batch(*[_comment(SHOP, str(18010000000000000 + i), "x") for i in range(50)])
    stores = [Store(db_url) for _ in range(4)]
    results: list[list[int]] = []
    lock = threading.Lock()

    def deliver(s: Store) -> None:
        got = s.store_webhook_events(batch, NAMES, [T1])
        with lock:
            results.append(got)

    threads = [threading.Thread(target=deliver, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(len(r) for r in results) == 50
    assert len(stores[0].webhook_events()) == 50
    for s in stores:
        s.close()


def test_last_inbound_message_per_account_and_person_ignores_echoes(store: Store) -> None:
    store.store_webhook_events(_batch(_message(SHOP, "42", "m_1", "hi", 1764500000000)), NAMES)
    first = store.last_inbound_at(SHOP, "42")
    assert first is not None and first.isoformat() == "2025-11-30T10:53:20"
    # an older message delivered late does not move it back; an echo does not count
    store.store_webhook_events(_batch(_message(SHOP, "42", "m_0", "earlier", 1764499000000),
                                      _message(SHOP, "42", "m_e", "our answer", 1764509000000, echo=True)),
                               NAMES)
    assert store.last_inbound_at(SHOP, "42") == first
    store.store_webhook_events(_batch(_message(SHOP, "42", "m_2", "later", 1764500060000)), NAMES)
    assert store.last_inbound_at(SHOP, "42") == first + timedelta(seconds=60)
    assert store.last_inbound_at(BRAND2, "42") is None


def test_deliveries_come_in_order_per_account_and_target(store: Store) -> None:
    ids = store.store_webhook_events(_batch(
        _message(SHOP, "42", "m_1", "a", 1764500000000), _message(BRAND2, "42", "m_2", "b", 1764500000000),
        _message(SHOP, "42", "m_3", "c", 1764500000000)), NAMES, [T1])
    first = store.claim_deliveries(["t1"], "me", 30, 10)
    # the head of each account: the shop's second event waits for its first
    assert sorted(d.event.id for d in first) == [ids[0], ids[1]]
    assert store.claim_deliveries(["t1"], "other", 30, 10) == []  # leased, and the rest waits
    shop_first = next(d for d in first if d.event.id == ids[0])
    brand = next(d for d in first if d.event.id == ids[1])
    assert store.finish_delivery(shop_first, delivered=False, status=500, error="HTTP 500",
                                 retry_in_s=3600)
    assert store.finish_delivery(brand, delivered=True, status=200, error=None, retry_in_s=None)
    assert not store.finish_delivery(brand, delivered=True, status=200, error=None, retry_in_s=None)
    # the shop's first is not due for an hour, so its second is not sent ahead of it
    assert store.claim_deliveries(["t1"], "me", 30, 10) == []
    nxt, _ = store.next_delivery_at(["t1"])
    assert nxt is not None and timedelta(seconds=3590) < nxt - store.now() <= timedelta(seconds=3600)
    [row] = store.deliveries(ids[0])
    assert (row["attempts"], row["last_status"], row["last_error"], row["delivered_at"]) == (1, 500, "HTTP 500", None)


# ---------------------------------------------------------------------- the rules' outbox
def _rules_plan(event: EventRecord) -> tuple[list[NewAction], list[NewAction]]:
    """What a rule "reply and hide every comment" plans (the pure part, as engage/outbox):
    the reply now, the hide once the reply is finished."""
    if event.kind != "comment" or event.comment_id is None:
        return [], []
    reply, hide = (NewAction(key=f"rule:r:{event.id}:{kind}", account=event.account or "shop", kind=kind,
                             target=event.comment_id, payload={"text": "thanks"} if kind == "reply" else {"hide": True},
                             source="rule:r") for kind in ("reply", "hide"))
    return [reply], [hide]


def test_handling_an_event_inserts_its_actions_in_the_same_transaction(store: Store) -> None:
    store.sync_accounts(settings_for("sqlite://").accounts)
    ids = store.store_webhook_events(_batch(_comment(SHOP, "18010000000000001", "sale"),
                                            _message(SHOP, "42", "m_1", "hi", 1764500000000)), NAMES)
    done = store.handle_webhook_events(_rules_plan, 100, "test")
    assert done is not None and [e.id for e, _ in done] == ids
    assert [len(o) for _, o in done] == [1, 0]  # the reply now; the hide waits for it
    assert store.handle_webhook_events(_rules_plan, 100, "test") == []  # nothing left
    assert store.webhook_event_counts() == (2, 0)
    comment = store.webhook_event(ids[0])
    assert comment is not None and comment.rule_actions == 2 and comment.handled_at is not None
    reply_key, hide_key = f"rule:r:{ids[0]}:reply", f"rule:r:{ids[0]}:hide"
    assert [a.key for a in store.list_actions()] == [reply_key]
    assert store.release_later_actions("test") == []  # the reply is not finished yet
    reply = store.claim_action(reply_key, "test", 30)
    assert reply is not None
    store.action_transition(reply, ActionMove.FAIL, "test", reason="refused")
    [released] = store.release_later_actions("test")
    assert released.outcome == "new" and released.action.key == hide_key
    assert store.release_later_actions("test") == []  # once
    assert sorted(a.key for a in store.list_actions()) == [hide_key, reply_key]
    assert {a.source for a in store.list_actions()} == {"rule:r"}


def test_a_failing_plan_leaves_the_event_unhandled_and_no_action(store: Store) -> None:
    store.sync_accounts(settings_for("sqlite://").accounts)
    store.store_webhook_events(_batch(_comment(SHOP, "18010000000000001", "sale"),
                                      _comment(SHOP, "18010000000000002", "sale")), NAMES)
    seen: list[int] = []

    def broken(event: EventRecord) -> tuple[list[NewAction], list[NewAction]]:
        seen.append(event.id)
        if len(seen) == 2:  # the first event's actions are inserted by now
            raise RuntimeError("the process dies half-way")
        return _rules_plan(event)

    with pytest.raises(RuntimeError):
        store.handle_webhook_events(broken, 100, "test")
    assert store.webhook_event_counts() == (2, 2) and store.list_actions() == []
    store.handle_webhook_events(_rules_plan, 100, "test")
    assert len(store.list_actions()) == 2 and store.webhook_event_counts() == (2, 0)


def test_concurrent_handlers_plan_each_action_once(db_url: str) -> None:
    stores = [Store(db_url) for _ in range(3)]
    stores[0].sync_accounts(settings_for(db_url).accounts)
    stores[0].store_webhook_events(_batch(*[_comment(SHOP, str(18010000000000000 + i), "x") for i in range(60)]), NAMES)
    errors: list[BaseException] = []

    def handle(s: Store) -> None:
        try:
            while s.webhook_event_counts()[1]:
                s.handle_webhook_events(_rules_plan, 7, "test")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=handle, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    actions = stores[0].list_actions()
    assert len(actions) == 60 and len({a.key for a in actions}) == 60  # the replies; hides wait
    assert sum(e.rule_actions or 0 for e in stores[0].webhook_events()) == 120
    for s in stores:
        s.close()


def test_text_a_database_cannot_hold_is_stored_as_replacement_characters(store: Store) -> None:
    [event] = normalise({"object": "instagram", "entry": [{"id": SHOP, "time": 1764500000000, "messaging": [{
        "sender": {"id": "42"}, "recipient": {"id": SHOP}, "timestamp": 1764500000000,
        "message": {"mid": "m_nul", "text": "a\u0000b\ud800c", "attachments": [{"type": "x\u0000"}]}}]}]}).events
    assert store.store_webhook_events([event], NAMES)
    [stored] = store.webhook_events()
    assert stored.text == "a\ufffdb\ufffdc" and stored.attachments == [{"type": "x\ufffd"}]
    assert "\\u0000" in stored.raw  # the item as received, escaped


def test_migration_0004_goes_up_and_down(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    cfg = _alembic_config()
    tables = {"events", "waiting_actions", "conversations", "forward_deliveries"}
    try:
        for target, step in (("0003", command.upgrade), ("0004", command.upgrade),
                             ("0003", command.downgrade), ("0004", command.upgrade)):
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                step(cfg, target)
            assert current_revision(engine) == target
            assert (tables <= set(sa.inspect(engine).get_table_names())) == (target == "0004")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_rules_lock_is_one_per_schema(pg_migrated_url: str) -> None:
    """Advisory locks are per database: the rules' lock is taken per schema, so igsched
    instances (and tests) in schemas of their own never wait for each other's."""
    store = Store(pg_migrated_url)
    store.sync_accounts(settings_for(pg_migrated_url).accounts)
    store.store_webhook_events(_batch(_comment(SHOP, "18010000000000001", "sale")), NAMES)
    other = sa.create_engine(pg_migrated_url)
    try:
        with other.connect() as holder:  # another replica of this schema at it
            assert holder.execute(schema_lock(RULES_LOCK_KEY, wait=False)).scalar() is True
            assert store.handle_webhook_events(_rules_plan, 100, "test") is None
            holder.rollback()
        with other.connect() as holder:  # an instance in another schema of the same database
            holder.execute(sa.text("SET search_path = public"))
            assert holder.execute(schema_lock(RULES_LOCK_KEY, wait=False)).scalar() is True
            done = store.handle_webhook_events(_rules_plan, 100, "test")
            holder.rollback()
        assert done is not None and len(done) == 1
    finally:
        other.dispose()
        store.close()
