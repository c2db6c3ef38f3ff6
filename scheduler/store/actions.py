"""Outbound engagement actions: plan (idempotent by key), claim with a lease, budgets, and
named transitions (lifecycle.ACTIONS), fenced by the lease token like posts.

`insert_actions` runs inside the caller's transaction, so another store function (e.g. one
that marks a webhook event handled) can plan actions in the same unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Unpack

import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.clock import to_naive_utc
from scheduler.lifecycle import ACTION_ACTIVE, ACTIONS, ActionMove, ActionState
from scheduler.store.claims import LeaseLost
from scheduler.store.posts import NotAllowed
from scheduler.store.records import ActionChanges, ActionRecord, NewAction, Planned
from scheduler.store.schema import accounts, action_events, actions, private_replies

PRIVATE_REPLY = "private_reply"
CLAIMABLE = [ActionState.PENDING.value, ActionState.DEFERRED.value, ActionState.SENDING.value]


class ActionNotFound(Exception):
    pass


@dataclass(frozen=True)
class BudgetCheck:
    """Whether an action fits its hourly budget; when not, when a slot frees."""

    ok: bool
    used: int
    budget: int | None
    free_at: datetime | None = None


def _lock(conn: Connection, stmt: sa.Select) -> sa.Select:
    return stmt.with_for_update() if conn.dialect.name == "postgresql" else stmt


def add_event(conn: Connection, action_id: int, at: datetime, from_state: str | None, to_state: str,
              reason: str | None, actor: str | None) -> None:
    conn.execute(action_events.insert().values(
        action_id=action_id, at=at, from_state=from_state, to_state=to_state, reason=reason, actor=actor,
    ))


def get_action(conn: Connection, key: str) -> ActionRecord | None:
    row = conn.execute(sa.select(actions).where(actions.c.key == key)).first()
    return ActionRecord.from_row(row) if row else None


def get_action_by_id(conn: Connection, action_id: int) -> ActionRecord | None:
    row = conn.execute(sa.select(actions).where(actions.c.id == action_id)).first()
    return ActionRecord.from_row(row) if row else None


def private_reply_owner(conn: Connection, comment_id: str) -> ActionRecord | None:
    """The action that holds the one private reply a comment may get, if any."""
    key = conn.execute(
        sa.select(private_replies.c.action_key).where(private_replies.c.comment_id == comment_id)
    ).scalar()
    return get_action(conn, key) if key else None


def insert_actions(conn: Connection, planned: Sequence[NewAction], now: datetime, actor: str) -> list[Planned]:
    """Plan actions in the caller's transaction. A key used before plans nothing (`exists`);
    a second private reply to one comment is recorded as failed, without any call."""
    out: list[Planned] = []
    for new in planned:
        existing = conn.execute(_lock(conn, sa.select(actions).where(actions.c.key == new.key))).first()
        if existing is not None:
            out.append(Planned("exists", ActionRecord.from_row(existing)))
            continue
        at = to_naive_utc(new.at) if new.at is not None else now
        action_id = conn.execute(actions.insert().values(
            key=new.key, account=new.account, kind=new.kind, target=new.target, payload=dict(new.payload),
            state=ACTIONS.initial.value, reason=None, error=None, attempts=0, next_action_at=at,
            source=new.source, created_at=now, updated_at=now,
        ).returning(actions.c.id)).scalar_one()
        add_event(conn, action_id, now, None, ACTIONS.initial, f"planned ({new.source})", actor)
        owner = None
        if new.kind == PRIVATE_REPLY:
            owner = private_reply_owner(conn, new.target)
            if owner is None:
                conn.execute(private_replies.insert().values(
                    comment_id=new.target, account=new.account, action_key=new.key, created_at=now))
        rec = get_action_by_id(conn, action_id)
        assert rec is not None
        if owner is not None:
            reason = (f"comment {new.target} already has a private reply (action {owner.key}, {owner.state}); "
                      "Meta allows one per comment")
            _set(conn, rec, now, actor, ActionMove.FAIL, reason, reason=reason, done_at=now)
            failed = get_action_by_id(conn, action_id)
            assert failed is not None
            out.append(Planned("refused", failed, reason))
            continue
        out.append(Planned("new", rec))
    return out


def list_actions(conn: Connection, states: Iterable[str] = (), account: str | None = None,
                 limit: int | None = None) -> list[ActionRecord]:
    """Newest first."""
    q = sa.select(actions)
    states = list(states)
    if states:
        q = q.where(actions.c.state.in_(states))
    if account:
        q = q.where(actions.c.account == account)
    q = q.order_by(actions.c.created_at.desc(), actions.c.id.desc())
    if limit:
        q = q.limit(limit)
    return [ActionRecord.from_row(r) for r in conn.execute(q)]


def events_of(conn: Connection, action_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(action_events).where(action_events.c.action_id == action_id).order_by(action_events.c.id))
    return [dict(r._mapping) for r in rows]


# --- claims and leases ---------------------------------------------------------------------


def _due(now: datetime) -> sa.ColumnElement[bool]:
    # a `sending` row is due only once its lease ran out: its call's answer was lost (crash)
    return sa.and_(
        actions.c.state.in_(CLAIMABLE),
        actions.c.next_action_at <= now,
        sa.or_(actions.c.lease_until.is_(None), actions.c.lease_until < now),
    )


def _lease(conn: Connection, where: sa.ColumnElement[bool], owner: str, lease_s: float, now: datetime,
           limit: int) -> list[ActionRecord]:
    pick = sa.select(actions.c.id).where(where).order_by(actions.c.next_action_at, actions.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    token = uuid.uuid4().hex
    rows = conn.execute(
        actions.update()
        .where(actions.c.id.in_(pick.scalar_subquery()))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s), lease_token=token)
        .returning(*actions.c)
    ).all()
    return sorted((ActionRecord.from_row(r) for r in rows), key=lambda a: (a.next_action_at, a.id))


def _first_for_its_target() -> sa.ColumnElement[bool]:
    """No earlier action of the account for the same comment or person is still to go: a
    rule's reply, private reply and hide run in that order (Meta refuses a reply to a hidden
    comment), and messages to one person arrive in the order they were planned."""
    older = actions.alias("older")
    return ~sa.exists().where(
        older.c.account == actions.c.account,
        older.c.target == actions.c.target,
        older.c.id < actions.c.id,
        older.c.state.in_(CLAIMABLE),
        older.c.next_action_at <= actions.c.next_action_at,
    )


def claim_due(conn: Connection, owner: str, lease_s: float, now: datetime, limit: int) -> list[ActionRecord]:
    """Lease up to `limit` due actions, earliest first, one at a time per comment or person
    (SKIP LOCKED on PostgreSQL; on SQLite BEGIN IMMEDIATE serialises claimers)."""
    return _lease(conn, sa.and_(_due(now), _first_for_its_target()), owner, lease_s, now, limit)


def claim_one(conn: Connection, key: str, owner: str, lease_s: float, now: datetime) -> ActionRecord | None:
    """Lease one action by key if it is due and nobody holds it."""
    found = _lease(conn, sa.and_(_due(now), actions.c.key == key), owner, lease_s, now, 1)
    return found[0] if found else None


def count_active(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(actions).where(
        actions.c.state.in_([s.value for s in ACTION_ACTIVE]))).scalar_one())


@contextmanager
def fenced(conn: Connection, action_id: int, token: str) -> Iterator[ActionRecord]:
    q = sa.select(actions).where(actions.c.id == action_id, actions.c.lease_token == token)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise LeaseLost(f"action {action_id}")
    yield ActionRecord.from_row(row)


def _set(conn: Connection, rec: ActionRecord, now: datetime, actor: str, move: ActionMove | None,
         event: str | None, release: bool = True, **values: Unpack[ActionChanges]) -> None:
    unknown = set(values) - ActionChanges.__optional_keys__
    if unknown:  # e.g. `state`: it changes only through a transition
        raise TypeError(f"not a column a step may change: {', '.join(sorted(unknown))}")
    row: dict[str, Any] = dict(values)
    row["updated_at"] = now
    if move is not None:
        row["state"] = ACTIONS.target(move, rec.state, rec.key)
    if release:
        row.update(lease_owner=None, lease_until=None, lease_token=None)
    conn.execute(actions.update().where(actions.c.id == rec.id).values(**row))
    new_state = row.get("state", rec.state)
    if new_state != rec.state or event:
        add_event(conn, rec.id, now, rec.state, new_state, event, actor)


def update_action(conn: Connection, action_id: int, token: str, now: datetime, actor: str,
                  event: str | None = None, release: bool = True, move: ActionMove | None = None,
                  **values: Unpack[ActionChanges]) -> ActionRecord:
    """Compare-and-set on the lease token; `move` (checked against ACTIONS) changes the state.
    Returns the action as it is afterwards."""
    with fenced(conn, action_id, token) as rec:
        _set(conn, rec, now, actor, move, event, release, **values)
    after = get_action_by_id(conn, action_id)
    assert after is not None
    return after


def renew(conn: Connection, action_id: int, token: str, lease_s: float, now: datetime) -> bool:
    res = conn.execute(actions.update().where(actions.c.id == action_id, actions.c.lease_token == token)
                       .values(lease_until=now + timedelta(seconds=lease_s)))
    return res.rowcount == 1


def release_own_leases(conn: Connection, owner: str, now: datetime) -> int:
    """A restarted daemon takes back its own leases at once (a `sending` one then follows the
    lost-answer rules)."""
    res = conn.execute(actions.update()
                       .where(actions.c.lease_owner == owner, actions.c.lease_until.is_not(None))
                       .values(lease_until=now - timedelta(microseconds=1), next_action_at=now))
    return res.rowcount


# --- budgets -------------------------------------------------------------------------------


def sent_since(conn: Connection, account: str, kinds: Sequence[str], since: datetime,
               exclude_id: int | None = None) -> list[datetime]:
    """When the account's actions of these kinds went out since `since`, oldest first."""
    q = sa.select(actions.c.sent_at).where(
        actions.c.account == account, actions.c.kind.in_(list(kinds)), actions.c.sent_at >= since)
    if exclude_id is not None:
        q = q.where(actions.c.id != exclude_id)
    return sorted(t for t in conn.execute(q).scalars() if t is not None)


