"""Actions in the store, on both databases: the lifecycle table walked from every state,
planning by key (once), one private reply per comment, claims and leases, hourly budgets,
retry on a person's word, and profiles."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from scheduler.clock import FakeClock
from scheduler.lifecycle import ACTIONS, ActionMove, ActionState, TransitionNotAllowed
from scheduler.store import (
    ActionNotFound,
    ActionRecord,
    LeaseLost,
    NewAction,
    NotAllowed,
    Store,
)
from scheduler.store.engine import _alembic_config, current_revision, make_engine
from tests.helpers import settings_for


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url, clock=FakeClock())
    s.sync_accounts(settings_for(db_url).accounts)
    return s


def dm(key: str, to: str = "123", account: str = "shop", **kw: object) -> NewAction:
    return NewAction(key=key, account=account, kind="message", target=to,
                     payload={"message": {"text": "hi"}}, source="test", **kw)  # type: ignore[arg-type]


def _force(store: Store, key: str, state: ActionState, token: str | None = "tok") -> ActionRecord:
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE actions SET state = :s, lease_token = :t, lease_owner = 'w' WHERE key = :k"),
                  {"s": state.value, "t": token, "k": key})
    rec = store.action(key)
    assert rec is not None
    return rec


def test_migration_0003_goes_up_and_down(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    cfg = _alembic_config()
    try:
        for target, step in (("0002", command.upgrade), ("0003", command.upgrade),
                             ("0002", command.downgrade), ("0003", command.upgrade)):
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                step(cfg, target)
            assert current_revision(engine) == target
            has = set(sa.inspect(engine).get_table_names())
            assert ({"actions", "action_events", "private_replies", "profiles"} <= has) == (target == "0003")
    finally:
        engine.dispose()


@pytest.mark.parametrize("source", list(ActionState))
def test_every_named_transition_from_every_state(store: Store, source: ActionState) -> None:
    store.plan_actions([dm("a")], "t")
    for move, t in ACTIONS.transitions.items():
        rec = _force(store, "a", source)
        events_before = len(store.action_events(rec.id))
        if source in t.sources:
            after = store.action_transition(rec, move, "w", f"walk {move}")
            assert after.state == t.target, (source, move)
            assert store.action_events(rec.id)[-1]["to_state"] == t.target
            assert after.lease_token is None
        else:
            with pytest.raises(TransitionNotAllowed, match=f"action a: transition {move} is not allowed from {source}"):
                store.action_transition(rec, move, "w", "refused")
            after2 = store.action("a")
            assert after2 is not None and after2.state == source and after2.lease_token == "tok"
            assert len(store.action_events(rec.id)) == events_before


def test_a_step_cannot_set_the_state(store: Store) -> None:
    store.plan_actions([dm("a")], "t")
    rec = _force(store, "a", ActionState.PENDING)
    with pytest.raises(TypeError, match="state"):
        store.action_update(rec, "w", state="done")  # type: ignore[call-arg]


def test_the_same_key_plans_once(store: Store) -> None:
    first = store.plan_actions([dm("k", to="1")], "t")
    again = store.plan_actions([dm("k", to="2")], "t")
    assert [p.outcome for p in first] == ["new"] and [p.outcome for p in again] == ["exists"]
    assert again[0].action.target == "1"
    assert len(store.list_actions()) == 1


def test_one_private_reply_per_comment(store: Store) -> None:
    pr = NewAction(key="p1", account="shop", kind="private_reply", target="555", payload={"text": "a"}, source="t")
    assert store.plan_actions([pr], "t")[0].outcome == "new"
    second = store.plan_actions([NewAction(key="p2", account="shop", kind="private_reply", target="555",
                                           payload={"text": "b"}, source="t")], "t")[0]
    assert second.outcome == "refused" and "already has a private reply (action p1" in (second.reason or "")
    assert second.action.state == ActionState.FAILED
    owner = store.private_reply_owner("555")
    assert owner is not None and owner.key == "p1"


def test_claims_leases_and_fencing(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, FakeClock)
    later_at = clock.now() + timedelta(hours=1)
    store.plan_actions([dm("now"), dm("later", at=later_at)], "t")
    claimed = store.claim_due_actions("w1", 30, 10)
    assert [a.key for a in claimed] == ["now"]
    assert store.claim_due_actions("w2", 30, 10) == []  # leased
    assert store.claim_action("now", "w2", 30) is None
    sending = store.action_transition(claimed[0], ActionMove.BEGIN_SEND, "w1", release=False)
    assert sending.state == ActionState.SENDING and sending.lease_token == claimed[0].lease_token
    stale = ActionRecord(**{**sending.__dict__, "lease_token": "other"})
    with pytest.raises(LeaseLost):
        store.action_transition(stale, ActionMove.MARK_DONE, "w2")
    clock.advance(31)  # the lease ran out mid-call: the row is due again, still `sending`
    again = store.claim_due_actions("w2", 30, 10)
    assert [(a.key, a.state) for a in again] == [("now", "sending")]
    assert store.next_action_at() == again[0].lease_until  # the running lease's end comes first
    store.action_transition(again[0], ActionMove.TO_UNKNOWN, "w2", reason="lost")
    assert store.next_action_at() == later_at


def test_budget_defers_until_a_slot_frees(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, FakeClock)
    store.plan_actions([dm(f"m{i}") for i in range(3)], "t")
    times = []
    for i in range(2):
        a = store.claim_action(f"m{i}", "w", 30)
        assert a is not None
        check = store.begin_send(a, "w", 2, ["message"], "messages")
        assert check.ok
        times.append(clock.now())
        store.action_transition(a, ActionMove.MARK_DONE, "w", done_at=clock.now())
        clock.advance(10)
    a = store.claim_action("m2", "w", 30)
    assert a is not None
    check = store.begin_send(a, "w", 2, ["message"], "messages")
    assert not check.ok and check.used == 2 and check.free_at == times[0] + timedelta(hours=1)
    rec = store.action("m2")
    assert rec is not None and rec.state == ActionState.DEFERRED and rec.sent_at is None
    assert rec.reason and "messages budget: 2 of 2" in rec.reason and rec.next_action_at == check.free_at
    # another account's budget is its own
    store.plan_actions([dm("b0", account="brand2")], "t")
    b = store.claim_action("b0", "w", 30)
    assert b is not None and store.begin_send(b, "w", 2, ["message"], "messages").ok


def test_retry_on_a_persons_word(store: Store) -> None:
    store.plan_actions([dm("u"), dm("d")], "t")
    _force(store, "u", ActionState.UNKNOWN, token=None)
    after = store.retry_action("u", "cli")
    assert after.state == ActionState.PENDING and after.attempts == 0
    _force(store, "d", ActionState.DONE, token=None)
    with pytest.raises(NotAllowed, match="already done"):
        store.retry_action("d", "cli")
    with pytest.raises(ActionNotFound):
        store.retry_action("nope", "cli")


def test_profiles_cache(store: Store) -> None:
    assert store.profile("42") is None
    store.save_profile("42", "shop", {"id": "42", "name": "Ada", "username": "ada"})
    store.save_profile("42", "shop", {"id": "42", "profile_pic": "https://x.example.com/p.jpg"})
    p = store.profile("42")
    assert p is not None and p.name == "Ada" and p.profile_pic == "https://x.example.com/p.jpg"
    assert p.fields["username"] == "ada"
