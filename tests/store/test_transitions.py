"""The lifecycle table enforced by the store, walked from every state on both databases:
each named transition either moves the post where the table says (and records it) or is
refused with TransitionNotAllowed, changing nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from scheduler.lifecycle import EDITABLE, POSTS, PostMove, State, TransitionNotAllowed
from scheduler.store import NotAllowed, PostRecord, Store
from tests.helpers import image_spec, settings_for

# moved by the store's own verbs (cancel, retry, enqueue), not by a worker holding a lease
USER_MOVES = {PostMove.CANCEL, PostMove.RETRY, PostMove.REPLAN}


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url)
    s.sync_accounts(settings_for(db_url).accounts)
    return s


def _force(store: Store, key: str, state: State, token: str | None = "tok") -> PostRecord:
    """Put the post in `state`, held by lease `token` (test set-up only)."""
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE posts SET state = :s, lease_token = :t, lease_owner = 'w' WHERE key = :k"),
                  {"s": state.value, "t": token, "k": key})
    rec = store.get(key)
    assert rec is not None
    return rec


@pytest.mark.parametrize("source", list(State))
def test_every_named_transition_from_every_state(store: Store, db_url: str, source: State) -> None:
    store.enqueue([image_spec("p", in_s=0)], "t")
    for move, t in POSTS.transitions.items():
        if move in USER_MOVES:
            continue
        post = _force(store, "p", source)
        events_before = len(store.events(post.id))
        if source in t.sources:
            store.transition(post, move, "w", f"walk {move}")
            after = store.get("p")
            assert after is not None and after.state == t.target, (source, move)
            assert store.events(post.id)[-1]["to_state"] == t.target
            assert after.lease_token is None  # released
        else:
            with pytest.raises(TransitionNotAllowed, match=f"post p: transition {move} is not allowed from {source}"):
                store.transition(post, move, "w", "refused")
            after = store.get("p")
            assert after is not None and after.state == source and after.lease_token == "tok"
            assert len(store.events(post.id)) == events_before


@pytest.mark.parametrize("source", list(State))
def test_cancel_retry_and_reimport_follow_the_table(store: Store, db_url: str, source: State) -> None:
    lead = settings_for(db_url).staging.lead_s
    spec = image_spec("u", in_s=0)
    store.enqueue([spec], "t")

    _force(store, "u", source, token=None)
    if POSTS.allows(PostMove.CANCEL, source):
        store.cancel("u", "t")
        assert store.get("u").state == State.CANCELLED  # type: ignore[union-attr]
    else:
        with pytest.raises(NotAllowed):
            store.cancel("u", "t")
        assert store.get("u").state == source  # type: ignore[union-attr]

    _force(store, "u", source, token=None)
    if POSTS.allows(PostMove.RETRY, source):
        store.retry("u", lead, "t")
        assert store.get("u").state == State.PLANNED  # type: ignore[union-attr]
    elif source == State.PUBLISHED:
        with pytest.raises(NotAllowed):
            store.retry("u", lead, "t")
    else:  # active: "try now", same state
        store.retry("u", lead, "t")
        assert store.get("u").state == source  # type: ignore[union-attr]

    _force(store, "u", source, token=None)
    spec = replace(spec, caption=f"changed in {source}")
    report = store.enqueue([spec], "t")
    if source in EDITABLE:
        assert report.updated == ["u"] and store.get("u").state == State.PLANNED  # type: ignore[union-attr]
    else:
        assert [k for k, _ in report.kept] == ["u"] and store.get("u").state == source  # type: ignore[union-attr]


def test_update_never_changes_the_state(store: Store, db_url: str) -> None:
    store.enqueue([image_spec("n", in_s=0)], "t")
    [post] = store.claim_due("w", 30, 1)
    with pytest.raises(TypeError):
        store.update(post, "w", state="published")  # type: ignore[call-arg]
    assert store.get("n").state == State.PLANNED  # type: ignore[union-attr]