def begin_send(conn: Connection, action_id: int, token: str, now: datetime, actor: str,
               budget: int | None, window_s: float, kinds: Sequence[str], what: str) -> BudgetCheck:
    """Under the account's row lock (several daemons never exceed a budget): within the
    budget, the action moves to `sending` (committed before the call); over it, it is
    `deferred` to the moment a slot frees, with the reason."""
    with fenced(conn, action_id, token) as rec:
        conn.execute(_lock(conn, sa.select(accounts.c.name).where(accounts.c.name == rec.account))).first()
        used = 0
        if budget is not None:
            times = sent_since(conn, rec.account, kinds, now - timedelta(seconds=window_s), rec.id)
            used = len(times)
            if used >= budget:
                free_at = times[used - budget] + timedelta(seconds=window_s)
                reason = (f"{what} budget: {used} of {budget} sent by account {rec.account} in the last "
                          f"hour; next free slot at {free_at:%Y-%m-%d %H:%M:%S} UTC")
                _set(conn, rec, now, actor, ActionMove.DEFER, reason, reason=reason, next_action_at=free_at)
                return BudgetCheck(False, used, budget, free_at)
        _set(conn, rec, now, actor, ActionMove.BEGIN_SEND, None, release=False,
             sent_at=now, attempts=rec.attempts + 1, reason=None)
        return BudgetCheck(True, used + 1, budget)


# --- the user's verbs ----------------------------------------------------------------------


def retry(conn: Connection, key: str, now: datetime, actor: str) -> ActionRecord:
    """`igsched actions retry KEY`: a failed or unknown action is sent again on a person's
    word; a pending or deferred one is tried now."""
    row = conn.execute(_lock(conn, sa.select(actions).where(actions.c.key == key))).first()
    if row is None:
        raise ActionNotFound(key)
    rec = ActionRecord.from_row(row)
    if rec.state == ActionState.DONE:
        raise NotAllowed(f"action {key} is already done ({rec.kind} {rec.result_id or ''}); it is never sent twice")
    if rec.state == ActionState.SENDING and rec.lease_until is not None and rec.lease_until >= now:
        raise NotAllowed(f"action {key} is being sent right now")
    if rec.state in (ActionState.FAILED, ActionState.UNKNOWN):
        why = "retry requested by the user" + (" (it may have been delivered already)"
                                               if rec.state == ActionState.UNKNOWN else "")
        _set(conn, rec, now, actor, ActionMove.RETRY, why, reason=None, error=None, attempts=0,
             next_action_at=now, done_at=None, result=None, result_id=None)
    else:
        conn.execute(actions.update().where(actions.c.id == rec.id).values(next_action_at=now, updated_at=now))
        add_event(conn, rec.id, now, rec.state, rec.state, "retry requested: try now", actor)
    after = get_action_by_id(conn, rec.id)
    assert after is not None
    return after
